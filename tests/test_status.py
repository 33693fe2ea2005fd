"""`bufshim status` and BUFSHIM_METRICS: what a running process's targets hold, read from the
status file its writer thread keeps in the spool folder, and the Prometheus textfile with the
same figures. A program writing to slowfs with its writes hung; the .prom file read by
prometheus_client's parser; two processes of one tree; targets that are not spooled; a process
of another user. Timing: order and generous bounds only."""
import json
import os
import pathlib
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import SOURCE_DIR, wait_for
from shim_fixture import shim_env

PYTHON = "/usr/bin/python3"
LAUNCHER = SOURCE_DIR / "tools" / "bufshim"

# Appends a line every 20 ms to argv[1] until the file argv[2] exists, then waits to be killed.
WRITER = r"""
import os, sys, time
f = open(sys.argv[1], "a")
i = 0
while not os.path.exists(sys.argv[2]):
    f.write("record %06d %s\n" % (i, "x" * 60)); f.flush(); i += 1
    time.sleep(0.02)
print("stopped", i, flush=True)
while True:
    time.sleep(1)
"""


def status(spool, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUFSHIM_")}
    env["BUFSHIM_SPOOL_DIR"] = str(spool)
    p = subprocess.run([str(LAUNCHER), "status", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def status_json(spool, *pids, check=True):
    return json.loads(status(spool, "--json", *pids, check=check).stdout)["processes"]


def target_of(spool, pid):
    """The process's first target, or None while it is not listed yet: its writer thread
    writes the status file only after it starts, so a poll that comes first finds nothing."""
    procs = [p for p in status_json(spool, pid, check=False) if p["pid"] == pid]
    return procs[0]["targets"][0] if procs and procs[0]["targets"] else None


@pytest.fixture
def spool(tmp_path):
    """A spool folder of the test's own; the keepers on it are killed at the end."""
    d = tmp_path / "spool"
    yield d
    try:
        pid = int((d / "keeper.lock").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def start_writer(tmp_path, spool, target, stop, interval="0.2", extra=None, preexec_fn=None):
    prog = tmp_path / "writer.py"
    prog.write_text(WRITER)
    env = shim_env(paths=str(target.parent) + "/*", interval=interval,
                   env={"BUFSHIM_SPOOL_DIR": spool, **(extra or {})})
    return subprocess.Popen([PYTHON, str(prog), str(target), str(stop)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)


def finish(p):
    p.kill()
    p.wait(timeout=30)


def test_a_hung_write_shows_as_failing_with_held_bytes_growing_then_healthy(tmp_path, spool,
                                                                            make_slowfs):
    fs = make_slowfs()
    target, stop = fs.path("a.log"), tmp_path / "stop"
    p = start_writer(tmp_path, spool, target, stop)
    try:
        t = wait_for(lambda: (x := target_of(spool, p.pid)) and x["batches"] >= 2 and x,
                     20, "the target listed with its batches")
        assert t["path"] == str(target) and t["mode"] == "diverted" and t["failure"] is None
        fs.ctl("hang write path=a.log")
        fs.wait_hung(1)
        hung = wait_for(lambda: (x := target_of(spool, p.pid)) and x["failure"] and x, 20,
                        "the hung write reported as a failure episode")
        assert hung["failure"]["error"] == "write hung" and hung["in_flight_since"]
        later = wait_for(lambda: (x := target_of(spool, p.pid))["held"] > hung["held"] + 1000
                         and x, 20, "the held bytes growing")
        assert later["failure"] and later["oldest_held_seconds"] >= 1.0
        table = status(spool, p.pid).stdout
        row = [line for line in table.splitlines() if str(target) in line]
        assert row and "FAILING: write hung" in row[0], table
        stop.touch()
        fs.ctl("release")
        healthy = wait_for(lambda: (x := target_of(spool, p.pid)) and x["held"] == 0
                           and x["failure"] is None and x, 20, "held 0 and healthy")
        assert healthy["failure_episodes"] >= 1 and healthy["batches"] > later["batches"]
        assert healthy["written"] == target.stat().st_size
        table = status(spool, p.pid).stdout
        assert [line for line in table.splitlines() if str(target) in line][0].endswith("ok")
    finally:
        stop.touch()
        fs.ctl("release")
        finish(p)


def test_a_failing_write_shows_its_error(tmp_path, spool, make_slowfs):
    fs = make_slowfs()
    target, stop = fs.path("e.log"), tmp_path / "stop"
    p = start_writer(tmp_path, spool, target, stop)
    try:
        wait_for(lambda: (x := target_of(spool, p.pid)) and x["batches"] >= 1, 20, "listed")
        fs.ctl("fail write EIO path=e.log")
        t = wait_for(lambda: (x := target_of(spool, p.pid)) and x["failure"] and x, 20,
                     "the failing write reported")
        assert t["failure"]["errno"] == 5 and "Input/output error" in t["failure"]["error"]
        assert t["failure"]["held"] > 0
        stop.touch()
        fs.ctl("clear")
        wait_for(lambda: (x := target_of(spool, p.pid)) and x["failure"] is None and
                 x["held"] == 0, 20, "recovered")
    finally:
        stop.touch()
        fs.ctl("clear")
        finish(p)


def prom_figures(text):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, s.labels.get("path"), s.labels.get("le"))
            out[key] = s.value
        out[("type", fam.name, None)] = fam.type
    return out


def test_prom_file_parses_and_carries_the_figures_of_status_json(tmp_path, spool):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    target, stop = data / "m.log", tmp_path / "stop"
    p = start_writer(tmp_path, spool, target, stop, extra={"BUFSHIM_METRICS": metrics})
    prom = metrics / f"{p.pid}.prom"
    try:
        wait_for(lambda: prom.exists(), 20, "the .prom file")
        wait_for(lambda: (x := target_of(spool, p.pid)) and x["batches"] >= 3, 20, "batches")
        stop.touch()
        t = wait_for(lambda: (x := target_of(spool, p.pid)) and x["held"] == 0 and x, 20,
                     "everything written")
        time.sleep(0.6)  # a period passes; nothing moves, so neither file changes
        t = target_of(spool, p.pid)
        f = prom_figures(prom.read_text())
        path = str(target)
        assert f[("type", "bufshim_batches", None)] == "counter"
        assert f[("type", "bufshim_batch_seconds", None)] == "histogram"
        assert f[("bufshim_up", None, None)] == 1
        assert f[("bufshim_held_bytes", path, None)] == t["held"] == 0
        assert f[("bufshim_oldest_held_seconds", path, None)] == 0
        assert f[("bufshim_batches_total", path, None)] == t["batches"]
        assert f[("bufshim_written_bytes_total", path, None)] == t["written"] == \
            target.stat().st_size
        assert f[("bufshim_failure_active", path, None)] == 0
        assert f[("bufshim_failure_episodes_total", path, None)] == t["failure_episodes"]
        assert f[("bufshim_batch_seconds_count", path, None)] == t["batch_seconds"]["count"]
        assert f[("bufshim_batch_seconds_bucket", path, "+Inf")] == t["batch_seconds"]["count"]
        assert f[("bufshim_last_batch_timestamp_seconds", path, None)] == \
            pytest.approx(t["last_batch"]["end"], abs=0.002)
        assert f[("bufshim_target_info", path, None)] == 1
        # Killed: nobody removes it; the keeper (or status) says it is not live any more.
        p.kill()
        p.wait(timeout=30)
        status(spool)
        wait_for(lambda: prom_figures(prom.read_text()).get(("bufshim_up", None, None)) == 0,
                 20, "bufshim_up 0 in the dead process's file")
        assert "bufshim_held_bytes" not in prom.read_text()
        assert not list(spool.glob(f"{p.pid}-*.status"))
    finally:
        stop.touch()
        finish(p)


def test_prom_file_removed_at_a_clean_exit(tmp_path, spool):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    target = tmp_path / "c.log"
    env = shim_env(paths=str(target), interval="0.2",
                   env={"BUFSHIM_SPOOL_DIR": spool, "BUFSHIM_METRICS": metrics})
    code = ("import glob, time\nf = open(%r, 'a')\nfor i in range(30):\n"
            "    f.write('x\\n'); f.flush(); time.sleep(0.02)\n"
            "print(len(glob.glob(%r)), flush=True)\n" % (str(target), str(metrics / "*.prom")))
    out = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"  # it was there while the process ran
    assert not list(metrics.iterdir()) and not list(spool.glob("*.status"))


def test_launcher_metrics_option(tmp_path, spool):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    target = tmp_path / "l.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUFSHIM_")}
    env["BUFSHIM_SPOOL_DIR"] = str(spool)
    code = ("import glob, time\nf = open(%r, 'a')\nfor i in range(30):\n"
            "    f.write('x\\n'); f.flush(); time.sleep(0.02)\n"
            "print(open(glob.glob(%r)[0]).read(), flush=True)\n"
            % (str(target), str(metrics / "*.prom")))
    out = subprocess.run([str(LAUNCHER), f"--metrics={metrics}", "-p", str(target), "-i", "0.2",
                          "--", PYTHON, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'bufshim_batches_total{pid="' in out.stdout and str(target) in out.stdout
    bad = subprocess.run([str(LAUNCHER), f"--metrics={tmp_path / 'none'}", "--", "true"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 125 and "not a folder" in bad.stderr


def test_two_processes_of_one_tree_and_targets_that_are_not_spooled(tmp_path, spool):
    data = tmp_path / "data"
    data.mkdir()
    stop = tmp_path / "stop"
    prog = tmp_path / "writer.py"
    prog.write_text(WRITER)
    script = (f"{PYTHON} {prog} {data}/one.log {stop} & "
              f"BUFSHIM_CRASHSAFE=0 {PYTHON} {prog} {data}/two.log {stop} & "
              f"{PYTHON} -c 'import sys, time\n"
              f"while True: sys.stdout.write(\"tick\\n\"); sys.stdout.flush(); time.sleep(0.02)' "
              f"| cat >/dev/null & wait")
    env = shim_env(paths=f"{data}/*:stdout", interval="0.2", env={"BUFSHIM_SPOOL_DIR": spool})
    tree = subprocess.Popen(["/bin/bash", "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL)
    try:
        def listed():
            procs = status_json(spool)
            rows = {t["path"]: (p["pid"], t["mode"]) for p in procs for t in p["targets"]}
            return (f"{data}/one.log" in rows and f"{data}/two.log" in rows
                    and any(path.startswith("pipe:") for path in rows) and rows)
        rows = wait_for(listed, 30, "three processes of the tree listed")
        assert rows[f"{data}/one.log"][1] == "diverted"
        assert rows[f"{data}/two.log"][1] == "diverted, in memory (BUFSHIM_CRASHSAFE=0)"
        pipes = [m for path, (_, m) in rows.items() if path.startswith("pipe:")]
        assert pipes == ["diverted, in memory (pipe)"], rows
        pids = {pid for path, (pid, _) in rows.items()
                if path.startswith((str(data), "pipe:"))}
        assert len(pids) == 3 and tree.pid not in pids  # bash itself writes nothing
        for pid in pids:
            assert os.getsid(pid) == tree.pid  # all of them of this tree
        table = status(spool).stdout
        for path in rows:
            assert path in table
    finally:
        stop.touch()
        os.killpg(tree.pid, signal.SIGKILL)
        tree.wait(timeout=30)


def test_a_process_of_another_user_is_not_listed(tmp_path, spool):
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a process as nobody")
    # /tmp/pytest-of-root is root's alone: nobody's files live in a folder of their own.
    base = pathlib.Path(tempfile.mkdtemp(prefix="bufshim-status-"))
    try:
        os.chmod(base, 0o755)
        theirs = base / "spool"
        data = base / "data"
        for d in (theirs, data):
            d.mkdir(mode=0o700)
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        prog = base / "writer.py"
        prog.write_text(WRITER)
        os.chmod(prog, 0o644)
        stop = base / "stop"
        env = shim_env(paths=f"{data}/*", interval="0.2", env={"BUFSHIM_SPOOL_DIR": theirs})
        other = subprocess.Popen(["setpriv", f"--reuid={nobody.pw_uid}",
                                  f"--regid={nobody.pw_gid}", "--clear-groups", PYTHON,
                                  str(prog), str(data / "n.log"), str(stop)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        mine = start_writer(tmp_path, spool, tmp_path / "d" / "mine.log", tmp_path / "stop")
        try:
            (tmp_path / "d").mkdir(exist_ok=True)
            wait_for(lambda: list(theirs.glob(f"{other.pid}-*.status")), 20,
                     "the other user's process reporting in its own folder")
            assert os.stat(theirs).st_uid == nobody.pw_uid
            wait_for(lambda: any(p["pid"] == mine.pid for p in status_json(spool)), 20,
                     "my own process listed")
            assert other.pid not in {p["pid"] for p in status_json(spool)}
            given = status(spool, other.pid, check=False)
            assert given.returncode == 1
            assert "not a running bufshim process of yours" in given.stderr
            # Pointed at the other user's folder, status refuses it.
            env2 = {k: v for k, v in os.environ.items() if not k.startswith("BUFSHIM_")}
            p = subprocess.run([str(LAUNCHER), "status", "--json", "--dir", str(theirs)],
                               env=env2, capture_output=True, text=True, timeout=60)
            assert json.loads(p.stdout)["processes"] == [] and "not a folder of yours" in p.stderr
        finally:
            stop.touch()
            (tmp_path / "stop").touch()
            finish(other)
            finish(mine)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_watch_refreshes_in_place_with_a_bar(tmp_path, spool):
    data = tmp_path / "w"
    data.mkdir()
    target, stop = data / "w.log", tmp_path / "stop"
    p = start_writer(tmp_path, spool, target, stop, interval="1")
    try:
        wait_for(lambda: target_of(spool, p.pid), 20, "listed")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUFSHIM_")}
        env["BUFSHIM_SPOOL_DIR"] = str(spool)
        w = subprocess.Popen([str(LAUNCHER), "status", "--watch", "0.3"], env=env,
                             stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        w.send_signal(signal.SIGINT)
        out, _ = w.communicate(timeout=30)
        assert w.returncode == 0
        assert out.count("\x1b[H\x1b[2J") >= 2
        assert str(target) in out and "held [" in out and "#" in out
    finally:
        stop.touch()
        finish(p)
