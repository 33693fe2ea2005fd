"""Batching (doc/behaviour.md §3): few writes reach the file, never closer than the interval, nothing early."""
import subprocess
import time

from conftest import helper_path
from shim_fixture import run_plain, run_shimmed, shim_env, strace_writes


def expected_records(count):
    return "".join(f"record {i} of {count}\n" for i in range(count)).encode()


def scheduled_gaps(times):
    """Gaps between batch starts, leaving out the last write (the final flush at
    exit, which is not a scheduled batch and may follow the previous one closely).
    Needs two scheduled batches and the final flush at least: with fewer there is no
    gap to check, and an assertion over the empty list would pass whatever happened."""
    assert len(times) >= 3, f"{len(times)} batches: too few for a gap between scheduled ones"
    return [b - a for a, b in zip(times, times[1:-1])]


def test_appender_reaches_the_file_in_few_writes_under_strace(tmp_path):
    log, other = tmp_path / "a.log", tmp_path / "other.txt"
    trace = tmp_path / "strace.out"
    t0 = time.monotonic()
    run_shimmed([helper_path("shim_appender"), log, 20000, 3, other],
                paths=[f"{tmp_path}/*.log"], interval=1, strace=trace)
    elapsed = time.monotonic() - t0
    assert log.read_bytes() == expected_records(20000)
    assert other.read_bytes() == expected_records(20000)
    batches = strace_writes(trace, log)
    # About 3 s of appending (longer on a loaded machine): one batch per interval at
    # most, plus the final flush.
    assert 1 <= len(batches) <= max(5, elapsed / 1.0 + 2), (elapsed, batches)
    assert sum(b[3] for b in batches) == len(expected_records(20000))
    times = [b[0] for b in batches]
    assert all(g >= 0.98 for g in scheduled_gaps(times)), times
    # The file that does not match sees every write as the program made it.
    assert len(strace_writes(trace, other)) == 20000


def test_appender_on_slowfs(make_slowfs):
    fs = make_slowfs()
    log, other = fs.path("a.log"), fs.path("other.txt")
    t0 = time.monotonic()
    p = run_shimmed([helper_path("shim_appender"), log, 20000, 3, other],
                    paths=[f"{fs.mount}/*.log"], interval=1)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0
    assert fs.backing_path("a.log").read_bytes() == expected_records(20000)
    writes = fs.writes(path="a.log")
    assert 1 <= len(writes) <= max(5, elapsed / 1.0 + 2), \
        (elapsed, [(w["start_ns"], w["size"]) for w in writes])
    starts = [w["start_ns"] / 1e9 for w in writes]
    assert all(g >= 0.98 for g in scheduled_gaps(starts)), starts
    assert len(fs.writes(path="other.txt")) == 20000


def test_bash_echo_loop_must_show(tmp_path):
    """The acceptance case: bash appends 20,000 lines with `echo >>` (the bytes
    leave bash through stdio); identical file, a handful of writes."""
    script = 'for i in $(seq 20000); do echo "line $i" >> out/a.log; done'
    (tmp_path / "plain" / "out").mkdir(parents=True)
    (tmp_path / "shim" / "out").mkdir(parents=True)
    run_plain(["bash", "-c", script], cwd=tmp_path / "plain")
    trace = tmp_path / "strace.out"
    t0 = time.monotonic()
    # Under strace (and a sanitizer) 20,000 opens and closes take a while: the test is about
    # how many writes reach the file, not how fast.
    run_shimmed(["bash", "-c", script], paths=[f"{tmp_path}/shim/out/*.log"], interval=1,
                cwd=tmp_path / "shim", strace=trace, timeout=600)
    elapsed = time.monotonic() - t0
    got = (tmp_path / "shim" / "out" / "a.log").read_bytes()
    assert got == (tmp_path / "plain" / "out" / "a.log").read_bytes()
    batches = strace_writes(trace, tmp_path / "shim" / "out" / "a.log")
    # One batch per interval at most, plus the final flush.
    assert 1 <= len(batches) <= elapsed / 1.0 + 2, (len(batches), elapsed)
    assert len(batches) < 200  # against 20,000 without the shim
    assert all(g >= 0.98 for g in scheduled_gaps([b[0] for b in batches]))


def test_a_byte_arrives_after_the_interval_not_before(tmp_path):
    # The program stays alive for 8 s after its write: the byte must arrive by a
    # scheduled batch (interval 1 s), not by the final flush at exit.
    log = tmp_path / "a.log"
    argv = [str(helper_path("shim_ops")), "open", "1", str(log), "a", "write", "1", "x\\n",
            "sleep", "8000"]
    p = subprocess.Popen(argv, env=shim_env(paths=[f"{tmp_path}/*.log"], interval=1))
    t0 = time.monotonic()
    seen = None
    try:
        while time.monotonic() - t0 < 7.0:
            if log.exists() and log.stat().st_size > 0:
                seen = time.monotonic() - t0
                break
            time.sleep(0.02)
        still_running = p.poll() is None
    finally:
        p.wait(timeout=30)
    assert seen is not None, "the byte did not arrive within 7 s (interval 1 s)"
    assert still_running, "the byte came with the exit, not with a batch"
    # Never early: the interval counts from the writer's creation at the open,
    # which happened after t0 (generous bound for a loaded machine's clocks).
    assert seen >= 0.7, seen
    assert log.read_bytes() == b"x\n"


def test_two_targets_batch_independently(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    trace = tmp_path / "strace.out"
    ops = [helper_path("shim_ops"), "open", "1", a, "a", "open", "2", b, "a",
           "many", "1", "3000", "a", "many", "2", "3000", "b", "sleep", "1500",
           "many", "1", "3000", "a2", "many", "2", "3000", "b2"]
    run_shimmed(ops, paths=[f"{tmp_path}/*.log"], interval=1, strace=trace)
    assert 2 <= len(strace_writes(trace, a)) <= 4
    assert 2 <= len(strace_writes(trace, b)) <= 4
    want_a = "".join(f"a {i}\n" for i in range(3000)) + "".join(f"a2 {i}\n" for i in range(3000))
    assert a.read_text() == want_a
