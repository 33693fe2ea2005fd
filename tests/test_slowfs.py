"""slowfs self-tests: pass-through exactness, latency, faults, hangs, the control file and
the event log, each seen by plain programs (dd, bash, python3)."""
import errno
import os
import subprocess
import sys
import time

import pytest

from slowfs_fixture import group_writes

MS = 1_000_000


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def py(code, *args, **kw):
    """Runs a python3 program (code) with args; returns the CompletedProcess."""
    return run([sys.executable, "-c", code, *map(str, args)], **kw)


def dur_ns(e):
    return e["end_ns"] - e["start_ns"]


# --- pass-through ---------------------------------------------------------------------------

def test_bytes_land_in_backing_exactly(slowfs):
    data = bytes(range(256)) * 1000 + b"tail"
    p = slowfs.path("a.bin")
    with open(p, "wb") as f:
        f.write(data[:1000])
        f.flush()
        f.write(data[1000:])
    with open(p, "ab") as f:
        f.write(b"appended\n")
    assert slowfs.backing_path("a.bin").read_bytes() == data + b"appended\n"
    assert p.read_bytes() == data + b"appended\n"

    os.mkdir(slowfs.path("d"))
    (slowfs.path("d") / "x.txt").write_text("hello\n")
    os.rename(slowfs.path("d/x.txt"), slowfs.path("d/y.txt"))
    os.symlink("y.txt", slowfs.path("d/link"))
    assert os.readlink(slowfs.path("d/link")) == "y.txt"
    assert (slowfs.backing / "d" / "y.txt").read_text() == "hello\n"
    assert not (slowfs.backing / "d" / "x.txt").exists()
    os.truncate(slowfs.path("d/y.txt"), 2)
    assert (slowfs.backing / "d" / "y.txt").read_text() == "he"
    os.unlink(slowfs.path("d/link"))
    os.unlink(slowfs.path("d/y.txt"))
    os.rmdir(slowfs.path("d"))
    assert sorted(os.listdir(slowfs.backing)) == ["a.bin"]

    # A file the backing directory gains behind the mount's back is seen at once.
    slowfs.backing_path("outside").write_text("x")
    assert slowfs.path("outside").read_text() == "x"


def test_unlinked_open_file_keeps_working(slowfs):
    p = slowfs.path("gone.log")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"one\n")
        os.unlink(p)
        assert os.write(fd, b"two\n") == 4
        assert os.fstat(fd).st_size == 8
        assert os.listdir(slowfs.mount) == []
        # Like NFS's .nfs* files: the unlinked file lives on under a hidden name.
        (hidden,) = os.listdir(slowfs.backing)
        assert hidden.startswith(".fuse_hidden")
        assert slowfs.backing_path(hidden).read_bytes() == b"one\ntwo\n"
    finally:
        os.close(fd)
    slowfs.wait_for(lambda: os.listdir(slowfs.backing) == [], what="the hidden file to go")
    w = slowfs.writes()
    assert [e["path"] for e in w] == ["/gone.log", "/" + hidden]


def test_control_dir_hidden_but_reachable(slowfs):
    slowfs.path("visible").write_text("")
    assert os.listdir(slowfs.mount) == ["visible"]
    assert ".slowfs" not in run(["ls", "-a", str(slowfs.mount)]).stdout
    assert slowfs.ctl_path.exists()
    assert "latency none" in slowfs.status()
    # Nothing from the control file reaches the backing directory.
    slowfs.ctl("latency write=1ms")
    assert os.listdir(slowfs.backing) == ["visible"]


# --- latency --------------------------------------------------------------------------------

