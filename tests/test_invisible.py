"""The shim keeps no descriptor in the program's reach (doc/behaviour.md §7, "Invisible
descriptors"): the program's /proc/self/fd, a child's, a count of descriptors up to a
lowered RLIMIT_NOFILE, and /proc/PID/fd read from outside show exactly what they show
without the shim, while a target is being written and after batches have happened. (The
writer thread's own private table, /proc/PID/task/TID/fd of that thread, may hold the
shim's descriptors: that is intended and not looked at here.) Every shimmed run must have
diverted (tests/diversion.py).
"""
import os
import re
import subprocess
import time

import pytest

from diversion import assert_diverted
from shim_fixture import run_plain, run_shimmed, shim_env

PY = "/usr/bin/python3"
INTERVAL = "0.2"  # the programs sleep past a batch or two before they look


def both(tmp_path, argv_of, target="f.log"):
    """Runs argv_of(d) in tmp_path/plain and tmp_path/shim; returns both stdouts, with the
    folder's path and kernel object numbers (pipe:[N]) made comparable."""
    out = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        if mode == "plain":
            r = run_plain(argv_of(d), cwd=d)
        else:
            r = run_shimmed(argv_of(d), cwd=d, paths=[f"{d}/*.log"], interval=INTERVAL,
                            stats=tmp_path / "shim.stats")
        out[mode] = normalise(r.stdout, d)
    assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / target)
    return out["plain"], out["shim"]


def normalise(text, d):
    text = text.replace(str(d), "<dir>")
    text = re.sub(r"/proc/\d+/", "/proc/PID/", text)
    return re.sub(r"(pipe|socket|anon_inode):\[\d+\]", r"\1:[N]", text)


LIST_SELF = r"""
import os, sys, time
keep = sys.argv[1] == "open"
f = open("f.log", "a", buffering=1)
for i in range(20):
    f.write(f"line {i}\n")
    time.sleep(0.02)
if not keep:
    f.close()
time.sleep(0.5)                      # batches happen meanwhile
def show(tag):
    items = []
    for n in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            items.append(f"{n}->{os.readlink('/proc/self/fd/' + n)}")
        except FileNotFoundError:
            items.append(f"{n}->(gone: the listing's own)")
    print(tag, " ".join(items))
show("after-batches")
if keep:
    f.write("more\n")
    show("after-more")
"""


@pytest.mark.parametrize("limit", [None, 64])
@pytest.mark.parametrize("keep", ["open", "closed"])
def test_python_listdir_proc_self_fd(tmp_path, keep, limit):
    (tmp_path / "list.py").write_text(LIST_SELF)
    prog = [PY, str(tmp_path / "list.py"), keep]
    if limit:
        prog = ["bash", "-c", f'ulimit -n {limit}; exec "$@"', "bash", *prog]
    plain, shim = both(tmp_path, lambda d: prog)
    assert "f.log" in plain or keep == "closed"
    assert shim == plain


CHILD = r"""
import os, subprocess, sys, time
f = open("f.log", "a", buffering=1)
for i in range(20):
    f.write(f"line {i}\n")
time.sleep(0.5)
# The child inherits the target's descriptor (pass_fds) and lists its own table.
r = subprocess.run(["ls", "/proc/self/fd"], pass_fds=[f.fileno()], capture_output=True,
                   text=True, check=True)
print(sys.argv[1], r.stdout.split())
r = subprocess.run([sys.executable, "-c",
                    "import os; print(sorted(os.listdir('/proc/self/fd'), key=int))"],
                   pass_fds=[f.fileno()], capture_output=True, text=True, check=True)
print(r.stdout.strip())
f.write("after\n")
"""


@pytest.mark.parametrize("limit", [None, 64])
def test_python_child_sees_the_same_descriptors(tmp_path, limit):
    (tmp_path / "child.py").write_text(CHILD)
    prog = [PY, str(tmp_path / "child.py"), "child"]
    if limit:
        prog = ["bash", "-c", f'ulimit -n {limit}; exec "$@"', "bash", *prog]
    plain, shim = both(tmp_path, lambda d: prog)
    assert shim == plain


