"""The keeper (bufshim-keeper): started once per spool folder by the first shimmed process that
spools something (or by the launcher), invisible to the program, and what it writes when a
program dies by SIGKILL; the program when the keeper is killed; `bufshim recover` when both die
at once; spools it refuses. Real bash, /bin/sh, /usr/bin/python3. Timing: order and generous
bounds only."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import BUILD_DIR, SOURCE_DIR, wait_for
from shim_fixture import launcher_env, shim_env

PYTHON = "/usr/bin/python3"
BASH = "/bin/bash"
KEEPER = BUILD_DIR / "src" / "bufshim-keeper"
LAUNCHER = SOURCE_DIR / "tools" / "bufshim"


def keeper_pid(spool):
    """The pid written in keeper.lock by the keeper that holds it, when it runs."""
    try:
        pid = int((spool / "keeper.lock").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, "bufshim-keeper") else None


def alive(pid, comm=None):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and (comm is None or name == comm)


def keepers_started(spool):
    log = spool / "keeper.log"
    return log.read_text().count("started (lingers") if log.exists() else 0


@pytest.fixture
def spool(tmp_path):
    """A spool folder of the test's own; every keeper running on it is killed at the end."""
    d = tmp_path / "spool"
    yield d
    for _ in range(3):
        pid = keeper_pid(d)
        if pid is None:
            break
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def env_for(spool, paths, interval="0.3", linger="30", **extra):
    return shim_env(paths=paths, interval=interval,
                    env={"BUFSHIM_SPOOL_DIR": spool, "BUFSHIM_KEEPER_LINGER": linger, **extra})


# A writer that appends numbered records through os.write (diverted), counting in a shared
# mapping how many calls have returned; "ready" on stdout after the first; with a count it
# stops after that many and says "done", then waits to be killed.
WRITER = r"""
import mmap, os, sys, time
path, counter, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfd = os.open(counter, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(cfd, 8)
cnt = mmap.mmap(cfd, 8)
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
i = 0
while n == 0 or i < n:
    os.write(fd, b"record %07d %s\n" % (i, b"x" * (i % 50)))
    i += 1
    cnt[0:8] = i.to_bytes(8, "little")
    if i == 1:
        print("ready", flush=True)
print("done", flush=True)
time.sleep(600)
"""


def record(i):
    return b"record %07d %s\n" % (i, b"x" * (i % 50))


