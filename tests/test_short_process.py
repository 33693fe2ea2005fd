"""What a short process pays for the shim, checked by what it does rather than by time
(timing is tools/bench's, scenario (h)): descriptors are looked at when first used, not in a
scan at start; no writer thread starts before something is appended, nor for what is
appended while the process exits; the first write made while the process exits to a target
with nothing queued goes straight to the file, later ones wait for the final flush.
Real programs: coreutils' /bin/echo, /bin/true and seq, GNU bash. Every case also checks
that the shim did its part (it read the descriptor's link, or the write reaches the file from a
descriptor opened by path after the program's own close)."""
import re
import shutil

import pytest

from conftest import SANITIZER, helper_path
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


def lines_of_exec(text, exe):
    """The trace's lines of the process that exec'd exe, from that exec on (strace -f also
    follows the crash-safety keeper, which a shimmed process may start)."""
    start = text.rindex(f'execve("{exe}"')
    line_start = text.rfind("\n", 0, start) + 1
    pid = text[line_start:start].split()[0]
    out = []
    for l in text[line_start:].splitlines():
        if not l.split() or l.split()[0] != pid:
            continue
        resumed = re.search(r"<\.\.\. \w+ resumed>(.*)$", l)
        if resumed and out and out[-1].endswith("<unfinished ...>"):
            out[-1] = out[-1][:-len("<unfinished ...>")].rstrip() + resumed.group(1)
        else:
            out.append(l)
    return out


def first_close_of_fd1(lines):
    return next(i for i, l in enumerate(lines) if re.search(r"\bclose\(1<", l))


def writes_to_a_log(lines):
    """(index, line) of every write(2) the lines show to the test's a.log."""
    return [(i, l) for i, l in enumerate(lines) if re.search(r'\bwrite\(\d+<[^>]*a\.log>', l)]


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


def test_echo_at_exit_writes_straight_to_the_file(tmp_path):
    """/bin/echo writes "hi" through stdio, which coreutils flushes and closes in an atexit
    handler (close_stdout). That is the process's first write to the target while it
    leaves, with nothing queued, so it goes to the kernel on echo's own descriptor, as
    without the shim: the final flush would have written it a few microseconds later, at
    the price of a spool and an open and a close of the file (bs_target_exit_through,
    target.c). The shim did take fd 1 for a target (it read its link), yet it made no
    spool, started no thread, opened nothing to keep or write the file, and the write
    comes before echo's close of fd 1, as in the run without the shim."""
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec >>{log_file}; exec /bin/echo hi"],
                    [f"{tmp_path}/*.log"],
                    "readlink,write,openat,close,execve,pidfd_getfd,clone,clone3")
    after_exec = text[text.rindex("execve(\"/bin/echo\""):]
    assert log_file.read_text() == "hi\n"
    assert 'readlink("/proc/self/fd/1"' in after_exec, after_exec  # looked at: a target
    lines = after_exec.splitlines()
    writes = writes_to_a_log(lines)
    assert len(writes) == 1 and re.search(r'\bwrite\(1<[^>]*a\.log>, "hi\\n", 3\) = 3',
                                          writes[0][1]), after_exec
    assert writes[0][0] < first_close_of_fd1(lines), after_exec
    assert ".spool" not in after_exec, after_exec
    assert not re.search(r"openat\([^\n]*a\.log", after_exec), after_exec
    assert not re.search(r"/proc/\d+/(task/\d+/)?fd/1", after_exec), after_exec
    assert "pidfd_getfd" not in after_exec, after_exec
    assert "CLONE_THREAD" not in after_exec, after_exec


def test_seq_writes_in_main_and_at_exit_and_the_file_gets_one_batch(tmp_path):
    """GNU seq 2000 prints 8,893 bytes through stdio: a full 4 KiB buffer written while
    main runs (diverted, queued), the rest when coreutils closes stdout at exit. The exit's
    write finds bytes queued, so it is appended behind them rather than sent ahead: the
    file gets all of it in one write, from a descriptor the flush opened by path after
    seq's close of fd 1, and it is the file the run without the shim makes."""
    seq = shutil.which("seq")
    plain = tmp_path / "plain.log"
    run_plain([BASH, "-c", f"exec >>{plain}; exec {seq} 2000"], cwd=tmp_path)
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec >>{log_file}; exec {seq} 2000"],
                    [f"{tmp_path}/a.log"], "write,openat,close,execve")
    lines = lines_of_exec(text, seq)
    after_exec = "\n".join(lines)
    assert log_file.read_bytes() == plain.read_bytes()
    assert len(plain.read_bytes()) == 8893
    writes = writes_to_a_log(lines)
    assert len(writes) == 1, after_exec
    assert writes[0][0] > first_close_of_fd1(lines) and writes[0][1].endswith("= 8893"), after_exec


def test_many_writes_at_exit_only_the_first_goes_straight(tmp_path):
    """An atexit handler writes 100 lines with write(2), one call each, and nothing was
    written before: the first line goes to the kernel on the program's descriptor, the
    other 99 are appended and reach the file in one batch at the final flush, so the
    drive sees two writes where the program made 100; the lines keep their order."""
    exe = helper_path("stdio_exit")
    log_file = tmp_path / "a.log"
    r, text = trace(tmp_path, [BASH, "-c", f"exec >>{log_file}; exec {exe} atexit_write "
                               f"{tmp_path}/other.txt"],
                    [f"{tmp_path}/a.log"], "write,openat,close,execve")
    assert r.returncode == 0, r.stderr
    assert log_file.read_text() == "".join(f"atexit write {i}\n" for i in range(100))
    lines = lines_of_exec(text, exe)
    writes = [l for _, l in writes_to_a_log(lines)]
    assert len(writes) == 2, "\n".join(lines)
    assert re.search(r'\bwrite\(1<[^>]*a\.log>, "atexit write 0\\n", 15\)', writes[0]), writes
    assert writes[1].endswith(f"= {len(log_file.read_bytes()) - 15}"), writes


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
