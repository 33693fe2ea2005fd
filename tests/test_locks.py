"""Locks keep their meaning under the shim (doc/behaviour.md §6, §4).

- Lock-ordered writers: 8 processes append BEGIN/10 lines/END groups under an exclusive lock
  (bash with util-linux flock(1), python3 fcntl.flock, and a C helper with flock, fcntl
  F_SETLKW, OFD F_OFD_SETLKW and lockf); each also appends its id to an unmatched order file
  while it holds the lock. Every group must be whole, and the groups in the log must come in
  the order the lock was granted, with a 2 s interval (bytes written under a lock reach the
  file before it is released).
- A POSIX record lock held by a shimmed program across batches is never dropped: a probe
  from another process (F_GETLK) sees it held the whole time.
- Bytes written under a lock are in the file, for another process, as soon as it is released.

Each case runs without the shim too (the same assertions hold there), and the shimmed run
must have diverted (BUFSHIM_STATS records above batches, tests/diversion.py).
"""
import os
import subprocess
import time

import pytest

from conftest import helper_path
from diversion import assert_diverted
from shim_fixture import run_plain, run_shimmed, shim_env

PY = "/usr/bin/python3"
NPROC = 8
ROUNDS = 5
INTERVAL = 2

BASH_WORKER = r"""
n=$1 log=$2 order=$3 rounds=$4
exec 9>>"$log"
for ((r = 0; r < rounds; r++)); do
    flock 9
    echo "BEGIN $n" >&9
    for ((k = 0; k < 10; k++)); do echo "$n line $k" >&9; done
    echo "END $n" >&9
    echo "$n" >> "$order"
    flock -u 9
done
exit 0
"""

PY_WORKER = r"""
import fcntl, sys, time, random
n, log, order, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
f = open(log, "a", buffering=1)  # line buffered: one write(2) per line
for r in range(rounds):
    fcntl.flock(f, fcntl.LOCK_EX)
    print(f"BEGIN {n}", file=f)
    for k in range(10):
        print(f"{n} line {k}", file=f)
    print(f"END {n}", file=f)
    with open(order, "a") as o:
        o.write(f"{n}\n")
    fcntl.flock(f, fcntl.LOCK_UN)
    time.sleep(random.random() * 0.003)
"""


def worker_argv(kind, d):
    if kind == "bash-flock":
        (d.parent / "worker.sh").write_text(BASH_WORKER)
        return ["bash", str(d.parent / "worker.sh")]
    if kind == "python3-flock":
        (d.parent / "worker.py").write_text(PY_WORKER)
        return [PY, str(d.parent / "worker.py")]
    return [str(helper_path("lock_groups")), "groups", kind.split("-")[1]]


def driver(kind, d):
    """A bash that starts NPROC workers at once and waits for them."""
    w = " ".join(f"'{a}'" for a in worker_argv(kind, d))
    if kind.startswith("c-"):  # lock_groups groups KIND LOG ORDER ID ROUNDS
        one = f"{w} \"$PWD/g.log\" \"$PWD/order.txt\" $n {ROUNDS}"
    else:  # the scripts take ID LOG ORDER ROUNDS
        one = f"{w} $n \"$PWD/g.log\" \"$PWD/order.txt\" {ROUNDS}"
    return ["bash", "-c", f"pids=(); for n in $(seq 1 {NPROC}); do {one} & pids+=($!); done; "
            "rc=0; for p in \"${pids[@]}\"; do wait $p || rc=1; done; exit $rc"]


def check_groups(log, order):
    """Every group whole; the groups' sequence is the lock's (the order file's)."""
    lines = log.decode(errors="replace").splitlines()
    granted = order.split()
    groups, i = [], 0
    while i < len(lines):
        head = lines[i]
        assert head.startswith("BEGIN "), f"line {i}: {head!r} where a group should begin:\n" \
            + "\n".join(lines[max(0, i - 3):i + 14])
        n = head.split()[1]
        want = [f"BEGIN {n}"] + [f"{n} line {k}" for k in range(10)] + [f"END {n}"]
        assert lines[i:i + 12] == want, f"group of {n} at line {i} is split:\n" \
            + "\n".join(lines[i:i + 14])
        groups.append(n)
        i += 12
    assert len(granted) == NPROC * ROUNDS
    assert len(groups) == len(granted), f"{len(groups)} groups, {len(granted)} lock grants"
    first = next((k for k, (a, b) in enumerate(zip(groups, granted)) if a != b), None)
    assert first is None, (f"group {first} is from {groups[first]}, the lock went to "
                           f"{granted[first]}: log order {groups}, lock order {granted}")


