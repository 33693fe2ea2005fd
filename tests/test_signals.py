"""Fatal signals at their default action flush, then kill the process by the same
signal: SIGTERM/SIGINT/SIGHUP/SIGQUIT, the crashes (SIGSEGV, SIGBUS, SIGABRT from abort()
and assert(), SIGFPE, SIGILL, a crash handler that re-raises, as Python's faulthandler does)
and SIGPIPE. A handler the program installs keeps its behaviour (doc/behaviour.md §9)."""
import json
import re
import resource
import select
import signal
import subprocess
import time

import pytest

from conftest import SANITIZER, assert_no_sanitizer_report, helper_path
from lifecycle_util import parse_records, shim_env

# Long enough that nothing reaches the file by the interval during a test.
LONG = "30"
PY = "/usr/bin/python3"


def no_core():
    """A crash test must not leave core files behind (nor fill a disk)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start(path, mode, env):
    argv = [str(helper_path("lifecycle_writer")), str(path), mode]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=no_core)
    line = p.stdout.readline()
    assert line == "ready\n", (line, p.stderr.read() if p.poll() is not None else "")
    time.sleep(0.2)  # keep writing a little past "ready"
    return p


def readline_within(p, timeout):
    """p's next stdout line, or the test fails (and p is killed) after timeout seconds:
    a program blocked before its line must not hang the suite."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    if not r:
        p.kill()
        p.communicate(timeout=30)
        pytest.fail(f"no line from the program within {timeout} s")
    return p.stdout.readline()


def assert_held(path):
    """With the long interval, what the program wrote so far is still in the shim's
    buffer: nothing on disk before the signal (the proof that the run diverted)."""
    assert path.stat().st_size == 0, "bytes on disk before the signal: nothing was diverted"


def contiguous(records, tag="l"):
    seq = records.get(tag, [])
    assert seq == list(range(len(seq))), "records missing or out of order"
    return len(seq)


FATAL = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGSEGV,
         signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL, signal.SIGPIPE]

# ASan and TSan install handlers of their own for these (and report the fault): the program
# then does not have them at their default action, so the shim does not stand in.
SANITIZER_HANDLES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
no_sanitizer_handler = pytest.mark.skipif(
    bool(SANITIZER), reason=f"BUFSHIM_TEST_SANITIZER={SANITIZER}: the sanitizer runtime "
                            "handles SIGSEGV, SIGBUS, SIGFPE and SIGILL itself")


@pytest.mark.parametrize("sig", [pytest.param(s, marks=no_sanitizer_handler)
                                 if s in SANITIZER_HANDLES else s for s in FATAL],
                         ids=[s.name for s in FATAL])
def test_default_action_flushes_then_dies_of_the_signal(tmp_path, sig):
    path = tmp_path / "a.log"
    p = start(path, "loop", shim_env([str(tmp_path / "*.log")], LONG))
    assert_held(path)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert_no_sanitizer_report(err)
    assert p.returncode == -sig, (p.returncode, err)
    # Every record written before the signal is there, whole and in order: at
    # least the 1000 written before "ready", which the interval kept in memory.
    assert contiguous(parse_records(path.read_bytes())) >= 1000


def test_without_the_shim_the_same_program_dies_the_same_way(tmp_path):
    """The reference the shimmed runs are held to."""
    path = tmp_path / "a.log"
    p = start(path, "loop", None)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM
    assert contiguous(parse_records(path.read_bytes())) >= 1000


@pytest.mark.parametrize("mode", ["handler-sigaction", "handler-signal"])
def test_program_handler_keeps_its_behaviour_and_exit_flushes(tmp_path, mode):
    path = tmp_path / "a.log"
    p = start(path, mode, shim_env([str(tmp_path / "*.log")], LONG))
    assert_held(path)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert_no_sanitizer_report(err)
    assert p.returncode == 3, err  # the handler's exit(3)
    data = path.read_bytes()
    assert data.endswith(b"handled\n")
    assert contiguous(parse_records(data[: -len(b"handled\n")])) >= 1000


def test_sigaction_reports_sig_dfl_while_the_shim_stands_in(tmp_path):
    path = tmp_path / "a.log"
    p = start(path, "dfl-query", shim_env([str(tmp_path / "*.log")], LONG))
    assert_held(path)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM, (p.returncode, err)
    assert contiguous(parse_records(path.read_bytes())) >= 1000


