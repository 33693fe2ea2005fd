"""Node.js under the shim (doc/behaviour.md §4, §8): libuv asks for sizes with syscall(SYS_statx, ...) and
sets times with utimensat, so the shim's virtual size and its barriers must cover the raw
system-call forms too (doc/behaviour.md §4). Compared with the same run without the shim; the shimmed
run must have diverted (tests/diversion.py)."""
import os
import shutil

import pytest

from diversion import assert_diverted
from shim_fixture import run_plain, run_shimmed

LONG = 30


def node():
    n = shutil.which("node") or shutil.which("nodejs")
    if n is None:
        pytest.skip("node is not installed (Debian package nodejs)")
    return n


def both(tmp_path, code):
    """Runs node -e code in tmp_path/plain and tmp_path/shim; returns the two stdouts and
    the two folders after checking the shimmed run diverted d/a.log."""
    out = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        argv = [node(), "-e", code, str(d / "a.log")]
        if mode == "plain":
            out[mode] = run_plain(argv, cwd=d).stdout
        else:
            out[mode] = run_shimmed(argv, cwd=d, paths=[f"{d}/*.log"], interval=LONG,
                                    stats=tmp_path / "shim.stats").stdout
    assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / "a.log")
    return out["plain"], out["shim"], tmp_path / "plain", tmp_path / "shim"


def test_statsync_size_includes_buffered_bytes(tmp_path):
    code = ("const fs = require('fs'); const f = process.argv[1];\n"
            "for (let i = 0; i < 100; i++) fs.appendFileSync(f, `line ${i}\\n`);\n"
            "console.log(fs.statSync(f).size);\n"
            "const fd = fs.openSync(f, 'a'); fs.writeSync(fd, 'more\\n');\n"
            "console.log(fs.fstatSync(fd).size); fs.closeSync(fd);\n"
            "console.log(fs.lstatSync(f).size);\n")
    plain, shim, pd, sd = both(tmp_path, code)
    assert plain == "790\n795\n795\n"
    assert shim == plain
    assert (sd / "a.log").read_bytes() == (pd / "a.log").read_bytes()


def test_utimessync_after_appends(tmp_path):
    code = ("const fs = require('fs'); const f = process.argv[1];\n"
            "for (let i = 0; i < 20; i++) fs.appendFileSync(f, `line ${i}\\n`);\n"
            "fs.utimesSync(f, 1000000000, 1100000000);\n"
            "const s = fs.statSync(f, {bigint: true});\n"
            "console.log(s.mtimeNs.toString(), s.size.toString());\n")
    plain, shim, pd, sd = both(tmp_path, code)
    assert plain == "1100000000000000000 150\n"
    assert shim == plain
    st_p, st_s = os.stat(pd / "a.log"), os.stat(sd / "a.log")
    assert (st_s.st_mtime_ns, st_s.st_atime_ns) == (st_p.st_mtime_ns, st_p.st_atime_ns)
    assert (sd / "a.log").read_bytes() == (pd / "a.log").read_bytes()
