"""Random mixes of every stdio output call and direct writes on one file (doc/behaviour.md §5):
several descriptors and FILE streams, stdout and stderr redirected to the same
file, inline putc_unlocked, fflush, partial lines, fwrites larger than the
buffers, seed-chosen setvbuf and ending. Byte-identical with and without the shim."""
import subprocess

import pytest

from conftest import helper_path
from shim_fixture import assert_diverted, read_stats
from stdio_harness import (assert_same, needs_strace, plain_env, run_pair, shim_env, strace_wrap,
                           writes_to)

SEEDS = range(50)


@pytest.mark.parametrize("seed", SEEDS)
def test_mix_fortify(tmp_path, seed):
    exe = helper_path("stdio_mix")
    run_pair(tmp_path, lambda out: [exe, seed, out], stderr_to_file=True)


@pytest.mark.parametrize("seed", range(100, 120))
def test_mix_plain(tmp_path, seed):
    exe = helper_path("stdio_mix_plain")
    run_pair(tmp_path, lambda out: [exe, seed, out], stderr_to_file=True)


@needs_strace
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_mix_must_show_only_batches_reach_the_file(tmp_path, seed):
    """The acceptance case: an -O2 -D_FORTIFY_SOURCE=2 program mixing printf,
    fprintf, fputs, fwrite, putc_unlocked, puts, write and writev on a redirected
    stdout and on several streams of one file: identical files, and the only
    write syscalls reaching the file are the shim's batches (at most one per
    interval during the short run, the final flush) and glibc's own exit flush
    of the stdio buffers, which runs after the final flush and passes through."""
    exe = helper_path("stdio_mix")
    plain, shimmed = run_pair(tmp_path, lambda out: [exe, seed, out, 6000],
                              stderr_to_file=True, wrap=strace_wrap)
    before = writes_to(plain.dir, plain.out)
    after = writes_to(shimmed.dir, shimmed.out)
    assert len(before) > 1000
    # Batches come from the shim's own descriptor (opened O_APPEND by the
    # writer); everything else is the exit-time stdio flush: one per stream.
    assert len(after) <= 8, "\n".join(after)


@pytest.mark.parametrize("seed", range(200, 210))
def test_mix_with_stdout_on_a_pipe(tmp_path, seed):
    """stdout is a pipe (BUFSHIM_PATHS has the word stdout): glibc gives it the
    pipe's block size; what comes out of the pipe and the file are the same."""
    exe = helper_path("stdio_mix")
    got = {}
    for variant, shim in (("plain", False), ("shim", True)):
        d = tmp_path / variant
        d.mkdir()
        out = d / "out.log"
        env = (shim_env(f"stdout:{d}/*.log", {"BUFSHIM_STATS": tmp_path / "shim.stats"})
               if shim else plain_env())
        p = subprocess.run([str(exe), str(seed), str(out), "2000"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0
        got[variant] = (p.stdout, out.read_bytes())
    assert got["plain"][0] and got["plain"][1]
    assert_same(got["plain"][0], got["shim"][0])
    assert_same(got["plain"][1], got["shim"][1])
    assert_diverted(read_stats(tmp_path / "shim.stats"), "stdio_mix")
