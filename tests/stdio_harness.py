"""Differential runs for the stdio tests: the same program without and with the shim.

Each run gets a directory of its own; the program's output file is inside it and
BUFSHIM_PATHS matches it, so the shimmed run diverts every write to it. The two
output files must be byte-identical. Unlike shim_fixture.assert_same_files, the
program's stdout and stderr can be appended to that same file (a shell's `>>`),
which is what the std-stream scenarios need. As there, the shimmed run must also
prove that it diverted: its BUFSHIM_STATS report must show more records than
batches for the file (run_pair's ``diverted``).
"""
import re
import subprocess

import pytest

from conftest import BUILD_DIR, SANITIZER, assert_no_sanitizer_report, sanitizer_runtime
from shim_fixture import SHIM_LIB, STRACE, assert_diverted, read_stats
from shim_fixture import shim_env as fixture_env


def shim_library():
    return SHIM_LIB


def shim_env(paths, extra=None):
    """Environment that preloads the shim with BUFSHIM_PATHS=paths."""
    return fixture_env(paths=paths, interval="1", env=extra)


def plain_env(extra=None):
    """Environment without the shim. Under a sanitizer setup its runtime is
    preloaded here too: it changes stdio's behaviour at fork and exit (TSan
    flushes streams itself), and both runs must see the same libc."""
    env = fixture_env(preload=False, env=extra)
    rt = sanitizer_runtime()
    if rt:
        env["LD_PRELOAD"] = rt
    return env


class Run:
    def __init__(self, directory, out, proc, stderr):
        self.dir = directory
        self.out = out
        self.proc = proc
        self.stderr = stderr

    @property
    def data(self):
        return self.out.read_bytes() if self.out.exists() else b""


def run_one(argv_of, directory, shim, stdout_to_file=True, stderr_to_file=False,
            env_extra=None, timeout=60, wrap=None, stdin=None, redirect="ab", stats=None):
    """Runs argv_of(out_path) with stdout/stderr on out_path as asked: appended
    (a shell's >>) or, with redirect="wb", truncated without O_APPEND (>). With
    stats (a path), the shimmed run appends its BUFSHIM_STATS report there."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "out.log"
    if stats is not None:
        env_extra = {**(env_extra or {}), "BUFSHIM_STATS": str(stats)}
    env = shim_env(str(directory) + "/*.log", env_extra) if shim else plain_env(env_extra)
    argv = [str(a) for a in argv_of(out)]
    if SANITIZER == "address" and not argv[0].startswith(str(BUILD_DIR)):
        # As shim_fixture: the leaks of programs that are not our helpers
        # (python3, stdbuf, the small programs compiled by the tests) are not ours.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    if wrap:
        # The tracer itself must not run under the shim: only the tracee gets it.
        preload = env.pop("LD_PRELOAD", None)
        argv = wrap(directory) + (["-E", "LD_PRELOAD=" + preload] if preload else []) + argv
    errfile = directory / "stderr.txt"
    with open(out, redirect) as o, open(errfile, "wb") as e:
        proc = subprocess.run(argv, env=env, stdout=o if stdout_to_file else subprocess.DEVNULL,
                              stderr=o if stderr_to_file else e, timeout=timeout,
                              stdin=stdin if stdin is not None else subprocess.DEVNULL)
    err = errfile.read_text(errors="replace")
    if shim:
        assert_no_sanitizer_report(err)
    return Run(directory, out, proc, err)


def run_pair(tmp_path, argv_of, ok_codes=(0,), diverted=True, **kw):
    """Runs without and with the shim; asserts the exit codes and identical files,
    and (diverted) that the shimmed run gathered some target's calls into fewer
    batches. Returns (plain, shimmed); shimmed.stats is its parsed report."""
    stats = tmp_path / "shim.stats"
    plain = run_one(argv_of, tmp_path / "plain", False, **kw)
    shimmed = run_one(argv_of, tmp_path / "shim", True, stats=stats, **kw)
    shimmed.stats = read_stats(stats)
    assert plain.proc.returncode in ok_codes, plain.stderr
    assert shimmed.proc.returncode == plain.proc.returncode, shimmed.stderr
    assert plain.data, "the scenario wrote nothing: the comparison would prove nothing"
    assert_same(plain.data, shimmed.data)
    if diverted:
        assert_diverted(shimmed.stats, "run_pair")
    return plain, shimmed


def assert_same(a, b):
    if a == b:
        return
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    raise AssertionError(
        f"files differ: {len(a)} bytes without the shim, {len(b)} with it; first difference at "
        f"byte {n}:\n  without: {a[max(0, n - 60):n + 60]!r}\n  with:    {b[max(0, n - 60):n + 60]!r}")



# LeakSanitizer cannot run under ptrace: the strace counts are for plain builds.
needs_strace = pytest.mark.skipif(STRACE is None or SANITIZER != "",
                                  reason="needs strace and a build without sanitizers")


def strace_wrap(directory):
    return [STRACE, "-f", "-y", "-qq", "-e", "trace=write,writev,pwrite64,pwritev,pwritev2",
            "-o", str(directory / "strace.txt")]


def writes_to(directory, path):
    """Write-family syscalls in the strace log that reached path (strace -y)."""
    log = (directory / "strace.txt").read_text(errors="replace")
    pat = re.compile(r"^\d+\s+(write|writev|pwrite64|pwritev2?)\(\d+<" + re.escape(str(path)) + r">")
    return [line for line in log.splitlines() if pat.search(line)]
