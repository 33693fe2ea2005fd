"""Crash safety: what a program wrote survives its death by SIGKILL, the OOM killer, or a kill
in the middle of a batch. The buffers of a regular target live in a spool (a shared mapping
of a file in the spool folder); after the death the keeper, or `bufshim recover`, writes what
the spool held: every call that returned, once, in order, and a call still being copied
whole or not at all (doc/behaviour.md §9).

Each run proves diversion: with a long interval nothing is in the file before the kill
except what batches wrote, and the spool folder held the process's spool."""
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD_DIR, SANITIZER, helper_path
from shim_fixture import shim_env

KEEPER = BUILD_DIR / "src" / "bufshim-keeper"
# Set while the keeper is not yet started by the shim (then the tests recover at once).
KEEPER_RUNS = os.environ.get("BUFSHIM_TEST_NO_KEEPER") != "1"
LINE = re.compile(rb"^([tc])(\d) (\d+) ([a-z]+)$")


def counters(path):
    data = Path(path).read_bytes()
    return [int.from_bytes(data[i * 8:i * 8 + 8], "little") for i in range(16)]


def keeper_log(spool_dir):
    """The keeper's log in the folder (what it took, and why), for a failure's message."""
    log = spool_dir / "keeper.log"
    return "\nkeeper.log:\n" + log.read_text(errors="replace") if log.exists() else ""


def check_records(data, returned, tags=("t",), stderr=None):
    """check_records_in, with the writer's stderr (what the shim said) in a failure's message."""
    try:
        return check_records_in(data, returned, tags)
    except AssertionError as e:
        if stderr is None:
            raise
        raise AssertionError(f"{e}\nthe writer's stderr:\n{stderr}") from None


def check_records_in(data, returned, tags=("t",)):
    """Every record whose write returned (counters) is in data once, in each thread's
    order, whole; at most the one call in flight per thread more. Returns records per
    (tag, thread)."""
    seen = {}
    lines = data.split(b"\n")
    assert lines[-1] == b"", "the file ends inside a record: a torn call"
    for n, line in enumerate(lines[:-1]):
        m = LINE.match(line)
        assert m, f"line {n} is not a whole record: {line[:80]!r}"
        tag, k, i, fill = m.group(1).decode(), int(m.group(2)), int(m.group(3)), m.group(4)
        assert set(fill) == {ord("a") + i % 26}, f"line {n}: torn record {line[:80]!r}"
        got = seen.setdefault((tag, k), 0)
        assert i == got, f"{tag}{k}: record {i} where {got} was due (lost or doubled)"
        seen[(tag, k)] = got + 1
    for (tag, k), c in returned.items():
        have = seen.get((tag, k), 0)
        assert c <= have <= c + 1, f"{tag}{k}: {c} writes had returned, the file has {have}"
    return seen


def spools(d):
    return sorted(p.name for p in Path(d).glob("*.spool")) if Path(d).exists() else []


def recover(spool_dir):
    """bufshim recover's one pass over the folder."""
    r = subprocess.run([str(KEEPER), "--recover", "--dir", str(spool_dir)], capture_output=True,
                       text=True, timeout=120)
    return r


