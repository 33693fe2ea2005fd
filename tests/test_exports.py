"""libbufshim.so exports exactly the public API (the BUFSHIM_EXPORT declarations of
include/bufshim.h) and the wrapped calls of the call table (src/shim/calls_i.h), and nothing
else; the API carries the version node BUFSHIM_1, the wrapped calls the base version (the only
one a program's reference to libc's write@GLIBC_2.2.5 binds to), and the SONAME is versioned."""
import os
import re
import subprocess
import sys

from conftest import SOURCE_DIR
from shim_fixture import SHIM_LIB

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
API_NODE = "BUFSHIM_1"


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
    """(name, class) of every X(name, kind, class, ...) line of the BS_CALLS table."""
    out = []
    for line in (SOURCE_DIR / "src" / "shim" / "calls_i.h").read_text().splitlines():
        m = re.match(r"\s*X\((\w+),\s*(\w+),\s*(\w+),", line)
        if m:
            out.append((m.group(1), m.group(3)))
    return out


def api_names():
    """The public API, read off bufshim.h as src/gen_exports.py reads it for the version script."""
    sys.path.insert(0, str(SOURCE_DIR / "src"))
    try:
        import gen_exports
    finally:
        sys.path.pop(0)
    return set(gen_exports.api_names(str(SOURCE_DIR / "include" / "bufshim.h")))


def wrapped_names():
    return {n for n, cls in table_calls() if cls != "PASS"}


def dynamic_versions(path):
    """{name: version} of the defined dynamic symbols; version '' for the base version."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", str(path)], capture_output=True,
                         text=True, check=True).stdout
    versions = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0].endswith(":") and parts[6] != "UND" \
                and parts[3] in ("FUNC", "IFUNC"):
            name, _, version = parts[7].partition("@")
            versions[name] = version.lstrip("@")
    return versions


def test_the_api_is_read_off_the_header():
    assert api_names() == {"bufshim_open", "bufshim_open_file", "bufshim_append", "bufshim_flush",
                           "bufshim_close"}


def test_exports_equal_the_lists():
    exported, listed = dynamic_names(SHIM_LIB), api_names() | wrapped_names()
    assert sorted(exported - listed) == [], "exported but not listed"
    assert sorted(listed - exported) == [], "listed but not exported"


def test_the_api_has_a_version_node_and_the_wrappers_the_base_version():
    versions = dynamic_versions(SHIM_LIB)
    assert {n: versions.get(n) for n in api_names()} == {n: API_NODE for n in api_names()}
    versioned = sorted(n for n in wrapped_names() if versions.get(n, "") != "")
    assert versioned == [], "a wrapper with a version node would never be called"


def test_soname_is_versioned_and_libbufshim_so_is_the_name_to_preload():
    out = subprocess.run(["readelf", "-d", str(SHIM_LIB)], capture_output=True, text=True,
                         check=True).stdout
    soname = re.search(r"\(SONAME\)\s+Library soname: \[([^]]+)\]", out).group(1)
    assert re.fullmatch(r"libbufshim\.so\.\d+", soname), soname
    # build/src/libbufshim.so is a symlink to the file that carries the SONAME.
    assert os.path.basename(os.path.realpath(SHIM_LIB)) == soname


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
