"""What a short process pays for the shim, checked by what it does rather than by time
(timing is tools/bench's, scenario (h)): descriptors are looked at when first used, not in a
scan at start; no writer thread starts before something is appended, nor for what is
appended while the process exits; a target closed while the process exits keeps no
descriptor of the shim's, its bytes written by the final flush.
Real programs: coreutils' /bin/echo and /bin/true, GNU bash. Every case also checks that the
shim did divert (the write reaches the file from a descriptor opened by path after the
program's own close, or the stats count records)."""
import re
import shutil

import pytest

from conftest import SANITIZER
from shim_fixture import STRACE, run_plain, run_shimmed

pytestmark = pytest.mark.skipif(
    STRACE is None or bool(SANITIZER),
    reason="needs strace and a build without sanitizers (their runtimes make system calls "
           "of their own at start)")

BASH = shutil.which("bash")


def trace(tmp_path, argv, paths, calls):
    log = tmp_path / "strace.log"
    r = run_shimmed(argv, paths=paths, interval="5", strace=log, strace_calls=calls,
                    cwd=tmp_path)
    return r, log.read_text(errors="replace")


def test_inherited_descriptor_not_used_is_not_looked_at(tmp_path):
    """bash opens fd 7 on a matched file and execs /bin/true, which never touches it: the
    shim in /bin/true lists no /proc/self/fd and reads no link of fd 7. /bin/echo with fd 1
    on the same file then does look at fd 1 and diverts it."""
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec 7>>{log_file}; exec /bin/true"],
                    [f"{tmp_path}/*.log"], "openat,getdents64,readlink,execve")
    after_exec = text[text.rindex("execve(\"/bin/true\""):]
    assert "/proc/self/fd" not in after_exec.replace("/proc/self/fd/", "/proc/self/fd:"), \
        after_exec
    assert "getdents64" not in after_exec, after_exec
    assert "/proc/self/fd/7" not in after_exec, after_exec

    r, text = trace(tmp_path, [BASH, "-c", f"exec >>{log_file}; exec /bin/echo hi"],
                    [f"{tmp_path}/*.log"], "readlink,write,openat,close,execve")
    after_exec = text[text.rindex("execve(\"/bin/echo\""):]
    assert "readlink(\"/proc/self/fd/1\"" in after_exec, after_exec
    assert log_file.read_text() == "hi\n"


def test_echo_at_exit_takes_no_kept_descriptor_and_its_bytes_land(tmp_path):
    """/bin/echo writes "hi" through stdio, which coreutils flushes and closes in an atexit
    handler (close_stdout). Under the shim the write is diverted (it reaches the file through
    a descriptor the final flush opened by path, after echo's own close of fd 1); nothing
    reopens fd 1 to keep the file (no /proc/PID/fd/1 open by anyone); no writer thread
    starts, since the append came during the exit, whose final flush follows; and the file
    holds the line."""
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec >>{log_file}; exec /bin/echo hi"],
                    [f"{tmp_path}/*.log"], "write,openat,close,execve,pidfd_getfd,clone,clone3")
    after_exec = text[text.rindex("execve(\"/bin/echo\""):]
    assert log_file.read_text() == "hi\n"
    lines = after_exec.splitlines()
    close1 = next(i for i, l in enumerate(lines) if re.search(r"\bclose\(1<", l))
    write = next(i for i, l in enumerate(lines) if re.search(r'\bwrite\(\d+<[^>]*a\.log>, "hi', l))
    assert write > close1, after_exec  # diverted: without the shim echo writes before closing
    assert not re.search(r"/proc/\d+/(task/\d+/)?fd/1", after_exec), after_exec
    assert "pidfd_getfd" not in after_exec, after_exec
    assert "CLONE_THREAD" not in after_exec, after_exec


def test_no_writer_thread_until_something_is_appended(tmp_path):
    """bash opens a matched file for appending and never writes to it: the target exists
    but no thread is started (no clone with CLONE_THREAD). Writing one line then starts
    one, and the line lands."""
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec 3>>{log_file}; exec 3>&-; true"],
                    [f"{tmp_path}/*.log"], "clone,clone3,openat,openat2")
    assert f"{log_file}" in text  # bash did open it
    assert "CLONE_THREAD" not in text, text

    r, text = trace(tmp_path, [BASH, "-c", f"exec 3>>{log_file}; echo one >&3; exec 3>&-"],
                    [f"{tmp_path}/*.log"], "clone,clone3,openat,openat2,write")
    assert "CLONE_THREAD" in text, text
    assert log_file.read_text() == "one\n"


def caught_signals(pid_status_text):
    return int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", pid_status_text, re.M).group(1), 16)


def test_no_signal_handler_before_anything_is_diverted(tmp_path):
    """A real python3 under the shim, with a matched folder it does not write to, catches
    the same signals as without the shim (its /proc/self/status SigCgt): the shim's
    stand-ins wait for the first diverted append. After one, SIGTERM is caught (by the
    stand-in) while sigaction still reports SIG_DFL to the program."""
    code = ("import sys, signal\n"
            "print(open('/proc/self/status').read())\n"
            "if len(sys.argv) > 1:\n"
            "    f = open(sys.argv[1], 'a'); f.write('x\\n'); f.flush()\n"
            "    print(open('/proc/self/status').read())\n"
            "    print('reported', signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n")
    plain = run_plain(["/usr/bin/python3", "-c", code], cwd=tmp_path).stdout
    shim = run_shimmed(["/usr/bin/python3", "-c", code], paths=[f"{tmp_path}/*.log"],
                       cwd=tmp_path).stdout
    assert caught_signals(shim) == caught_signals(plain)
    log_file = tmp_path / "a.log"
    out = run_shimmed(["/usr/bin/python3", "-c", code, str(log_file)],
                      paths=[f"{tmp_path}/*.log"], cwd=tmp_path).stdout
    before, after = out.split("SigCgt")[1], out.split("SigCgt")[2]
    sigterm = 1 << (15 - 1)
    assert not caught_signals("SigCgt" + before) & sigterm
    assert caught_signals("SigCgt" + after) & sigterm
    assert "reported True" in out
    assert log_file.read_text() == "x\n"