def wait_no_spools(spool_dir, timeout=30.0):
    """The keeper (or a recover pass) finishes the dead process's spools."""
    deadline = time.monotonic() + timeout
    while spools(spool_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return spools(spool_dir)


@pytest.fixture
def spool_dir(tmp_path):
    d = tmp_path / "spool"
    yield d
    # The test's own keeper (started by the first shimmed process) goes when its folder is
    # empty; stop it now rather than after its linger.
    subprocess.run(["pkill", "-KILL", "-f", f"bufshim-keeper.*{d}"], check=False)


def env_for(path, spool_dir, interval, extra=None):
    e = shim_env(paths=str(path), interval=interval,
                 env={"BUFSHIM_SPOOL_DIR": str(spool_dir), **(extra or {})})
    return e


def start_writer(path, counter, threads, env, mode="run"):
    p = subprocess.Popen([str(helper_path("counted_writer")), str(path), str(counter),
                          str(threads), mode], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p


def read_line(p, timeout=60):
    import select
    r, _, _ = select.select([p.stdout], [], [], timeout)
    if not r:
        p.kill()
        pytest.fail(f"no line from counted_writer within {timeout} s: "
                    f"{p.stderr.read().decode(errors='replace')}")
    return p.stdout.readline().decode()


def kill9(p):
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL


@pytest.mark.skipif(not KEEPER.exists(), reason="bufshim-keeper is not built")
def test_kill9_at_random_moments_loses_and_doubles_nothing(tmp_path, spool_dir):
    """50 runs: one or four threads, a short or a long interval, killed 0.05 to 0.6 s after
    they started writing. Every returned record is in the file, once, in order."""
    rng = random.Random(int(os.environ.get("BUFSHIM_TEST_SEED", "12345")))
    runs = 50 if not SANITIZER else 12
    diverted = 0
    for run in range(runs):
        path = tmp_path / f"log{run}"
        counter = tmp_path / f"count{run}"
        threads = rng.choice([1, 4])
        interval = rng.choice(["0.05", "0.3", "30"])
        mode = rng.choice(["run", "run", "burst"])
        p = start_writer(path, counter, threads, env_for(path, spool_dir, interval), mode)
        assert read_line(p) == "ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        held = spools(spool_dir)
        kill9(p)
        c = counters(counter)
        returned = {("t", k): c[k] for k in range(threads)}
        before = path.stat().st_size if path.exists() else 0
        err = p.stderr.read().decode(errors="replace")
        assert held, (f"run {run}: no spool while the writer ran: nothing was diverted; "
                      f"its stderr:\n{err}{keeper_log(spool_dir)}")
        left = wait_no_spools(spool_dir, timeout=15 if KEEPER_RUNS else 0)
        if left:
            recover(spool_dir)
        assert not spools(spool_dir), f"run {run}: spools left after recover: {left}"
        data = path.read_bytes()
        if len(data) > before:
            diverted += 1
        check_records(data, returned, stderr=err + keeper_log(spool_dir))
    # With a 30 s interval nothing is written before the kill: the bytes came from spools.
    assert diverted >= runs // 3


def test_kill9_during_a_hung_batch(tmp_path, spool_dir, make_slowfs):
    """The batch's write(2) hangs on slowfs; the writer is killed; the hang is released and
    the write lands. The reader finds it landed (the file's size since the write began)
    and does not write it again; what came after it is written once."""
    fs = make_slowfs()
    path = fs.path("hung.log")
    counter = tmp_path / "count"
    env = env_for(path, spool_dir, "0.2")
    p = start_writer(path, counter, 1, env)
    assert read_line(p) == "ready\n"
    fs.wait_for(lambda: fs.writes(path="hung.log"), what="a first batch")
    fs.ctl("hang write path=hung.log")
    fs.wait_hung(1, timeout=30)
    time.sleep(0.3)  # more records queue behind the hung batch
    held = spools(spool_dir)
    p.send_signal(signal.SIGKILL)
    time.sleep(0.2)
    c = counters(counter)
    fs.ctl("release")
    p.wait(timeout=60)
    err = p.stderr.read().decode(errors="replace")
    assert held, (f"no spool while the writer ran: nothing was diverted; its stderr:\n{err}"
                  f"{keeper_log(spool_dir)}")
    left = wait_no_spools(spool_dir, timeout=15 if KEEPER_RUNS else 0)
    if left:
        r = recover(spool_dir)
        assert r.returncode == 0, r.stdout + r.stderr
    data = fs.backing_path("hung.log").read_bytes()
    check_records(data, {("t", 0): c[0]}, stderr=err + keeper_log(spool_dir))


def test_kill9_of_a_forked_child_then_of_the_parent(tmp_path, spool_dir):
    path = tmp_path / "fork.log"
    counter = tmp_path / "count"
    p = start_writer(path, counter, 2, env_for(path, spool_dir, "30"), "fork")
    child = int(read_line(p).split()[1])
    assert read_line(p) == "ready\n"
    time.sleep(0.3)
    os.kill(child, signal.SIGKILL)
    time.sleep(0.3)
    c = counters(counter)
    # The child's records are written once the child is gone; the parent goes on.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            seen = check_records(path.read_bytes(), {("c", 0): c[8], ("c", 1): c[9]})
            if seen.get(("c", 0), 0) >= c[8] and seen.get(("c", 1), 0) >= c[9]:
                break
        except (AssertionError, FileNotFoundError):
            pass
        time.sleep(0.1)
    assert p.poll() is None, "the parent died with its child"
    kill9(p)
    c = counters(counter)
    if wait_no_spools(spool_dir, timeout=15 if KEEPER_RUNS else 0):
        recover(spool_dir)
    check_records(path.read_bytes(), {("c", 0): c[8], ("c", 1): c[9], ("t", 0): c[0],
                                      ("t", 1): c[1]})


def test_kill9_of_an_execd_image(tmp_path, spool_dir):
    path = tmp_path / "exec.log"
    counter = tmp_path / "count"
    p = start_writer(path, counter, 1, env_for(path, spool_dir, "30"), "exec")
    assert read_line(p) == "ready\n"
    time.sleep(0.3)
    kill9(p)
    c = counters(counter)
    if wait_no_spools(spool_dir, timeout=15 if KEEPER_RUNS else 0):
        recover(spool_dir)
    check_records(path.read_bytes(), {("t", 0): c[0]})
    assert c[0] > 1000


def memory_cgroup():
    """A new memory cgroup (v2, else v1) to run a writer in: (dir, limit file, kill count
    function), or None and why not."""
    name = f"bufshim-test-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup")
    v1 = Path("/sys/fs/cgroup/memory")
    try:
        if "memory" in (v2 / "cgroup.controllers").read_text().split():
            try:
                (v2 / "cgroup.subtree_control").write_text("+memory")
            except OSError:
                pass
            cg = v2 / name
            cg.mkdir()
            kills = lambda: int(re.search(r"^oom_kill (\d+)", (cg / "memory.events").read_text(),
                                          re.M).group(1))
            return cg, cg / "memory.max", kills, None
    except OSError:
        pass
    if (v1 / "memory.limit_in_bytes").exists():
        try:
            cg = v1 / name
            cg.mkdir()
        except OSError as e:
            return None, None, None, f"cannot make a v1 memory cgroup: {e}"
        kills = lambda: int(re.search(r"^oom_kill (\d+)", (cg / "memory.oom_control").read_text(),
                                      re.M).group(1))
        return cg, cg / "memory.limit_in_bytes", kills, None
    return None, None, None, "no memory cgroup controller (v2 or v1) on this machine"


def test_oom_kill_by_a_cgroup_memory_limit(tmp_path, spool_dir):
    """The kernel's OOM killer ends a writer that outgrows its cgroup's memory limit."""
    if SANITIZER:
        pytest.skip("the sanitizers' shadow memory does not fit a small memory limit")
    cg, limit, kills, why = memory_cgroup()
    if cg is None:
        pytest.skip(why)
    try:
        limit.write_text(str(128 << 20))
        path = tmp_path / "oom.log"
        counter = tmp_path / "count"
        env = env_for(path, spool_dir, "30")
        argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cg),
                str(helper_path("counted_writer")), str(path), str(counter), "2", "hog"]
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert read_line(p) == "ready\n"
        p.wait(timeout=120)
        assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr.read())
        assert kills() >= 1, "the kill was not the OOM killer's"
        c = counters(counter)
        if wait_no_spools(spool_dir, timeout=15 if KEEPER_RUNS else 0):
            recover(spool_dir)
        check_records(path.read_bytes(), {("t", 0): c[0], ("t", 1): c[1]})
    finally:
        for _ in range(100):
            try:
                cg.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
