"""stdout as a target, into a pipe whose reader goes away: the program sees
SIGPIPE/EPIPE as it would without the shim, and does not run on filling memory
(doc/behaviour.md §10)."""
import signal
import subprocess

from conftest import assert_no_sanitizer_report
from shim_fixture import shim_env


def test_yes_into_head_dies_of_sigpipe(tmp_path):
    """`yes | head -1`: yes is killed by SIGPIPE (status 141 in bash) soon after
    head exits, as without the shim."""
    script = 'yes | head -1; echo "status ${PIPESTATUS[0]}"'
    plain = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    p = subprocess.run(["bash", "-c", script], env=shim_env("stdout", "0.2"),
                       capture_output=True, text=True, timeout=60)
    assert_no_sanitizer_report(p.stderr)
    assert plain.stdout == "y\nstatus 141\n"
    assert p.stdout == plain.stdout, p.stderr


def test_python_sees_broken_pipe(tmp_path):
    """A python3 program with SIGPIPE ignored (its default) gets EPIPE as
    BrokenPipeError on a later write."""
    code = ("import sys\n"
            "try:\n"
            "    while True: print('x' * 100)\n"
            "except BrokenPipeError:\n"
            "    sys.stderr.write('EPIPE seen\\n'); sys.stderr.flush(); sys.exit(3)\n")
    script = f'/usr/bin/python3 -c "{code}" | head -1; echo "status ${{PIPESTATUS[0]}}"'
    p = subprocess.run(["bash", "-c", script], env=shim_env("stdout", "0.2"),
                       capture_output=True, text=True, timeout=60)
    assert_no_sanitizer_report(p.stderr)
    assert p.stdout == "x" * 100 + "\nstatus 3\n", p.stderr
    assert "EPIPE seen" in p.stderr


def test_program_killed_by_sigpipe_directly(tmp_path):
    """The writer of a pipe whose reader is gone dies of SIGPIPE (not of memory)."""
    r = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    w = subprocess.Popen(["yes"], stdout=r.stdin, env=shim_env("stdout", "0.1"),
                         stderr=subprocess.PIPE)
    r.stdin.close()
    r.wait(timeout=30)
    _, err = w.communicate(timeout=30)
    assert_no_sanitizer_report(err.decode())
    assert w.returncode == -signal.SIGPIPE