def start_writer(tmp_path, spool, n, interval="30", **kw):
    log, counter = tmp_path / "a.log", tmp_path / "counter"
    p = subprocess.Popen([PYTHON, "-c", WRITER, str(log), str(counter), str(n)],
                         env=env_for(spool, [f"{tmp_path}/*.log"], interval=interval, **kw),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n", p.stderr.read().decode(errors="replace")
    return p, log, counter


def returned(counter):
    return int.from_bytes(counter.read_bytes()[:8], "little")


def test_a_script_of_200_short_commands_starts_one_keeper(tmp_path, spool):
    """bash runs 200 short /bin/sh commands, each appending one line (its own spool): one
    keeper is started for all of them, and it is still the only one at the end."""
    log = tmp_path / "a.log"
    script = f'for i in $(seq 1 200); do /bin/sh -c "echo line $i >> {log}"; done'
    subprocess.run([BASH, "-c", script], env=env_for(spool, [f"{tmp_path}/*.log"]),
                   check=True, timeout=300)
    assert log.read_text() == "".join(f"line {i}\n" for i in range(1, 201))
    assert keepers_started(spool) == 1, (spool / "keeper.log").read_text()
    pid = keeper_pid(spool)
    assert pid is not None
    others = [d for d in os.listdir("/proc") if d.isdigit() and int(d) != pid
              and alive(int(d), "bufshim-keeper")
              and str(spool).encode() in pathlib.Path(f"/proc/{d}/cmdline").read_bytes()]
    assert not others


PROBE = r"""
import os, signal, sys, time
got = []
signal.signal(signal.SIGCHLD, lambda *a: got.append(a[0]))
def fds():
    out = {}
    for n in os.listdir("/proc/self/fd"):
        try:
            out[n] = os.readlink(f"/proc/self/fd/{n}")
        except FileNotFoundError:  # the listing's own descriptor
            pass
    return out
before = fds()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, b"first\n")             # the first spool: the keeper is started here
for _ in range(100):
    if os.path.exists(sys.argv[2]) and open(sys.argv[2]).read().strip():
        break
    time.sleep(0.05)
time.sleep(0.3)
after = fds()
try:
    os.waitpid(-1, os.WNOHANG)
    wait = "a child"
except ChildProcessError:
    wait = "ECHILD"
children = " ".join(open(f"/proc/self/task/{t}/children").read()
                    for t in os.listdir("/proc/self/task")).split()
new = {n: l for n, l in after.items() if n not in before and n != str(fd)}
print(repr({"wait": wait, "children": children, "sigchld": got, "new_fds": new,
            "fds": after}), flush=True)
os.write(fd, b"last\n")
"""


def test_the_keeper_is_invisible_to_the_program(tmp_path, spool):
    """The program that starts the keeper: wait() finds no child, /proc/self/task/*/children
    lists none, no SIGCHLD arrives, its descriptor table holds nothing new; the keeper holds
    none of the program's pipes (the program's stdout reader sees end of file when the
    program exits, though the keeper lingers), runs in a session of its own, has cwd "/"
    and no LD_PRELOAD in its environment."""
    log = tmp_path / "a.log"
    p = subprocess.Popen([PYTHON, "-c", PROBE, str(log), str(spool / "keeper.lock")],
                         env=env_for(spool, [f"{tmp_path}/*.log"]), cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=60)  # would hang while the keeper held the pipes
    assert p.returncode == 0, err
    seen = eval(out.decode())
    assert seen["wait"] == "ECHILD"
    assert seen["children"] == []
    assert seen["sigchld"] == []
    assert seen["new_fds"] == {}, seen
    assert log.read_text() == "first\nlast\n"
    pid = keeper_pid(spool)
    assert pid is not None and pid != p.pid
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) != p.pid  # ppid
    assert int(fields[3]) != os.getsid(0)  # its own session
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    env = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [e for e in env if e.startswith(b"LD_PRELOAD=")]
    program_fds = {l for l in seen["fds"].values() if l.startswith(("pipe:", "socket:"))}
    keeper_fds = {os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    assert not program_fds & keeper_fds, (program_fds, keeper_fds)
    assert all(l.startswith((str(spool), "/dev/null", "anon_inode:")) for l in keeper_fds), \
        keeper_fds


def test_kill9_after_the_writes_returned_every_record_reaches_the_file(tmp_path, spool):
    """A writer whose interval (30 s) wrote nothing yet is killed with SIGKILL after 3,000
    calls returned: the keeper writes all of them, once each, in order, within a few
    seconds."""
    p, log, counter = start_writer(tmp_path, spool, 3000)
    assert p.stdout.readline() == b"done\n"
    assert not log.exists() or log.stat().st_size == 0  # nothing written yet: all held
    p.kill()
    p.wait()
    want = b"".join(record(i) for i in range(3000))
    wait_for(lambda: log.exists() and log.stat().st_size >= len(want), 15,
             "the keeper writes the killed writer's records")
    time.sleep(0.5)
    assert log.read_bytes() == want
    assert not list(spool.glob("*.spool*"))


@pytest.mark.parametrize("run", range(3))
def test_kill9_while_writing_leaves_exactly_the_returned_records(tmp_path, spool, run):
    """SIGKILL in the middle of a stream of appends (batches every 0.2 s): the file ends up
    with exactly the calls that had returned, each once and in order, plus at most the one
    call in flight, whole."""
    p, log, counter = start_writer(tmp_path, spool, 0, interval="0.2")
    time.sleep(0.4 + 0.3 * run)
    p.kill()
    p.wait()
    n = returned(counter)
    assert n > 0
    want = b"".join(record(i) for i in range(n))
    wait_for(lambda: not list(spool.glob("*.spool")), 15, "the keeper finishes the spool")
    data = log.read_bytes()
    assert data in (want, want + record(n)), (len(data), len(want), n)


def test_keeper_killed_first_the_program_carries_on_with_one_line(tmp_path, spool):
    """The keeper is killed while a writer runs: the writer carries on, says so in one stderr
    line, and every byte reaches the file when it exits."""
    prog = (f"import os, time\nfd = os.open({str(tmp_path / 'a.log')!r}, "
            "os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
            "for i in range(40):\n    os.write(fd, b'line %d\\n' % i)\n    time.sleep(0.1)\n")
    p = subprocess.Popen([PYTHON, "-c", prog], env=env_for(spool, [f"{tmp_path}/*.log"]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid = wait_for(lambda: keeper_pid(spool), 20, "a keeper starts")
    os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = [l for l in err.decode().splitlines() if "crash safety" in l]
    assert len(lines) == 1, err.decode()
    assert lines[0].startswith("bufshim: crash safety: ")
    assert (tmp_path / "a.log").read_text() == "".join(f"line {i}\n" for i in range(40))


def kill_both(tmp_path, spool, n=500):
    """A writer holding n records (nothing written: interval 30 s) and its keeper, both
    killed with SIGKILL, the keeper first: the spool stays with nobody to finish it."""
    p, log, counter = start_writer(tmp_path, spool, n)
    assert p.stdout.readline() == b"done\n"
    pid = wait_for(lambda: keeper_pid(spool), 20, "a keeper starts")
    os.kill(pid, signal.SIGKILL)
    p.kill()
    p.wait()
    wait_for(lambda: not alive(pid), 10, "the keeper is gone")
    spools = list(spool.glob("*.spool"))
    assert len(spools) == 1, list(spool.iterdir())
    assert not log.exists() or log.stat().st_size == 0
    return log, spools[0], b"".join(record(i) for i in range(n))


def recover(spool):
    return subprocess.run([str(LAUNCHER), "recover", "--dir", str(spool)], env=launcher_env(),
                          capture_output=True, text=True, timeout=60)


def test_keeper_and_program_killed_at_once_then_bufshim_recover(tmp_path, spool):
    """Both killed: `bufshim recover` writes what the spool held, says so in one line, exits
    0; a second run finds nothing and writes nothing again."""
    log, sp, want = kill_both(tmp_path, spool)
    r = recover(spool)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(r.stdout.splitlines()) == 1 and str(log) in r.stdout, r.stdout
    assert log.read_bytes() == want
    assert not sp.exists()
    r = recover(spool)
    assert r.returncode == 0 and "nothing to recover" in r.stdout, r.stdout
    assert log.read_bytes() == want


def test_keeper_and_program_killed_at_once_then_the_next_shimmed_process(tmp_path, spool):
    """Both killed: the next shimmed process that spools starts a keeper, which writes what
    the dead one held, once."""
    log, sp, want = kill_both(tmp_path, spool)
    other = tmp_path / "b.log"
    subprocess.run(["/bin/sh", "-c", f"echo next >> {other}"],
                   env=env_for(spool, [f"{tmp_path}/*.log"]), check=True, timeout=60)
    wait_for(lambda: not sp.exists(), 15, "the new keeper finishes the dead spool")
    assert log.read_bytes() == want
    assert other.read_text() == "next\n"
    assert recover(spool).returncode == 0
    assert log.read_bytes() == want


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a spool to another user")
def test_a_spool_of_another_user_is_refused_and_left(tmp_path, spool):
    log, sp, want = kill_both(tmp_path, spool)
    os.chown(sp, 65534, 65534)
    r = recover(spool)
    assert r.returncode == 1, r.stdout
    assert "refused" in r.stdout, r.stdout
    assert not sp.exists() and pathlib.Path(str(sp) + ".refused").exists()
    assert not log.exists() or log.stat().st_size == 0


def test_a_torn_spool_is_refused_and_left(tmp_path, spool):
    log, sp, want = kill_both(tmp_path, spool)
    os.truncate(sp, 100)
    r = recover(spool)
    assert r.returncode == 1, r.stdout
    assert "refused" in r.stdout, r.stdout
    assert not sp.exists() and pathlib.Path(str(sp) + ".refused").exists()
    assert not log.exists() or log.stat().st_size == 0


def test_the_keeper_exits_after_its_linger(tmp_path, spool):
    """No owner alive and no spool left: the keeper exits after BUFSHIM_KEEPER_LINGER."""
    subprocess.run(["/bin/sh", "-c", f"echo x >> {tmp_path}/a.log"],
                   env=env_for(spool, [f"{tmp_path}/*.log"], linger="1"), check=True,
                   timeout=60)
    pid = wait_for(lambda: keeper_pid(spool), 20, "a keeper starts")
    wait_for(lambda: not alive(pid), 20, "the keeper exits after its linger")
    assert "exits:" in (spool / "keeper.log").read_text()


def test_launcher_starts_a_keeper_that_is_not_the_programs_child(tmp_path, spool):
    """tools/bufshim starts the keeper before it execs the program: the program (same pid as
    the launcher) has no child."""
    r = subprocess.run([str(LAUNCHER), "-p", f"{tmp_path}/*.log", "--", PYTHON, "-c",
                        "import os, time\n"
                        "time.sleep(0.5)\n"
                        "c = ' '.join(open(f'/proc/self/task/{t}/children').read() "
                        "for t in os.listdir('/proc/self/task')).split()\n"
                        "print(len(c))\n"],
                       env=launcher_env(BUFSHIM_SPOOL_DIR=str(spool), BUFSHIM_KEEPER_LINGER="30"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0\n"
    wait_for(lambda: keeper_pid(spool), 20, "the launcher's keeper runs")
    assert keepers_started(spool) == 1


def test_keeper_recover_without_spools_says_nothing_to_do(spool):
    r = subprocess.run([str(KEEPER), "--recover", "--dir", str(spool)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "nothing to recover" in r.stdout


def test_a_spool_whose_owner_died_making_it_is_removed(tmp_path, spool):
    """A spool is made under its final name and its magic stored last: one without it belongs
    to a process that died before any append, and recover removes it (nothing was held)."""
    spool.mkdir(mode=0o700)
    dead = subprocess.Popen(["/bin/true"])
    dead.wait()
    created = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    sp = spool / f"{dead.pid}-b{created}-1.spool"
    fd = os.open(sp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 16384)
    os.close(fd)
    r = recover(spool)
    assert r.returncode == 0, r.stdout
    assert "died while making it" in r.stdout, r.stdout
    assert not sp.exists() and not pathlib.Path(str(sp) + ".refused").exists()
