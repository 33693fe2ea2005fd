"""Descriptors opened with O_SYNC or O_DSYNC are not diverted (doc/behaviour.md §2): the
program asked for each write to be durable when it returns. Under strace every write(2) of
the program on such a descriptor must reach the file as its own system call, while an
ordinary appending descriptor to another matched file in the same program is diverted
(fewer writes reach it). The files are compared with the run without the shim.
"""
import pytest

from conftest import helper_path
from diversion import assert_diverted
from shim_fixture import run_plain, run_shimmed, strace_writes

PY = "/usr/bin/python3"
N = 50
LONG = 30

PY_PROG = r"""
import fcntl, os, sys
flag = os.O_SYNC if sys.argv[1] == "sync" else os.O_DSYNC
how = os.O_APPEND if sys.argv[2] == "append" else os.O_TRUNC
s = os.open("s.log", os.O_WRONLY | os.O_CREAT | how | flag, 0o644)
a = open("a.log", "a", buffering=1)
for i in range(int(sys.argv[3])):
    os.write(s, f"sync {i}\n".encode())
    a.write(f"append {i}\n")
print("flags", "kept" if fcntl.fcntl(s, fcntl.F_GETFL) & flag == flag else "lost")
"""


def run_both(tmp_path, argv):
    outs = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        if mode == "plain":
            outs[mode] = run_plain(argv, cwd=d).stdout
        else:
            outs[mode] = run_shimmed(argv, cwd=d, paths=[f"{d}/*.log"], interval=LONG,
                                     stats=tmp_path / "shim.stats",
                                     strace=tmp_path / "strace.log").stdout
    assert outs["shim"] == outs["plain"]
    d = tmp_path / "shim"
    for name in ("s.log", "a.log"):
        assert (d / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    sync_writes = strace_writes(tmp_path / "strace.log", d / "s.log")
    append_writes = strace_writes(tmp_path / "strace.log", d / "a.log")
    # Every write of the program on the O_SYNC/O_DSYNC descriptor went to the kernel.
    assert len(sync_writes) == N, (
        f"{len(sync_writes)} write calls reached s.log for the program's {N}: "
        "an O_SYNC/O_DSYNC descriptor was diverted")
    assert all(n == len(f"sync {i}\n") for i, (_, _, _, n) in enumerate(sync_writes))
    # The ordinary appending descriptor in the same program was diverted.
    assert len(append_writes) < N, f"{len(append_writes)} writes reached a.log: not diverted"
    assert_diverted(tmp_path / "shim.stats", d / "a.log")


@pytest.mark.parametrize("flag", ["sync", "dsync"])
def test_c_sync_descriptor_is_not_diverted(tmp_path, flag):
    run_both(tmp_path, [str(helper_path("sync_writes")), flag, "s.log", "a.log", str(N)])


@pytest.mark.parametrize("how", ["append", "trunc"])
@pytest.mark.parametrize("flag", ["sync", "dsync"])
def test_python_sync_descriptor_is_not_diverted(tmp_path, flag, how):
    (tmp_path / "prog.py").write_text(PY_PROG)
    run_both(tmp_path, [PY, str(tmp_path / "prog.py"), flag, how, str(N)])
