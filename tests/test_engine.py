"""The engine through its public API (tests/helpers/engine_driver.c): timing rules
(doc/behaviour.md §3), exactness under threads, failure episodes (doc/behaviour.md §10), close, file sink."""
import json
import subprocess
import time

from conftest import assert_no_sanitizer_report, helper_path
from engine_records import check_records

# Clock granularity and the gap between the sink's own timestamps and the engine's:
# a batch may appear this much earlier than the interval without being early.
TOLERANCE_NS = 5_000_000


def drive(mode, path, *args, events=None, timeout=120):
    argv = [str(helper_path("engine_driver")), mode, str(path)] + [str(a) for a in args]
    if events is not None:
        argv += ["-e", str(events)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert_no_sanitizer_report(p.stderr)
    return p


def load_events(path, writer=0):
    evs = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in evs if e["w"] == writer]


def test_interval_is_measured_from_the_end_of_a_slow_batch(tmp_path):
    """(a) interval 0.5 s, a sink that takes 1.5 s: every batch starts >= 0.5 s
    after the previous one ended."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "0.5", "-S", "1.5", "-n", "400", "-d", "4", events=ev)
    assert p.returncode == 0, p.stderr
    evs = load_events(ev)
    assert len(evs) >= 3, evs
    # The last call is bufshim_close's final write, which does not wait; all
    # timed batches do, and none overlaps another.
    for prev, cur in zip(evs[:-1], evs[1:-1]):
        assert cur["start_ns"] - prev["end_ns"] >= 500_000_000 - TOLERANCE_NS, (prev, cur)
    for prev, cur in zip(evs, evs[1:]):
        assert cur["start_ns"] >= prev["end_ns"]
    check_records(out.read_bytes(), 1, 400)


def test_fast_sink_batches_are_at_least_the_interval_apart(tmp_path):
    """(a) with a fast sink, batches are >= 0.5 s apart, and fewer than the records."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "0.5", "-n", "3000", "-d", "2.5", events=ev)
    assert p.returncode == 0, p.stderr
    evs = load_events(ev)
    # 2.5 s of appends at >= 0.5 s spacing: at most 6 timed batches plus the close.
    assert 3 <= len(evs) <= 7, [e["start_ns"] for e in evs]
    # The last call may be bufshim_close's final write, which does not wait.
    for prev, cur in zip(evs[:-1], evs[1:-1]):
        assert cur["start_ns"] - prev["end_ns"] >= 500_000_000 - TOLERANCE_NS
    check_records(out.read_bytes(), 1, 3000)


def test_no_sink_call_while_idle(tmp_path):
    """(b) an open writer with nothing appended makes no sink call for 1.5 s."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "0.1", "-I", "1.5", "-n", "1", events=ev)
    assert p.returncode == 0, p.stderr
    evs = load_events(ev)
    assert len(evs) == 1 and evs[0]["len"] == 64, evs


def test_four_threads_random_sizes_exact(tmp_path):
    """(c) 4 threads x 100,000 appends of random sizes: every byte once, each
    append contiguous, each thread's appends in order."""
    out = tmp_path / "out"
    p = drive("record", out, "-i", "0.05", "-n", "100000", "-t", "4", "-s", "0")
    assert p.returncode == 0, p.stderr
    check_records(out.read_bytes(), 4, 100000)


def test_failing_sink_recovers_exact_with_two_lines(tmp_path):
    """(d) a sink failing for three intervals then recovering: output exact, one
    start line and one end line on stderr."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "0.2", "-F", "3", "-n", "2000", "-d", "1.5", events=ev)
    assert p.returncode == 0, p.stderr
    evs = load_events(ev)
    assert [e["ret"] for e in evs[:3]] == [-5, -5, -5]
    assert all(e["ret"] > 0 for e in evs[3:])
    # Failed batches are retried after the interval, not sooner.
    for prev, cur in zip(evs[:3], evs[1:4]):
        assert cur["start_ns"] - prev["end_ns"] >= 200_000_000 - TOLERANCE_NS
    check_records(out.read_bytes(), 1, 2000)
    lines = [l for l in p.stderr.splitlines() if l.startswith("bufshim: ")]
    assert len(lines) == 2, p.stderr
    assert "write failed" in lines[0] and "Input/output error" in lines[0]
    assert "bytes held" in lines[0]
    assert "recovered" in lines[1]


def test_close_leaves_nothing_behind(tmp_path):
    """(e) records appended just before close are all written by close."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "30", "-n", "5000", events=ev)
    assert p.returncode == 0, p.stderr
    evs = load_events(ev)
    # The interval is far away: the only write is the close's.
    assert len(evs) == 1 and evs[0]["len"] == 5000 * 64
    check_records(out.read_bytes(), 1, 5000)


def test_file_sink_real_file(tmp_path):
    """(f) the file sink appends batches to a real file, exact, from 3 threads,
    after bytes that were already there."""
    path = tmp_path / "sub" / "f.log"
    path.parent.mkdir()
    path.write_bytes(b"")
    p = drive("file", path, "-i", "0.1", "-n", "20000", "-t", "3", "-d", "0.8", "-f")
    assert p.returncode == 0, p.stderr
    check_records(path.read_bytes(), 3, 20000)


def test_file_sink_open_failure_is_loud_and_retried(tmp_path):
    """The file sink's open fails (the directory is missing) until it is created."""
    path = tmp_path / "later" / "f.log"
    argv = [str(helper_path("engine_driver")), "file", str(path), "-i", "0.2", "-n", "300",
            "-d", "1.5"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    path.parent.mkdir()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    check_records(path.read_bytes(), 1, 300)
    lines = [l for l in err.splitlines() if l.startswith("bufshim: ")]
    assert len(lines) == 2 and "No such file or directory" in lines[0], err


def test_stuck_sink_does_not_delay_other_writers(tmp_path):
    """(g) two writers; writer 1's first batch blocks 5 s: writer 0 keeps its
    0.3 s schedule meanwhile, and writer 1 loses nothing."""
    out, ev = tmp_path / "out", tmp_path / "ev"
    p = drive("record", out, "-i", "0.3", "-B", "5", "-n", "3000", "-d", "4", events=ev)
    assert p.returncode == 0, p.stderr
    w0, w1 = load_events(ev, 0), load_events(ev, 1)
    block_start, block_end = w1[0]["start_ns"], w1[0]["end_ns"]
    assert block_end - block_start >= 5_000_000_000 - TOLERANCE_NS
    during = [e for e in w0 if block_start < e["start_ns"] < block_end]
    # About 4 s of appends at 0.3 s spacing fall inside the 5 s block: demand many
    # batches (a blocked engine would give none), with room for a noisy machine.
    assert len(during) >= 6, [(e["start_ns"] - block_start) / 1e9 for e in w0]
    for prev, cur in zip(w0[:-1], w0[1:-1]):
        assert cur["start_ns"] - prev["end_ns"] >= 300_000_000 - TOLERANCE_NS
    check_records(out.read_bytes(), 1, 3000)
    check_records((tmp_path / "out.1").read_bytes(), 1, 3000)
