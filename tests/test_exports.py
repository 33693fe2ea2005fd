"""libbufshim.so exports exactly the public API (src/exports/engine.sym) and the wrapped calls of the
call table (src/shim/calls_i.h), and nothing else."""
import subprocess
import sys

from conftest import SOURCE_DIR
from shim_fixture import SHIM_LIB

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def dynamic_names(path):
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "W", "i"):
            names.add(parts[2].split("@")[0])
    return names


def table_calls():
    """(name, class) of every entry of the call table, read as src/gen_exports.py reads it."""
    sys.path.insert(0, str(SOURCE_DIR / "src"))
    try:
        import gen_exports
    finally:
        sys.path.pop(0)
    return gen_exports.table_names(str(SOURCE_DIR / "src" / "shim" / "calls_i.h"))


def listed_names():
    names = {n for n, cls in table_calls() if cls != "PASS"}
    for line in (SOURCE_DIR / "src" / "exports" / "engine.sym").read_text().splitlines():
        line = line.strip()
        if line:
            assert line.endswith(";"), f"engine.sym: {line!r} is not 'name;'"
            names.add(line[:-1])
    return names


def test_exports_equal_the_lists():
    exported, listed = dynamic_names(SHIM_LIB), listed_names()
    assert sorted(exported - listed) == [], "exported but not listed"
    assert sorted(listed - exported) == [], "listed but not exported"


def test_every_wrapper_is_a_libc_name():
    # A wrapper under a name libc does not export would never be called (the
    # _FILE_OFFSET_BITS=64 renaming trap): each non-bufshim export must be libc's.
    libc = dynamic_names(LIBC)
    ours = {n for n in dynamic_names(SHIM_LIB) if not n.startswith("bufshim_")}
    assert sorted(ours - libc) == []


def test_both_names_of_large_file_functions_are_wrapped():
    exported = dynamic_names(SHIM_LIB)
    for name in ("open", "open64", "openat", "openat64", "creat", "creat64", "lseek", "lseek64",
                 "fstat", "fstat64", "stat", "stat64", "pread", "pread64", "__open_2",
                 "__open64_2", "write", "writev", "close", "dup2", "fcntl", "fcntl64"):
        assert name in exported, name
