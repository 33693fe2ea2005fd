"""pytest fixtures for slowfs (tools/slowfs): a slow, faulty FUSE drive that logs every operation.

Loaded as a plugin by tests/conftest.py. Tests that use these fixtures are skipped only when
/dev/fuse or fusermount3 is missing (the skip reason says which); a slowfs binary that is not
built is a failure.

Fixtures
--------
``slowfs``
    A ``SlowFS`` mounted for the test with no latency and no faults; always unmounted after
    the test, pass or fail.
``make_slowfs(latency=None, page_cache=False, args=())``
    Factory for more mounts, or a mount that starts with latencies (``latency="write=2ms"``,
    the ``--latency`` syntax), or other slowfs options (``args=["--intr"]``). Every mount it
    makes is unmounted after the test.

Hung calls block their caller in the kernel (even through SIGKILL unless mounted with
``--intr``): make them from a subprocess or a thread, never from the test's own thread.
Teardown sends ``clear`` first, so hung subprocesses finish.

``SlowFS``
----------
Attributes: ``mount`` (Path of the mount point), ``backing`` (Path of the backing directory,
where the bytes land), ``log_path`` (the JSON-lines event log), ``ctl_path``
(``mount/.slowfs/ctl``), ``stderr_path``, ``proc`` (the slowfs ``Popen``).

``path(name)`` / ``backing_path(name)``
    ``mount / name`` and ``backing / name``.
``ctl(*lines)``
    Writes the control lines in one write. An invalid line raises ``OSError`` (EINVAL) and
    nothing is applied. Lines: ``latency write=50ms,open=5ms`` (ops: getattr readdir open
    create read write flush release fsync truncate unlink rename mkdir rmdir symlink readlink
    link chmod chown utimens statfs fallocate, or ``all``; ``open`` covers create;
    durations ``ns``/``us``/``ms``/``s``, bare numbers are ms), ``fail OP ERRNO [count=K]
    [path=GLOB]``, ``hang OP [count=K] [path=GLOB]``, ``delay OP DURATION [count=K]
    [path=GLOB]``, ``short write [bytes=N] [count=K] [path=GLOB]`` (default: half),
    ``release`` (wake hung calls, drop hang rules), ``clear`` (drop all rules, wake hung calls),
    ``reset`` (clear and zero latencies). Without ``count`` a rule lasts until cleared. A glob
    without ``/`` matches the file name, with ``/`` the path from the mount root.
``status()`` / ``hung()``
    The control file's text; the number of calls hanging right now.
``events(op=None, path=None, tgid=None, pid=None, since=0)``
    The parsed event log (a list of dicts, in end-time order), filtered: ``since`` a value of
    ``mark()`` (only what was logged after it), ``op`` is a name or
    a collection of names, ``path`` a name relative to the mount (``"a.log"``, ``"/a.log"``)
    or a path inside it, ``tgid`` the process id of the caller (``Popen.pid``), ``pid`` the
    kernel's caller id (the thread id). Fields: op, path, to (rename/link/symlink), cmd (ctl),
    pid, tgid, fh, off, size, flags (open/create/fsync/rename/chmod), result (bytes or -errno),
    start_ns, end_ns (CLOCK_MONOTONIC ns, the clock of ``time.monotonic_ns()``), start_wall,
    end_wall (seconds since the epoch). Absent values are None.
``writes(path=None, tgid=None, since=0)``
    ``events("write", ...)`` shorthand.
``mark()``
    The log's current end, for ``events(since=...)``.
``batches(path, tgid=None, since=0, gap_ns=100_000_000)``
    A writer's batches to path as the filesystem saw them (the writes between one open of
    the file and the next, or less than gap_ns apart), each a dict with start_ns, end_ns,
    bytes, results, writes.
``wait_for(predicate, timeout=10.0, interval=0.01, what=None)``
    Polls until ``predicate()`` is truthy and returns its value; fails the test on timeout.
``wait_hung(n=1, timeout=10.0)``
    Waits until at least n calls hang.
``unmount()``
    Wakes hung calls, unmounts (lazily if busy) and stops the daemon. Idempotent.

Module helpers: ``group_writes(events)`` merges the chunks the kernel split one write(2) of more
than 1 MiB into; ``SLOWFS_BIN``; ``require_fuse()`` skips when FUSE is unusable.

Writes and the log: files are opened with direct I/O, so each write(2) of up to 1 MiB arrives as
exactly one ``write`` event at the offset the kernel chose; larger ones arrive in chunks of at
most 1 MiB (use ``group_writes``). With ``page_cache=True`` writes also split where they cross
a page boundary at an unaligned offset.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import BUILD_DIR, assert_no_sanitizer_report

SLOWFS_BIN = BUILD_DIR / "tools" / "slowfs" / "slowfs"
MAX_WRITE = 1 << 20
# The exit codes the meson test setups give the sanitizers (asan, ubsan, tsan).
SANITIZER_EXIT_CODES = (23, 24, 25)
PAGE = 4096


def require_fuse():
    """Skips the calling test when FUSE cannot be used here, saying why."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("slowfs needs FUSE: /dev/fuse is missing")
    if shutil.which("fusermount3") is None:
        pytest.skip("slowfs needs FUSE: fusermount3 is not installed (Debian package fuse3)")