@pytest.mark.parametrize("limit", [None, 64])
def test_bash_ls_proc_fd_and_a_childs_view(tmp_path, limit):
    # bash keeps fd 3 on the target; ls (fork+exec) lists bash's table from outside
    # (/proc/$$/fd) and its own (/proc/self/fd), where fd 3 is inherited: the child's own
    # shim meets a target at start and must not add a descriptor either.
    script = ((f"ulimit -n {limit}\n" if limit else "") +
              "exec 3>>f.log\n"
              "for i in $(seq 1 20); do echo \"line $i\" >&3; done\n"
              "sleep 0.5\n"
              # no pipeline: bash would hold pipe descriptors while ls looks
              "ls -l --time-style=+ /proc/$$/fd > fds.txt\n"
              "awk 'NR > 1 {print $(NF-2), $(NF-1), $NF}' fds.txt\n"
              "echo --\n"
              "ls /proc/self/fd\n"
              "echo --\n"
              "ls -l --time-style=+ /proc/self/fd/ > self.txt\n"
              "awk 'NR > 1 {print $(NF-2), $(NF-1), $NF}' self.txt\n"
              "echo more >&3\n"
              "exit 0\n")
    plain, shim = both(tmp_path, lambda d: ["bash", "-c", script])
    assert "3 -> <dir>/f.log" in plain
    assert shim == plain


RLIMIT = r"""
import os, resource, sys, time
f = open("f.log", "a", buffering=1)
for i in range(20):
    f.write(f"line {i}\n")
time.sleep(0.5)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1])))
fds = []
while True:
    try:
        fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        print("opened", len(fds), "then", e.strerror, "lowest", min(fds), "highest", max(fds))
        break
f.write("while full\n")               # a batch is due while no descriptor is free
time.sleep(0.5)
for fd in fds:
    os.close(fd)
f.write("after\n")
print(sorted(os.listdir("/proc/self/fd"), key=int))
"""


@pytest.mark.parametrize("limit", ["16", "64"])
def test_lowered_rlimit_nofile_counts_the_same(tmp_path, limit):
    (tmp_path / "rl.py").write_text(RLIMIT)
    plain, shim = both(tmp_path, lambda d: [PY, str(tmp_path / "rl.py"), limit])
    assert plain.startswith("opened ")
    assert shim == plain
    assert (tmp_path / "shim" / "f.log").read_bytes() == (tmp_path / "plain" / "f.log").read_bytes()


def test_started_with_a_low_limit(tmp_path):
    # ulimit -n 16 before the program starts: the shim meets the low limit at start.
    code = ("import os, time\n"
            "f = open('f.log', 'a', buffering=1)\n"
            "for i in range(20): f.write(f'line {i}\\n')\n"
            "time.sleep(0.5)\n"
            "fds = []\n"
            "try:\n"
            "    while True: fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e: print('opened', len(fds), e.strerror)\n"
            "for fd in fds: os.close(fd)\n"
            "f.write('after\\n')\n"
            "print(sorted(os.listdir('/proc/self/fd'), key=int))\n")
    plain, shim = both(tmp_path, lambda d: ["bash", "-c", 'ulimit -n 16; exec "$0" -c "$1"',
                                            PY, code])
    assert shim == plain


def outside_view(pid, d):
    """/proc/PID/fd of a running process, read by this (plain) process."""
    out = []
    for n in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{n}->{os.readlink(f'/proc/{pid}/fd/{n}')}")
        except FileNotFoundError:
            pass
    return normalise("\n".join(out), d)


def test_proc_pid_fd_from_outside(tmp_path):
    code = ("import sys, time\n"
            "f = open('f.log', 'a', buffering=1)\n"
            "for i in range(50):\n"
            "    f.write(f'line {i}\\n')\n"
            "    if i == 10: open('ready', 'w').close()\n"
            "    time.sleep(0.05)\n")
    views = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        env = shim_env(paths=[f"{d}/*.log"], interval=INTERVAL, stats=tmp_path / "shim.stats") \
            if mode == "shim" else {k: v for k, v in os.environ.items()
                                    if not k.startswith("BUFSHIM_") and k != "LD_PRELOAD"}
        p = subprocess.Popen([PY, "-c", code], cwd=d, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (d / "ready").exists():
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.01)
        time.sleep(0.6)  # batches have happened
        views[mode] = outside_view(p.pid, d)
        assert p.wait(timeout=30) == 0
    assert "f.log" in views["plain"]
    assert views["shim"] == views["plain"]
    assert_diverted(tmp_path / "shim.stats", tmp_path / "shim" / "f.log")