def test_ignored_signal_stays_ignored(tmp_path):
    """SIG_IGN inherited at start (nohup) is left alone: SIGHUP does nothing."""
    path = tmp_path / "a.log"
    argv = [str(helper_path("lifecycle_writer")), str(path), "loop"]
    p = subprocess.Popen(argv, env=shim_env([str(tmp_path / "*.log")], LONG),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert p.stdout.readline() == "ready\n"
    assert_held(path)
    p.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert p.poll() is None, "SIGHUP killed a program that ignores it"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM
    assert contiguous(parse_records(path.read_bytes())) >= 1000


def test_kill_term_of_a_bash_loop(tmp_path):
    """The acceptance case, with a real bash: every record it wrote is in the file
    and its status is 'killed by SIGTERM'."""
    path = tmp_path / "b.log"
    script = f'i=0; while :; do echo "l $i" >> {path}; i=$((i+1)); ' \
             f'if [ $i = 1000 ]; then echo ready; fi; done'
    p = subprocess.Popen(["bash", "-c", script], env=shim_env([str(tmp_path / "*.log")], LONG),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    time.sleep(0.2)
    assert_held(path)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM, (p.returncode, err)
    assert contiguous(parse_records(path.read_bytes())) >= 1000


def test_second_signal_kills_when_the_flush_is_stuck(slowfs):
    """The program waits in fsync (a barrier) for a batch hung on a dead mount: the
    first SIGTERM's flush waits for it; a second SIGTERM kills at once, as the first
    would have without the shim."""
    slowfs.ctl("hang write path=a.log")
    argv = [str(helper_path("lifecycle_writer")), str(slowfs.path("a.log")), "fsync", "100"]
    p = subprocess.Popen(argv, env=shim_env([str(slowfs.mount / "*.log")], "0.1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slowfs.wait_hung(1, timeout=20)
    # Without the shim the program hangs in its first write, before its line.
    assert readline_within(p, 10) == "ready\n"
    time.sleep(0.3)  # in fsync now, waiting for the hung batch
    p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.poll() is None, "the first SIGTERM did not wait for the flush"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert_no_sanitizer_report(err)
    assert p.returncode == -signal.SIGTERM


def run_pair(tmp_path, argv_of, files, normalise=lambda b: b):
    """Runs argv_of(folder) without and with the shim (interval 30 s: nothing is written by
    a batch before the death); returns both processes. The shimmed run must have diverted
    (BUFSHIM_STATS: records above batches for some target)."""
    out = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        env = shim_env([str(d / "*.log")], LONG, {"BUFSHIM_STATS": tmp_path / "shim.stats"}) \
            if mode == "shim" else None
        p = subprocess.run(argv_of(d), env=env, cwd=d, capture_output=True, text=True,
                           timeout=60, preexec_fn=no_core)
        assert_no_sanitizer_report(p.stderr)
        out[mode] = p
    for name in files:
        assert normalise((tmp_path / "shim" / name).read_bytes()) == \
            normalise((tmp_path / "plain" / name).read_bytes()), name
    stats = [json.loads(line) for line in (tmp_path / "shim.stats").read_text().splitlines()
             if line.startswith("{")]
    assert any(t.get("records", 0) > t.get("batches", 0) for t in stats), stats
    return out["plain"], out["shim"]


@pytest.mark.parametrize("mode", ["assert", pytest.param("segv", marks=no_sanitizer_handler)])
def test_crash_of_a_c_program_keeps_its_last_lines(tmp_path, mode):
    """A C program writes its records, then a line to stderr (stdio), then fails an assert
    (abort, SIGABRT) or writes through NULL (a real SIGSEGV): the records and the stderr line
    (assert's own message included) are in their files, as without the shim."""
    def argv(d):
        return ["bash", "-c", f'exec 2>>{d}/err.log; exec {helper_path("lifecycle_writer")} '
                              f'{d}/a.log {mode} 500']
    plain, shim = run_pair(tmp_path, argv, ["a.log", "err.log"])
    assert plain.returncode == shim.returncode, (plain.returncode, shim.returncode, shim.stderr)
    assert (tmp_path / "shim" / "err.log").read_text().startswith("about to")


def test_bash_killing_itself_with_sigabrt(tmp_path):
    """bash -c 'echo ... >&2; kill -ABRT $$' with stderr to a matched file."""
    def argv(d):
        return ["bash", "-c", f"exec 2>>{d}/err.log; echo one >&2; echo two >&2; "
                              f"echo fatal >&2; kill -ABRT $$"]
    plain, shim = run_pair(tmp_path, argv, ["err.log"])
    assert plain.returncode == shim.returncode == -signal.SIGABRT
    assert (tmp_path / "shim" / "err.log").read_text() == "one\ntwo\nfatal\n"


@no_sanitizer_handler
def test_python_faulthandler_report_reaches_its_file(tmp_path):
    """A real python3 enables faulthandler on a matched file, writes lines to another, and
    crashes (faulthandler._sigsegv): faulthandler's traceback, written from its handler
    before it re-raises SIGSEGV, is in its file, and so are the lines."""
    code = ("import faulthandler\n"
            "f = open('crash.log', 'w')\n"
            "faulthandler.enable(file=f)\n"
            "g = open('a.log', 'a')\n"
            "for i in range(50):\n"
            "    g.write(f'line {i}\\n'); g.flush()\n"
            "faulthandler._sigsegv()\n")
    # The report names the thread by its address, which differs from run to run.
    plain, shim = run_pair(tmp_path, lambda d: [PY, "-c", code], ["a.log", "crash.log"],
                           normalise=lambda b: re.sub(rb"0x[0-9a-f]+", b"0x?", b))
    assert plain.returncode == shim.returncode == -signal.SIGSEGV
    assert "Segmentation fault" in (tmp_path / "shim" / "crash.log").read_text()


def test_sigpipe_of_a_bash_writing_to_a_closed_pipe(tmp_path):
    """bash logs to a matched file, then writes to a pipe whose reader is gone: it dies of
    SIGPIPE, and what it logged is in the file."""
    def argv(d):
        # The reader goes first (its fork, and sleep's, are barriers that would flush the
        # log lines); then only builtins run.
        return ["bash", "-c", f"exec 3>>{d}/a.log; exec 1> >(true); sleep 0.2; "
                              f"for i in 1 2 3 4 5; do echo log $i >&3; done; "
                              f"while :; do echo y; done"]
    plain, shim = run_pair(tmp_path, argv, ["a.log"])
    assert plain.returncode == shim.returncode == -signal.SIGPIPE, (plain, shim)
    assert (tmp_path / "shim" / "a.log").read_text() == "".join(f"log {i}\n" for i in range(1, 6))


@no_sanitizer_handler
def test_crash_while_a_batch_hangs_dies_and_writes_the_other_files(slowfs, tmp_path):
    """A real python3 writes to a file on slowfs, whose batch then hangs (a dead mount), and
    to a local file, then dies of SIGSEGV: the process dies at once rather than waiting for
    the hung batch (no second signal would come to end that wait), the local file has its
    lines, and the loss of the hung file's bytes is reported on stderr."""
    slowfs.ctl("hang write path=a.log")
    local = tmp_path / "b.log"
    code = ("import os, signal, time\n"
            f"a = os.open({str(slowfs.path('a.log'))!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
            f"b = os.open({str(local)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
            "os.write(a, b'hung\\n')\n"
            "print('ready', flush=True)\n"
            "time.sleep(1)\n"
            "for i in range(10):\n"
            "    os.write(b, b'b %d\\n' % i)\n"
            "os.kill(os.getpid(), signal.SIGSEGV)\n")
    env = shim_env([str(slowfs.mount / "*.log"), str(tmp_path / "*.log")], "0.1")
    p = subprocess.Popen([PY, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=no_core)
    assert readline_within(p, 20) == "ready\n"
    slowfs.wait_hung(1, timeout=20)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the crashing process waited for the hung batch")
    assert_no_sanitizer_report(err)
    assert p.returncode == -signal.SIGSEGV, (p.returncode, err)
    assert local.read_text() == "".join(f"b {i}\n" for i in range(10))
    assert "could not be written" in err, err