def _require_binary():
    if not SLOWFS_BIN.exists():
        pytest.fail(f"slowfs is not built: {SLOWFS_BIN} is missing (it needs libfuse3-dev; "
                    f"run meson compile -C {BUILD_DIR})")


def _rel(mount, path):
    """A path as the event log spells it: from the mount root, starting with '/'."""
    if path is None:
        return None
    p = os.fspath(path)
    m = os.fspath(mount)
    if p == m:
        return "/"
    if p.startswith(m + "/"):
        p = p[len(m):]
    return p if p.startswith("/") else "/" + p


def group_writes(events, gap_ns=200_000_000):
    """Merges the chunks of writes the kernel split (a write(2) above 1 MiB) into one
    event each. A write continues the previous write by the same caller (pid, a thread
    id) and handle when the previous one was a full chunk (more than 1 MiB less a page)
    and fully accepted, it starts exactly at that one's end, within gap_ns of it, and the
    caller did nothing else in between (among the events given). The merged event keeps
    the first chunk's start, the last chunk's end, the summed size and result (or the
    first error), and the number of chunks in "chunks". Other events pass through.

    It is a heuristic: a program that itself writes 1 MiB or more per call, contiguously
    and back to back, has its calls merged too. Engine batches open the file anew, so
    two batches are never merged."""
    out = []
    open_by_pid = {}
    for e in events:
        if e.get("op") != "write":
            open_by_pid.pop(e.get("pid"), None)
            out.append(e)
            continue
        prev = open_by_pid.get(e["pid"])
        if (prev is not None and prev["fh"] == e["fh"] and prev["result"] >= 0 and
                prev["_last_size"] > MAX_WRITE - PAGE and
                prev["_last_result"] == prev["_last_size"] and
                e["off"] == prev["_next_off"] and
                0 <= e["start_ns"] - prev["end_ns"] <= gap_ns):
            prev["size"] += e["size"]
            prev["result"] = prev["result"] + e["result"] if e["result"] >= 0 else e["result"]
            prev["end_ns"] = e["end_ns"]
            prev["end_wall"] = e["end_wall"]
            prev["chunks"] += 1
            prev["_last_size"], prev["_last_result"] = e["size"], e["result"]
            prev["_next_off"] = e["off"] + e["size"]
            continue
        merged = dict(e, chunks=1, _last_size=e["size"], _last_result=e["result"],
                      _next_off=e["off"] + e["size"])
        open_by_pid[e["pid"]] = merged
        out.append(merged)
    for e in out:
        for k in ("_last_size", "_last_result", "_next_off"):
            e.pop(k, None)
    return out