def test_latency_from_mount_and_changed_while_mounted(make_slowfs):
    fs = make_slowfs(latency="write=20ms,fsync=30ms")
    fd = os.open(fs.path("l.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.monotonic_ns()
        os.write(fd, b"x" * 100)
        t1 = time.monotonic_ns()
        os.fsync(fd)
        t2 = time.monotonic_ns()
        fs.ctl("latency write=60ms")
        os.write(fd, b"y" * 100)
        t3 = time.monotonic_ns()
        fs.ctl("latency write=0")
        os.write(fd, b"z")
    finally:
        os.close(fd)
    assert t1 - t0 >= 20 * MS
    assert t2 - t1 >= 30 * MS
    assert t3 - t2 >= 60 * MS
    w = fs.writes("l.log")
    assert [e["size"] for e in w] == [100, 100, 1]
    assert dur_ns(w[0]) >= 20 * MS
    assert dur_ns(w[1]) >= 60 * MS
    assert dur_ns(w[2]) < 50 * MS  # latency back to zero: generous bound on a busy machine
    (fsync,) = fs.events("fsync")
    assert dur_ns(fsync) >= 30 * MS


def test_open_latency_and_status(make_slowfs):
    fs = make_slowfs(latency="open=40ms")
    assert "open=40.000ms" in fs.status() and "create=40.000ms" in fs.status()
    fs.path("f").write_text("x")  # create
    t0 = time.monotonic_ns()
    fs.path("f").read_text()  # open
    assert time.monotonic_ns() - t0 >= 40 * MS
    opens = fs.events(("open", "create"), "f")
    assert [e["op"] for e in opens] == ["create", "open"]
    assert all(dur_ns(e) >= 40 * MS for e in opens)


def test_getattr_flush_release_latency(slowfs):
    slowfs.path("g").write_text("x")
    slowfs.ctl("latency getattr=30ms,flush=40ms,release=50ms")
    mark = slowfs.mark()
    t0 = time.monotonic_ns()
    os.stat(slowfs.path("g"))
    t1 = time.monotonic_ns()
    fd = os.open(slowfs.path("g"), os.O_RDONLY)
    t2 = time.monotonic_ns()
    os.close(fd)  # flush is waited for; release is sent after close returns
    t3 = time.monotonic_ns()
    assert t1 - t0 >= 30 * MS
    assert t3 - t2 >= 40 * MS
    evs = slowfs.wait_for(lambda: slowfs.events(("flush", "release"), "g", since=mark)
                          if len(slowfs.events(("flush", "release"), "g", since=mark)) == 2
                          else None, what="flush and release")
    assert [e["op"] for e in evs] == ["flush", "release"]
    assert dur_ns(evs[0]) >= 40 * MS and dur_ns(evs[1]) >= 50 * MS
    assert all(dur_ns(e) >= 30 * MS for e in slowfs.events("getattr", "g", since=mark))


def test_dd_four_writes_each_200ms(make_slowfs):
    """Must-show: mount with --latency write=200ms, dd writes 4 blocks, 4 writes >= 200 ms."""
    fs = make_slowfs(latency="write=200ms")
    r = run(["dd", "if=/dev/zero", f"of={fs.path('dd.out')}", "bs=4096", "count=4"])
    assert r.returncode == 0, r.stderr
    w = fs.writes("dd.out")
    assert [(e["off"], e["size"], e["result"]) for e in w] == [
        (0, 4096, 4096), (4096, 4096, 4096), (8192, 4096, 4096), (12288, 4096, 4096)]
    assert all(dur_ns(e) >= 200 * MS for e in w)
    # One after the other: dd waits for each write.
    assert all(b["start_ns"] >= a["end_ns"] for a, b in zip(w, w[1:]))
    assert fs.backing_path("dd.out").read_bytes() == bytes(16384)


# --- faults ---------------------------------------------------------------------------------

def test_dd_enospc_once_from_shell(slowfs):
    """Must-show: 'fail write ENOSPC count=1' (written from a shell) fails the next write
    with "No space left on device", the one after succeeds."""
    out = slowfs.path("full.out")
    r = run(["bash", "-c", f"echo 'fail write ENOSPC count=1' > {slowfs.ctl_path}"])
    assert r.returncode == 0, r.stderr
    r = run(["dd", "if=/dev/zero", f"of={out}", "bs=512", "count=1"])
    assert r.returncode != 0
    assert "No space left on device" in r.stderr
    r = run(["dd", "if=/dev/zero", f"of={out}", "bs=512", "count=1"])
    assert r.returncode == 0, r.stderr
    assert [e["result"] for e in slowfs.writes("full.out")] == [-errno.ENOSPC, 512]
    assert slowfs.backing_path("full.out").read_bytes() == bytes(512)


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(int(sys.argv[2])):
    try:
        os.write(fd, b"rec%d\\n" % i)
        print("ok")
    except OSError as e:
        print(e.errno)
"""


@pytest.mark.parametrize("name", ["EIO", "ENOSPC", "EDQUOT"])
def test_write_fails_next_k(slowfs, name):
    slowfs.ctl(f"fail write {name} count=3")
    r = py(WRITER, slowfs.path("k.log"), 5)
    code = str(getattr(errno, name))
    assert r.stdout.split() == [code, code, code, "ok", "ok"]
    assert slowfs.backing_path("k.log").read_bytes() == b"rec3\nrec4\n"
    assert "fail write" not in slowfs.status()  # the rule is used up


def test_write_fails_until_cleared(slowfs):
    slowfs.ctl("fail write EIO")
    r = py(WRITER, slowfs.path("u.log"), 3)
    assert r.stdout.split() == [str(errno.EIO)] * 3
    slowfs.ctl("clear")
    r = py(WRITER, slowfs.path("u.log"), 2)
    assert r.stdout.split() == ["ok", "ok"]
    assert slowfs.backing_path("u.log").read_bytes() == b"rec0\nrec1\n"


OPENER = """
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    print("ok")
except OSError as e:
    print(e.errno)
"""


@pytest.mark.parametrize("name", ["ENOENT", "EACCES", "EIO"])
def test_open_fails(slowfs, name):
    slowfs.path("exists").write_text("x")
    slowfs.ctl(f"fail open {name} count=2")
    # An existing file (open) and a new one (create) both fail; then the rule is used up.
    assert py(OPENER, slowfs.path("exists")).stdout.split() == [str(getattr(errno, name))]
    assert py(OPENER, slowfs.path("new")).stdout.split() == [str(getattr(errno, name))]
    assert py(OPENER, slowfs.path("new")).stdout.split() == ["ok"]
    r = run(["cat", str(slowfs.path("exists"))])
    assert r.returncode == 0 and r.stdout == "x"


def test_open_fails_seen_by_cat(slowfs):
    slowfs.path("secret").write_text("x")
    slowfs.ctl("fail open EACCES path=secret")
    r = run(["cat", str(slowfs.path("secret"))])
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_fault_path_globs(slowfs):
    os.mkdir(slowfs.path("sub"))
    slowfs.ctl("fail write EIO path=*.log", "fail write ENOSPC path=/sub/*.txt")
    assert py(WRITER, slowfs.path("a.log"), 1).stdout.split() == [str(errno.EIO)]
    assert py(WRITER, slowfs.path("sub/b.log"), 1).stdout.split() == [str(errno.EIO)]
    assert py(WRITER, slowfs.path("sub/c.txt"), 1).stdout.split() == [str(errno.ENOSPC)]
    # '*' does not cross '/', and other names are untouched.
    assert py(WRITER, slowfs.path("c.txt"), 1).stdout.split() == ["ok"]
    assert py(WRITER, slowfs.path("a.log.1"), 1).stdout.split() == ["ok"]


def test_short_write(slowfs):
    slowfs.ctl("short write bytes=10 count=1", "short write count=1 path=half")
    fd = os.open(slowfs.path("s"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        assert os.write(fd, b"a" * 100) == 10
        assert os.write(fd, b"b" * 100) == 100
    finally:
        os.close(fd)
    assert slowfs.backing_path("s").read_bytes() == b"a" * 10 + b"b" * 100
    fd = os.open(slowfs.path("half"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        assert os.write(fd, b"c" * 100) == 50
    finally:
        os.close(fd)
    assert [(e["size"], e["result"]) for e in slowfs.writes("s")] == [(100, 10), (100, 100)]


def test_delay_rule(slowfs):
    slowfs.ctl("delay write 300ms count=1 path=*.log")
    t0 = time.monotonic_ns()
    assert py(WRITER, slowfs.path("d.log"), 3).stdout.split() == ["ok"] * 3
    assert time.monotonic_ns() - t0 >= 300 * MS
    w = slowfs.writes("d.log")
    assert dur_ns(w[0]) >= 300 * MS
    assert dur_ns(w[1]) < 300 * MS and dur_ns(w[2]) < 300 * MS


def test_hung_write_returns_after_release(slowfs):
    slowfs.ctl("hang write path=*.log")
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(slowfs.path("h.log")), "2"],
                         stdout=subprocess.PIPE, text=True)
    try:
        slowfs.wait_hung(1)
        time.sleep(0.2)
        assert p.poll() is None, "the hung write returned before release"
        # Other files, and lookups of the hung one, are not held up.
        t0 = time.monotonic()
        assert py(WRITER, slowfs.path("other.txt"), 1).stdout.split() == ["ok"]
        os.stat(slowfs.path("h.log"))
        assert time.monotonic() - t0 < 5
        released_at = time.monotonic_ns()
        slowfs.ctl("release")
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.split() == ["ok", "ok"]  # the dead server came back: the hang rule is gone
    assert slowfs.backing_path("h.log").read_bytes() == b"rec0\nrec1\n"
    w = slowfs.writes("h.log")
    assert len(w) == 2
    assert w[0]["end_ns"] >= released_at and dur_ns(w[0]) >= 200 * MS
    assert slowfs.hung() == 0


def test_hang_many_writers_and_unmount_while_hung(make_slowfs):
    """More hung writes than libfuse's default thread count; unmount still succeeds."""
    fs = make_slowfs()
    fs.ctl("hang write")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(fs.path(f"f{i}")), "1"],
                              stdout=subprocess.PIPE, text=True) for i in range(12)]
    try:
        fs.wait_hung(12)
        assert fs.path("f0").exists()  # lookups still served
        fs.unmount()  # releases the hung writes, unmounts
        for p in procs:
            p.communicate(timeout=10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert not os.path.ismount(fs.mount)
    assert fs.proc.returncode == 0  # unmounted, not signalled


def test_daemon_unmounts_when_its_parent_dies(tmp_path):
    from slowfs_fixture import SLOWFS_BIN, require_fuse
    require_fuse()
    (tmp_path / "b").mkdir()
    (tmp_path / "m").mkdir()
    # A parent that starts slowfs and dies at once, as a killed test run would.
    code = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.argv[1], sys.argv[2], sys.argv[3], '-f',"
        " '--exit-with-parent'])\n"
        "while not os.path.ismount(sys.argv[3]): time.sleep(0.01)\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n")
    r = py(code, SLOWFS_BIN, tmp_path / "b", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout)
    deadline = time.monotonic() + 10
    while os.path.ismount(tmp_path / "m") and time.monotonic() < deadline:
        time.sleep(0.01)
    mounted = os.path.ismount(tmp_path / "m")
    if mounted:
        subprocess.run(["fusermount3", "-u", "-z", str(tmp_path / "m")])
    assert not mounted
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        raise AssertionError("slowfs outlived its parent")