KINDS = ["bash-flock", "python3-flock", "c-flock", "c-fcntl", "c-ofd", "c-lockf"]


@pytest.mark.parametrize("kind", KINDS)
def test_lock_ordered_groups_stay_whole_and_in_lock_order(tmp_path, kind):
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        if mode == "plain":
            run_plain(driver(kind, d), cwd=d, timeout=120)
        else:
            run_shimmed(driver(kind, d), cwd=d, paths=[f"{d}/*.log"], interval=INTERVAL,
                        stats=tmp_path / "shim.stats", timeout=120)
        check_groups((d / "g.log").read_bytes(), (d / "order.txt").read_text())
    assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / "g.log", min_lines=NPROC)


def wait_for(path, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the lock holder exited with {proc.returncode} before {path}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear")
        time.sleep(0.01)


def start(argv, d, shim, stats):
    env = shim_env(paths=[f"{d}/*.log"], interval="0.2", stats=stats) if shim else \
        {k: v for k, v in os.environ.items()
         if not k.startswith("BUFSHIM_") and k != "LD_PRELOAD"}
    return subprocess.Popen([str(a) for a in argv], cwd=d, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["fcntl", "lockf", "ofd"])
def test_record_lock_is_held_across_batches(tmp_path, kind):
    # The holder writes a line every 100 ms for 2 s with a 0.2 s interval: several batches
    # while it holds the lock. A batch's own open/close of the file in the holder's process
    # would release its POSIX locks (fcntl, lockf); the probe must never find it free.
    lg = helper_path("lock_groups")
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        log, ready = d / "held.log", d / "ready"
        p = start([lg, "hold", kind, log, ready, 20, 100, d / "done"], d, mode == "shim",
                  tmp_path / "shim.stats")
        wait_for(ready, p)
        try:
            probe = run_plain([lg, "probe", log, 1500]).stdout
        finally:
            (d / "done").touch()  # the holder releases the lock only after the probe
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        held, free = (int(x.split("=")[1]) for x in probe.split()[1:])
        assert held > 0 and free == 0, f"{mode}: the lock was found free {free} times " \
                                       f"of {held + free} ({probe.strip()})"
        assert log.read_text() == "".join(f"held {k}\n" for k in range(20))
    records, batches = assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / "held.log")
    assert batches >= 2, f"only {batches} batches while the lock was held: the test needs several"


@pytest.mark.parametrize("kind", ["flock", "fcntl", "ofd", "lockf", "close"])
def test_bytes_written_under_a_lock_are_in_the_file_at_unlock(tmp_path, kind):
    # The holder takes the lock, writes 6 lines, releases it (kind close: closes the
    # descriptor, which drops its fcntl lock) and stays alive until the reader is done;
    # the interval is never reached. A reader blocked on the same lock reads the file when it gets it.
    lg = helper_path("lock_groups")
    want = "".join(f"under lock {k}\n" for k in range(5)) + "last under lock\n"
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        log, locked = d / "u.log", d / "locked"
        env = shim_env(paths=[f"{d}/*.log"], interval=30, stats=tmp_path / "shim.stats")
        if mode == "plain":
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("BUFSHIM_") and k != "LD_PRELOAD"}
        p = subprocess.Popen([str(lg), "unlock", kind, str(log), str(locked), "5", "300",
                              str(d / "done")],
                             cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        wait_for(locked, p)
        try:
            seen = run_plain([lg, "readlock", kind, log], timeout=30).stdout
        finally:
            (d / "done").touch()  # the holder exits (and flushes at exit) only after this
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert seen == want, f"{mode}: the reader that got the lock saw {seen!r}"
        assert log.read_text() == want
    assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / "u.log")