class SlowFS:
    """One slowfs mount run by this test process (see the module docstring)."""

    def __init__(self, workdir, latency=None, page_cache=False, args=()):
        workdir = pathlib.Path(workdir)
        self.backing = workdir / "backing"
        self.mount = workdir / "mnt"
        self.log_path = workdir / "slowfs.log"
        self.stderr_path = workdir / "slowfs.stderr"
        self.ctl_path = self.mount / ".slowfs" / "ctl"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mount.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        # --exit-with-parent: a test run that is killed leaves no daemon or mount behind.
        cmd = [str(SLOWFS_BIN), str(self.backing), str(self.mount), "-f", "--exit-with-parent",
               "--log", str(self.log_path)]
        if latency:
            cmd += ["--latency", latency]
        if page_cache:
            cmd.append("--page-cache")
        cmd += list(args)
        self._stderr = open(self.stderr_path, "wb")
        # The daemon is the drive, never a program under test: no shim in it even when the
        # test process's own environment carries one.
        env = {k: v for k, v in os.environ.items()
               if k != "LD_PRELOAD" and not k.startswith("BUFSHIM_")}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, env=env)
        self._mounted = True
        self._killed = False
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mount):
            if self.proc.poll() is not None:
                self._mounted = False
                self._stderr.close()
                pytest.fail(f"slowfs exited with {self.proc.returncode} before mounting: "
                            f"{self.stderr_text()}")
            if time.monotonic() > deadline:
                self.unmount()
                pytest.fail(f"slowfs did not mount within 10 s: {self.stderr_text()}")
            time.sleep(0.01)

    def path(self, name):
        return self.mount / name

    def backing_path(self, name):
        return self.backing / name

    def ctl(self, *lines):
        text = "".join(line.rstrip("\n") + "\n" for line in lines)
        fd = os.open(self.ctl_path, os.O_WRONLY)
        try:
            n = os.write(fd, text.encode())
        finally:
            os.close(fd)
        assert n == len(text.encode()), f"short control write {n}"

    def status(self):
        return self.ctl_path.read_text()

    def hung(self):
        for line in self.status().splitlines():
            if line.startswith("hung "):
                return int(line.split()[1])
        raise AssertionError(f"no 'hung' line in the control file:\n{self.status()}")

    def mark(self):
        """A position in the event log: events(since=mark) returns what came after."""
        return self.log_path.stat().st_size

    def events(self, op=None, path=None, tgid=None, pid=None, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            data = f.read()
        # A line still being written has no newline yet: leave it for the next call.
        lines = data.split(b"\n")[:-1]
        evs = [json.loads(line.decode("utf-8", "surrogateescape")) for line in lines if line]
        if op is not None:
            ops = {op} if isinstance(op, str) else set(op)
            evs = [e for e in evs if e["op"] in ops]
        if path is not None:
            rel = _rel(self.mount, path)
            evs = [e for e in evs if e["path"] == rel]
        if tgid is not None:
            evs = [e for e in evs if e["tgid"] == tgid]
        if pid is not None:
            evs = [e for e in evs if e["pid"] == pid]
        return evs

    def writes(self, path=None, tgid=None, since=0):
        return self.events("write", path=path, tgid=tgid, since=since)

    def batches(self, path, tgid=None, since=0, gap_ns=100_000_000):
        """A writer's batches to path, as the filesystem saw them: the writes between one
        open of the file and the next (bufshim opens, writes until done and closes for each
        batch, doc/behaviour.md §3), or, for a writer that keeps the file open, writes less than gap_ns
        apart. Each batch is a dict: start_ns (its first write's start), end_ns (its last
        write's end), bytes (what its writes accepted), results (each write's result),
        writes (the events)."""
        out = []
        cur = None
        opened = True
        for e in self.events(("open", "create", "write"), path=path, tgid=tgid, since=since):
            if e["op"] != "write":
                opened = True
                continue
            if cur is None or opened or e["start_ns"] - cur["end_ns"] > gap_ns:
                cur = {"start_ns": e["start_ns"], "end_ns": e["end_ns"], "bytes": 0,
                       "results": [], "writes": []}
                out.append(cur)
            opened = False
            cur["end_ns"] = e["end_ns"]
            cur["results"].append(e["result"])
            cur["writes"].append(e)
            if e["result"] > 0:
                cur["bytes"] += e["result"]
        return out

    def wait_for(self, predicate, timeout=10.0, interval=0.01, what=None):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for "
                            f"{what or getattr(predicate, '__name__', 'a condition')}")
            time.sleep(interval)

    def wait_hung(self, n=1, timeout=10.0):
        return self.wait_for(lambda: self.hung() >= n, timeout, what=f"{n} hung call(s)")

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def _try_ctl(self, line, timeout=2.0):
        """A control line that may not get through (daemon dead or wedged)."""
        t = threading.Thread(target=lambda: self._swallow(self.ctl, line), daemon=True)
        t.start()
        t.join(timeout)

    @staticmethod
    def _swallow(fn, *args):
        try:
            fn(*args)
        except OSError:
            pass

    def unmount(self):
        if not self._mounted:
            return
        self._mounted = False
        if self.proc.poll() is None:
            self._try_ctl("clear")
        r = subprocess.run(["fusermount3", "-u", str(self.mount)], capture_output=True)
        if r.returncode != 0 and os.path.ismount(self.mount) or self.proc.poll() is not None:
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._killed = True
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True)
        self._stderr.close()

    def check_exit(self):
        """Fails when the daemon crashed (died of a signal it did not handle, or a
        sanitizer's exit code) or a sanitizer reported something. libfuse exits 8 when
        told to stop by SIGTERM/SIGINT: not a crash."""
        assert_no_sanitizer_report(self.stderr_text())
        if not self._killed:
            rc = self.proc.returncode
            assert rc is not None and rc >= 0 and rc not in SANITIZER_EXIT_CODES, (
                f"slowfs exited with {rc}: {self.stderr_text()}")


@pytest.fixture
def make_slowfs(tmp_path_factory):
    require_fuse()
    _require_binary()
    mounts = []

    def make(latency=None, page_cache=False, args=()):
        fs = SlowFS(tmp_path_factory.mktemp("slowfs"), latency=latency,
                    page_cache=page_cache, args=args)
        mounts.append(fs)
        return fs

    yield make
    for fs in mounts:
        fs.unmount()
    for fs in mounts:
        fs.check_exit()


@pytest.fixture
def slowfs(make_slowfs):
    return make_slowfs()