# --- control file ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    "frobnicate", "fail write ENOTANERRNO", "fail nosuchop EIO", "latency write=fast",
    "hang write count=0", "short read", "latency", "release now", "fail write EIO colour=red",
])
def test_invalid_control_line_rejected_and_nothing_applied(slowfs, bad):
    before = slowfs.status()
    with pytest.raises(OSError) as ei:
        slowfs.ctl("latency write=5ms", bad)
    assert ei.value.errno == errno.EINVAL
    assert slowfs.status() == before
    assert "slowfs: control:" in slowfs.stderr_text()


def test_status_lists_rules_and_clear(slowfs):
    slowfs.ctl("# a comment", "", "fail write EDQUOT count=2 path=*.log", "hang fsync",
               "latency write=5ms,fsync=1s")
    st = slowfs.status()
    assert "fail write EDQUOT count=2 path=*.log" in st
    assert "hang fsync" in st
    assert "write=5.000ms" in st and "fsync=1000.000ms" in st
    slowfs.ctl("clear")
    st = slowfs.status()
    assert "fail" not in st and "hang fsync" not in st and "write=5.000ms" in st
    slowfs.ctl("reset")
    assert slowfs.status().startswith("latency none\n")
    (ctl,) = [e for e in slowfs.events("ctl") if "EDQUOT" in e["cmd"]]
    assert ctl["result"] == ctl["size"] > 0


