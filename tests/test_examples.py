"""examples/: the library API from C, built by meson against libbufshim.so and run here."""
import collections
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, SOURCE_DIR, assert_no_sanitizer_report

EXAMPLES = SOURCE_DIR / "examples"
PYTHON = "/usr/bin/python3"


def example(name):
    p = BUILD_DIR / "examples" / name
    if not p.exists():
        pytest.fail(f"{p} is not built (is subdir('examples') in meson.build?)")
    return p


def run(args, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=kw.pop("timeout", 120), **kw)
    assert_no_sanitizer_report(p.stderr)
    return p


def check_records(data, pattern, threads, per_thread):
    """Every record arrived exactly once, whole, and each thread's in order."""
    lines = data.split(b"\n")
    assert lines[-1] == b"", "the stream does not end with a whole record"
    seen = collections.defaultdict(list)
    for line in lines[:-1]:
        m = re.fullmatch(pattern, line)
        assert m, f"torn or foreign record: {line[:100]!r}"
        seen[int(m.group(1))].append(int(m.group(2)))
    assert sorted(seen) == list(range(threads))
    for t, seq in seen.items():
        assert seq == list(range(per_thread)), f"thread {t}: lost, doubled or reordered"


def test_examples_use_only_the_public_header():
    for src in EXAMPLES.glob("*.c"):
        includes = re.findall(r'#include\s*[<"]([^>"]+)[>"]', src.read_text())
        assert "bufshim.h" in includes, src
        for inc in includes:
            assert "_i.h" not in inc and "/" not in inc.replace("sys/", "").replace(
                "arpa/", "").replace("netinet/", ""), (src, inc)
    for name in ("logger", "tcp_sink"):
        d = subprocess.run(["readelf", "-d", str(example(name))], capture_output=True,
                           text=True, check=True).stdout
        assert re.search(r"\(NEEDED\).*\[libbufshim\.so\.\d+\]", d), \
            f"{name} does not link libbufshim.so (by its versioned SONAME)"


def test_logger_from_several_threads(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"kept\n")
    p = run([example("logger"), log, 8, 5000, 0.05])
    assert p.returncode == 0, p.stderr
    data = log.read_bytes()
    assert data.startswith(b"kept\n")
    check_records(data[5:], rb"thread (\d+) line (\d+): request served at \d+\.\d{9}", 8, 5000)


def test_logger_batches_its_writes(tmp_path):
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    log = tmp_path / "app.log"
    trace = tmp_path / "trace"
    # LeakSanitizer cannot run under ptrace; the other logger test checks for leaks.
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    p = run(["strace", "-f", "-qq", "-e", "trace=openat,write", "-o", trace,
             example("logger"), log, 4, 20000, 0.2], env=env)
    assert p.returncode == 0, p.stderr
    opens = writes = 0
    fds = set()
    for line in trace.read_text().splitlines():
        m = re.search(r'openat\(AT_FDCWD, "([^"]+)".*= (\d+)$', line)
        if m and m.group(1) == str(log):
            opens += 1
            fds.add(m.group(2))
        m = re.search(r"write\((\d+),", line)
        if m and m.group(1) in fds:
            writes += 1
    assert len(log.read_bytes().split(b"\n")) == 80001
    assert 1 <= opens <= 30, f"{opens} opens for 80000 lines"
    assert writes <= 3 * opens


@pytest.fixture
def collector(tmp_path):
    """Starts examples/tcp_collector.py; yields (port, output path, process)."""
    out = tmp_path / "collected"
    proc = subprocess.Popen([PYTHON, str(EXAMPLES / "tcp_collector.py"), str(out)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield port, out, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("threads, records, interval, max_chunk", [
    (4, 20000, 0.05, 0),    # whole batches
    (3, 3000, 0.01, 1000),  # the sink takes 1000 bytes a call: the rest is offered again
])
def test_tcp_sink_delivers_every_byte_exactly_once(collector, threads, records, interval,
                                                   max_chunk):
    port, out, proc = collector
    p = run([example("tcp_sink"), port, threads, records, interval, max_chunk])
    assert p.returncode == 0, p.stderr
    summary, _ = proc.communicate(timeout=60)
    data = out.read_bytes()
    assert f"received {len(data)} bytes" in summary
    check_records(data, rb"t(\d+) r(\d+) \d*", threads, records)
    expected = sum(len(f"t{t} r{i} {i * t:0{i % 40}d}\n") if i % 40 else
                   len(f"t{t} r{i} {i * t}\n")
                   for t in range(threads) for i in range(records))
    assert len(data) == expected


def test_tcp_sink_reports_a_missing_collector():
    # A port nobody listens on: connect fails, the example says so and exits 1.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = run([example("tcp_sink"), port, 1, 10])
    assert p.returncode == 1
    assert "connect" in p.stderr
