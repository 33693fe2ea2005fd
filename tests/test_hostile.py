"""Programs that are hard on a shim (doc/behaviour.md §7, §9, §10): they close every descriptor, run
out of descriptors or memory, write from constructors before the shim initialised,
or load the shim twice. Output must match the run without the shim."""
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, assert_no_sanitizer_report, helper_path, sanitizer_runtime
from lifecycle_util import lifecycle, shim_env
from shim_fixture import assert_diverted, read_stats


def with_stats(env, tmp_path):
    """env with BUFSHIM_STATS in tmp_path (not a target): see diverted()."""
    env["BUFSHIM_STATS"] = str(tmp_path / "shim.stats")
    return env


def diverted(tmp_path, what):
    """The shimmed run gathered some target's calls into fewer batches."""
    assert_diverted(read_stats(tmp_path / "shim.stats"), what)


def expected(count):
    return "".join(f"h {i}\n" for i in range(count)).encode()


def hostile(path, mode, env):
    p = subprocess.run([str(helper_path("hostile")), str(path), mode], env=env,
                       capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    return p


@pytest.mark.parametrize("mode", ["close_range", "close_loop", "closefrom"])
def test_closing_every_descriptor(tmp_path, mode):
    path = tmp_path / "a.log"
    p = hostile(path, mode, with_stats(shim_env([str(tmp_path / "*.log")], "30"), tmp_path))
    assert p.returncode == 0, p.stderr
    assert path.read_bytes() == expected(1000)
    diverted(tmp_path, mode)


def test_descriptors_exhausted_by_the_program(tmp_path):
    """The batch cannot open the path (EMFILE): it writes through the target's
    own descriptor instead."""
    path = tmp_path / "a.log"
    p = hostile(path, "nofile", shim_env([str(tmp_path / "*.log")], "0.05",
                                         {"BUFSHIM_DEBUG": "1"}))
    assert p.returncode == 0, p.stderr
    assert path.read_bytes() == expected(2000)
    # No descriptor is left for the report at exit: the batch debug lines are the
    # proof of diversion (fewer batches than the 2000 writes).
    batches = [ln for ln in p.stderr.splitlines() if ln.startswith("bufshim: batch ")]
    assert 1 <= len(batches) < 2000, p.stderr[-2000:]


@pytest.mark.skipif(sanitizer_runtime() is not None,
                    reason="sanitizer runtimes reserve terabytes of address space, so an "
                           "RLIMIT_AS cap cannot be set under ASan/TSan")
def test_allocation_failure_writes_through(tmp_path):
    path = tmp_path / "a.log"
    p = hostile(path, "nomem", with_stats(shim_env([str(tmp_path / "*.log")], "30"), tmp_path))
    assert p.returncode == 0, p.stderr
    diverted(tmp_path, "nomem")
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 200 + 4096
    for i, line in enumerate(lines):
        assert line.split(b" ")[1] == str(i).encode()
    assert all(len(l) == 65535 for l in lines[200:])


def test_constructor_of_another_library_writes_before_the_shim(tmp_path):
    """A library preloaded after the shim runs its constructor first (the shim
    is not initialised yet) and its destructor last: same file as without it."""
    lib = helper_path("libctor_writer.so")
    rt = sanitizer_runtime()
    results = {}
    for name, preload in (("plain", [str(lib)]),
                          ("shim", [str(BUILD_DIR / "src" / "libbufshim.so"), str(lib)])):
        path = tmp_path / f"{name}.log"
        env = shim_env([str(tmp_path / "shim.log")], "30",
                       {"CTOR_WRITER_PATH": str(path),
                        "LD_PRELOAD": ":".join(([rt] if rt else []) + preload),
                        "BUFSHIM_STATS": str(tmp_path / "shim.stats")})
        p = lifecycle(path, "return", 300, env=env)
        assert_no_sanitizer_report(p.stderr)
        assert p.returncode == 0, p.stderr
        results[name] = path.read_bytes()
    assert results["plain"].startswith(b"ctor\np 0\n")
    assert results["plain"].endswith(b"p 299\ndtor\n")
    assert results["shim"] == results["plain"]
    diverted(tmp_path, "ctor_writer")


def test_shim_loaded_twice(tmp_path):
    """Two copies of the shim in LD_PRELOAD (different paths): the second one
    stays out of the way; nothing is written twice or lost."""
    copy = tmp_path / "copy" / "libbufshim.so"
    copy.parent.mkdir()
    shutil.copy(BUILD_DIR / "src" / "libbufshim.so", copy)
    path = tmp_path / "a.log"
    env = with_stats(shim_env([str(tmp_path / "*.log")], "30"), tmp_path)
    env["LD_PRELOAD"] += ":" + str(copy)
    p = lifecycle(path, "fork", 300, env=env)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    data = path.read_bytes().decode().splitlines()
    assert data == [f"p {i}" for i in range(300)] + [f"c {i}" for i in range(300)] + \
        [f"q {i}" for i in range(300)]
    diverted(tmp_path, "loaded twice")