# --- event log ------------------------------------------------------------------------------

LOGGED = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for n in (1, 100, 4096, 5000, 70000, 3 << 20, 7):
    assert os.write(fd, b"x" * n) == n
os.fsync(fd)
os.close(fd)
"""


def test_log_matches_what_the_program_did(slowfs):
    t0 = time.monotonic_ns()
    wall0 = time.time()
    p = subprocess.Popen([sys.executable, "-c", LOGGED, str(slowfs.path("ev.log"))])
    assert p.wait(timeout=60) == 0
    t1 = time.monotonic_ns()
    sizes = [1, 100, 4096, 5000, 70000, 3 << 20, 7]
    assert slowfs.backing_path("ev.log").stat().st_size == sum(sizes)

    mine = slowfs.events(tgid=p.pid, path="ev.log")
    assert [e["op"] for e in mine if e["op"] != "getattr"][0] == "create"
    ops = [e["op"] for e in mine if e["op"] in ("write", "fsync", "flush")]
    n = ops.count("write")
    assert ops == ["write"] * n + ["fsync", "flush"]
    w = [e for e in group_writes(mine) if e["op"] == "write"]
    assert [e["size"] for e in w] == sizes
    assert [e["result"] for e in w] == sizes
    assert [e["chunks"] for e in w] == [1, 1, 1, 1, 1, 4, 1] or \
        [e["chunks"] for e in w] == [1, 1, 1, 1, 1, 3, 1]
    # Offsets follow each other, in order; times are ordered and inside the run.
    off = 0
    for e in w:
        assert e["off"] == off
        off += e["size"]
    raw = [e for e in mine if e["op"] == "write"]
    assert all(b["start_ns"] >= a["end_ns"] for a, b in zip(raw, raw[1:]))
    for e in mine:
        assert t0 <= e["start_ns"] <= e["end_ns"] <= t1
        assert wall0 - 1 <= e["start_wall"] <= e["end_wall"] <= time.time() + 1
        assert e["pid"] == p.pid
    handles = {e["fh"] for e in mine if e["op"] in ("create", "write", "fsync", "flush")}
    assert len(handles) == 1 and None not in handles


def test_log_lines_in_end_order_under_concurrency(slowfs):
    slowfs.ctl("latency write=1ms")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(slowfs.path(f"c{i}")), "20"],
                              stdout=subprocess.DEVNULL) for i in range(4)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    evs = slowfs.events()
    ends = [e["end_ns"] for e in evs]
    assert ends == sorted(ends)
    w = slowfs.writes()
    assert len(w) == 80
    for i, p in enumerate(procs):
        assert [e["size"] for e in slowfs.writes(f"c{i}", tgid=p.pid)] == \
            [len(b"rec%d\n" % k) for k in range(20)]


def test_hung_writer_can_be_killed_with_intr(make_slowfs):
    """Mounted with --intr, a signal ends a hung write (EINTR), like NFS's intr option;
    the rule stays for later writes."""
    fs = make_slowfs(args=["--intr"])
    fs.ctl("hang write path=*.log")
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(fs.path("k.log")), "1"],
                         stdout=subprocess.PIPE, text=True)
    try:
        fs.wait_hung(1)
        p.kill()
        assert p.wait(timeout=10) == -9
    finally:
        if p.poll() is None:
            fs.ctl("release")
            p.wait()
    fs.wait_for(lambda: fs.hung() == 0, what="the hung call to end")
    (w,) = fs.wait_for(lambda: fs.writes("k.log"), what="the write's log line")
    assert w["result"] == -errno.EINTR
    assert fs.backing_path("k.log").read_bytes() == b""
    assert "hang write path=*.log" in fs.status()


def test_fsync_and_close_can_fail(slowfs):
    slowfs.ctl("fail fsync EIO count=1", "fail flush ENOSPC count=1")
    fd = os.open(slowfs.path("c"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"data")
    with pytest.raises(OSError) as ei:
        os.fsync(fd)
    assert ei.value.errno == errno.EIO
    os.fsync(fd)
    with pytest.raises(OSError) as ei:
        os.close(fd)
    assert ei.value.errno == errno.ENOSPC
    assert slowfs.backing_path("c").read_bytes() == b"data"
    assert [e["result"] for e in slowfs.events("fsync", "c")] == [-errno.EIO, 0]


def test_sigterm_with_a_hung_write_stops_the_daemon(make_slowfs):
    fs = make_slowfs()
    fs.ctl("hang write")
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(fs.path("t.log")), "1"],
                         stdout=subprocess.PIPE, text=True)
    try:
        fs.wait_hung(1)
        fs.proc.terminate()
        assert fs.proc.wait(timeout=10) in (0, 8)  # libfuse: 8 after a signal
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # The hung write was let go on the way out; the mount is gone.
    assert out.split() in (["ok"], [str(errno.ENOTCONN)], [str(errno.EIO)])
    assert not os.path.ismount(fs.mount)


def test_page_cache_mode_allows_shared_mmap(make_slowfs):
    import mmap
    direct = make_slowfs()
    cached = make_slowfs(page_cache=True)
    for fs in (direct, cached):
        fs.path("m").write_bytes(b"\0" * 4096)
    with open(direct.path("m"), "r+b") as f, pytest.raises(OSError) as ei:
        mmap.mmap(f.fileno(), 4096)
    assert ei.value.errno == errno.ENODEV  # direct I/O: no shared mappings
    with open(cached.path("m"), "r+b") as f:
        m = mmap.mmap(f.fileno(), 4096)
        m[:5] = b"hello"
        m.flush()
        m.close()
    assert cached.backing_path("m").read_bytes()[:5] == b"hello"
