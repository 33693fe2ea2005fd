"""The engine's file sink against slowfs, a slow and faulty drive that records when each
batch reached it (doc/behaviour.md §3 timing, §10 failures): tests/helpers/engine_driver writes through
bufshim_open_file into the mount, and slowfs's event log is the observer."""
import subprocess
import time

from conftest import assert_no_sanitizer_report, helper_path
from engine_records import check_records

MS = 1_000_000
# Clock granularity and the gap between slowfs's timestamps and the engine's own: a batch
# may appear this much earlier than the interval without being early.
TOLERANCE_NS = 5 * MS


def start_driver(path, *args):
    argv = [str(helper_path("engine_driver")), "file", str(path)] + [str(a) for a in args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=120):
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert_no_sanitizer_report(err)
    return err


def batches(fs, name, tgid):
    """The driver's batches (SlowFS.batches)."""
    return fs.batches(name, tgid=tgid)


def assert_spaced(bs, interval_ns):
    """Each batch starts no earlier than the interval after the previous one ended. The
    last batch is bufshim_close's final write, which does not wait for the interval."""
    for prev, cur in zip(bs[:-1], bs[1:-1]):
        gap = cur["start_ns"] - prev["end_ns"]
        assert gap >= interval_ns - TOLERANCE_NS, \
            f"batch {cur} started {gap / MS:.1f} ms after the end of {prev}"
    for prev, cur in zip(bs, bs[1:]):
        assert cur["start_ns"] >= prev["end_ns"], "batches overlap"


def test_batches_never_closer_than_the_interval(slowfs):
    slowfs.ctl("latency open=5ms,write=2ms,release=5ms")
    p = start_driver(slowfs.path("e.log"), "-i", "0.5", "-n", "2000", "-d", "2.5", "-s", "64")
    err = finish(p)
    assert p.returncode == 0, err
    data = slowfs.backing_path("e.log").read_bytes()
    check_records(data, 1, 2000)
    bs = batches(slowfs, "e.log", p.pid)
    # 2.5 s of appends at >= 0.5 s spacing: a handful of batches, not 2000 writes.
    assert 3 <= len(bs) <= 8, [(b["start_ns"], b["bytes"]) for b in bs]
    assert_spaced(bs, 500 * MS)
    assert sum(b["bytes"] for b in bs) == len(data)
    assert all(r > 0 for b in bs for r in b["results"])


def test_slow_write_puts_the_next_batch_an_interval_after_its_end(slowfs):
    """A 1.5 s write with interval 0.5 s: the next batch starts >= 0.5 s after it ended."""
    slowfs.ctl("delay write 1500ms count=1 path=e.log")
    p = start_driver(slowfs.path("e.log"), "-i", "0.5", "-n", "1500", "-d", "3", "-s", "64")
    err = finish(p)
    assert p.returncode == 0, err
    check_records(slowfs.backing_path("e.log").read_bytes(), 1, 1500)
    bs = batches(slowfs, "e.log", p.pid)
    assert len(bs) >= 3, bs
    slow = bs[0]
    assert slow["end_ns"] - slow["start_ns"] >= 1500 * MS
    assert bs[1]["start_ns"] - slow["end_ns"] >= 500 * MS - TOLERANCE_NS
    assert_spaced(bs, 500 * MS)


def test_three_failing_writes_then_recovery_leave_the_file_exact(slowfs):
    slowfs.ctl("fail write EIO count=3 path=e.log")
    p = start_driver(slowfs.path("e.log"), "-i", "0.2", "-n", "600", "-d", "2", "-s", "50")
    err = finish(p)
    assert p.returncode == 0, err
    data = slowfs.backing_path("e.log").read_bytes()
    check_records(data, 1, 600)
    w = slowfs.writes("e.log", tgid=p.pid)
    results = [e["result"] for e in w]
    assert results[:3] == [-5, -5, -5], results
    assert all(r > 0 for r in results[3:])
    # Nothing written twice: what the filesystem accepted is exactly the file.
    assert sum(results[3:]) == len(data)
    # Retries wait for the interval too.
    assert_spaced(batches(slowfs, "e.log", p.pid), 200 * MS)
    # One line when the episode starts, one when it ends (doc/behaviour.md §10).
    episode = [line for line in err.splitlines() if line.startswith("bufshim: ")]
    assert len(episode) == 2, err
    assert "e.log" in episode[0]


def test_short_writes_are_completed_without_loss(slowfs):
    slowfs.ctl("short write count=5 path=e.log")
    p = start_driver(slowfs.path("e.log"), "-i", "0.2", "-n", "500", "-d", "1", "-s", "100")
    err = finish(p)
    assert p.returncode == 0, err
    data = slowfs.backing_path("e.log").read_bytes()
    check_records(data, 1, 500)
    w = slowfs.writes("e.log", tgid=p.pid)
    assert sum(1 for e in w if 0 < e["result"] < e["size"]) == 5
    assert sum(e["result"] for e in w) == len(data)


def test_hung_write_then_release_loses_nothing(slowfs):
    slowfs.ctl("hang write count=1 path=e.log")
    p = start_driver(slowfs.path("e.log"), "-i", "0.2", "-n", "800", "-d", "1.5", "-s", "64")
    try:
        slowfs.wait_hung(1)
        time.sleep(1.0)  # the producer keeps appending while the batch hangs
        slowfs.ctl("release")
        err = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    data = slowfs.backing_path("e.log").read_bytes()
    check_records(data, 1, 800)
    w = slowfs.writes("e.log", tgid=p.pid)
    assert w[0]["end_ns"] - w[0]["start_ns"] >= 1000 * MS
    assert sum(e["result"] for e in w if e["result"] > 0) == len(data)
    assert_spaced(batches(slowfs, "e.log", p.pid), 200 * MS)
