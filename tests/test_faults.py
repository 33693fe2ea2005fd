"""Batch writes that fail or hang, on a real FUSE mount (slowfs): nothing dropped,
nothing written twice, one stderr line when an episode starts and one when it
ends, and a hung target does not hold up the others (doc/behaviour.md §10)."""
import subprocess
import time

import pytest

from conftest import assert_no_sanitizer_report, helper_path
from shim_fixture import shim_env

COUNT = 3000


def expected(count=COUNT):
    return "".join(f"record {i} of {count}\n" for i in range(count)).encode()


def appender(path, seconds, other=None, count=COUNT):
    argv = [str(helper_path("shim_appender")), str(path), str(count), str(seconds)]
    if other:
        argv.append(str(other))
    return argv


def shim_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("bufshim: ")]


@pytest.mark.parametrize("err,text", [("ENOSPC", "No space left on device"),
                                      ("EIO", "Input/output error"),
                                      ("EDQUOT", "Disk quota exceeded")])
def test_failing_writes_then_recovery(slowfs, err, text):
    """The must-show: slowfs fails 5 writes, then recovers: the file is exact and
    stderr has the two lines."""
    slowfs.ctl(f"fail write {err} count=5 path=a.log")
    p = subprocess.run(appender(slowfs.path("a.log"), 2.5),
                       env=shim_env([str(slowfs.mount / "*.log")], "0.1"),
                       capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert slowfs.backing_path("a.log").read_bytes() == expected()
    failed = [e for e in slowfs.writes("a.log") if e["result"] < 0]
    assert len(failed) == 5
    lines = shim_lines(p.stderr)
    assert len(lines) == 2, p.stderr
    assert text in lines[0] and "a.log" in lines[0] and "bytes held" in lines[0]
    assert "recovered" in lines[1] and "a.log" in lines[1]


def test_failing_opens_lose_nothing(slowfs):
    """Batch opens fail (EACCES) while the program's descriptor stays
    open: the bytes still arrive, exactly once."""
    target = slowfs.path("a.log")
    argv = appender(target, 2.0)
    proc = subprocess.Popen(argv, env=shim_env([str(slowfs.mount / "*.log")], "0.1"),
                            stderr=subprocess.PIPE, text=True)
    slowfs.wait_for(lambda: slowfs.events("open", "a.log", tgid=proc.pid), what="first open")
    slowfs.ctl("fail open EACCES count=3 path=a.log")
    _, err = proc.communicate(timeout=120)
    assert_no_sanitizer_report(err)
    assert proc.returncode == 0, err
    assert slowfs.backing_path("a.log").read_bytes() == expected()


def test_short_writes_lose_nothing(slowfs):
    slowfs.ctl("short write count=4 path=a.log")
    p = subprocess.run(appender(slowfs.path("a.log"), 2.0),
                       env=shim_env([str(slowfs.mount / "*.log")], "0.1"),
                       capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert slowfs.backing_path("a.log").read_bytes() == expected()
    shorts = [e for e in slowfs.writes("a.log") if 0 <= e["result"] < e["size"]]
    assert len(shorts) == 4


def test_hung_write_does_not_block_the_program_or_other_targets(slowfs, tmp_path):
    """A batch write hangs 10 s (a dead server): the program keeps appending at
    full speed, a second target on the local disk keeps getting its batches, and
    after the release the hung file is exact."""
    slowfs.ctl("hang write path=a.log")
    local = tmp_path / "local.log"
    env = shim_env([str(slowfs.mount / "*.log"), str(tmp_path / "*.log")], "0.2")
    t0 = time.monotonic()
    proc = subprocess.Popen(appender(slowfs.path("a.log"), 3.0, other=local), env=env,
                            stderr=subprocess.PIPE, text=True)
    slowfs.wait_hung(1, timeout=20)
    # While it hangs, the local file grows batch by batch.
    sizes = []
    for _ in range(10):
        time.sleep(0.3)
        sizes.append(local.stat().st_size if local.exists() else 0)
    assert len(set(sizes)) >= 3, f"the local target stalled during the hang: {sizes}"
    # The program finished its 3 s of appends; it is only waiting in its final
    # flush for the hung batch now.
    hang_left = 10 - (time.monotonic() - t0)
    if hang_left > 0:
        time.sleep(hang_left)
    assert local.read_bytes() == expected()
    assert proc.poll() is None, "exit did not wait for the hung batch"
    slowfs.ctl("release")
    _, err = proc.communicate(timeout=60)
    assert_no_sanitizer_report(err)
    assert proc.returncode == 0, err
    assert slowfs.backing_path("a.log").read_bytes() == expected()


def test_final_flush_retries_a_failing_target(slowfs):
    """A write failure right at exit is retried, not dropped."""
    slowfs.ctl("fail write EIO count=2 path=a.log")
    p = subprocess.run(appender(slowfs.path("a.log"), 0, count=500),
                       env=shim_env([str(slowfs.mount / "*.log")], "30"),
                       capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert slowfs.backing_path("a.log").read_bytes() == expected(500)
    assert len(shim_lines(p.stderr)) == 2, p.stderr


LATE_TARGET = r"""
import os, sys, time
hung, late, out = sys.argv[1:4]
with open(hung, "a") as f:          # the only target: its first batch hangs
    f.write("first\n")
    f.flush()
    time.sleep(1.0)
    worst = 0.0
    for i in range(20):             # a file opened while that batch hangs: a new target
        t0 = time.monotonic()
        with open(late, "a") as g:
            g.write(f"late {i}\n")
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.1)
    with open(out, "w") as o:
        o.write(f"{worst:.3f}\n")
    time.sleep(1.0)                 # the late target's batches land meanwhile
"""


def test_target_opened_while_the_only_batch_hangs(slowfs, tmp_path):
    """With one target whose batch hangs (a dead server), a file the program opens later is
    buffered and batched on its own schedule, and its open and close do not wait for the
    hung batch."""
    slowfs.ctl("hang write path=a.log")
    late, out = tmp_path / "late.log", tmp_path / "worst.txt"
    stats = tmp_path / "stats.json"
    env = shim_env([str(slowfs.mount / "*.log"), str(tmp_path / "*.log")], "0.2",
                   stats=stats)
    proc = subprocess.Popen(["/usr/bin/python3", "-c", LATE_TARGET, str(slowfs.path("a.log")),
                             str(late), str(out)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        slowfs.wait_hung(1, timeout=20)
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Each open/close pair took well under the 10 s the hang lasts (bound generous:
        # a close waits at most 0.1 s twice for the writer thread).
        assert out.exists(), "the program is stuck behind the hung batch"
        assert float(out.read_text()) < 2.0
        time.sleep(0.5)
        assert late.read_text() == "".join(f"late {i}\n" for i in range(20))
        assert proc.poll() is None  # still waiting to exit behind the hung batch
    finally:
        slowfs.ctl("release")
        _, err = proc.communicate(timeout=60)
    assert_no_sanitizer_report(err)
    assert proc.returncode == 0, err
    assert slowfs.backing_path("a.log").read_bytes() == b"first\n"
    import json
    rec = {r["path"]: r for r in map(json.loads, stats.read_text().splitlines())}
    assert rec[str(late)]["records"] == 20 and rec[str(late)]["batches"] < 20, rec
