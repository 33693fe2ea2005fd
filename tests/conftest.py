"""Shared pytest fixtures: where the build is, how to run a program under the shim.

Each concern adds its own fixtures in a module listed in pytest_plugins below, so
that separate work (slowfs, shim, lifecycle) never edits the same lines.
"""
import os
import signal
import pathlib
import subprocess
import time

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("BUFSHIM_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parent.parent))
BUILD_DIR = pathlib.Path(os.environ.get("BUFSHIM_BUILD_DIR", SOURCE_DIR / "build"))
# Set by the meson test setups: "address", "thread", "valgrind" or unset.
SANITIZER = os.environ.get("BUFSHIM_TEST_SANITIZER", "")
if SANITIZER == "address":
    # The behaviour tests preload the instrumented shim into programs that leak
    # by design (bash, python3) and run helpers under strace or without free
    # descriptors, where LeakSanitizer cannot work at all. Leaks are checked by
    # the C unit tests (meson's asan setup) and by valgrind instead; ASan's
    # memory-error checks and UBSan stay on everywhere.
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"

# The TSan run (tools/test's third) covers the tests that exercise the engine's
# and the shim's own concurrency: writer threads, appending threads, fork from
# threaded programs, signals, hung and failing batches. The other behaviour tests
# drive uninstrumented programs (bash, python3, perl, coreutils, the launcher
# script, meson install) whose every instruction TSan would slow down without
# checking anything of ours; they run in the plain and ASan runs. Without this
# selection the TSan run alone takes about 12 minutes on 2 cores.
TSAN_MODULES = {
    "test_engine", "test_engine_slowfs", "test_public_api", "test_examples", "test_write",
    "test_fork", "test_signals", "test_lifecycle", "test_hostile", "test_faults",
    "test_stats", "test_pipes", "test_barriers", "test_stdio", "test_cxx", "test_exports",
    "test_crashsafe", "test_open_elision",
}
# Single tests of other modules that exercise the shim's own threads.
TSAN_EXTRA_TESTS = {
    # a table scan against another thread's close and reopen (descriptors.c)
    "test_a_table_scan_never_seeks_a_number_another_thread_closed_and_reused",
}
TSAN_SKIP_TESTS = {
    # 100 exec'd /bin/sh children, each under the TSan runtime: 140 s.
    "test_fork_and_exec_100_children_with_8_threads_on_3_targets",
}


def pytest_collection_modifyitems(config, items):
    if SANITIZER != "thread":
        return
    skip = pytest.mark.skip(
        reason="not in the TSan selection (tests/conftest.py: it drives uninstrumented "
               "programs or only single-threaded paths; the plain and ASan runs cover it)")
    for item in items:
        if item.originalname in TSAN_EXTRA_TESTS:
            continue
        if item.module.__name__ not in TSAN_MODULES or item.originalname in TSAN_SKIP_TESTS:
            item.add_marker(skip)


pytest_plugins = [p for p in ("slowfs_fixture", "shim_fixture")
                  if (pathlib.Path(__file__).parent / f"{p}.py").exists()]


def helper_path(name):
    """Path of a compiled test helper (tests/helpers/NAME.c)."""
    p = BUILD_DIR / "tests" / "helpers" / name
    if not p.exists():
        pytest.fail(f"test helper {p} is not built")
    return p


def wait_for(cond, timeout, what):
    """Polls cond() every 50 ms until it is truthy and returns its value; fails the test
    after timeout seconds, naming what did not happen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail(f"not within {timeout} s: {what}")


def sanitizer_runtime():
    """The sanitizer runtime that must come first in LD_PRELOAD when the shim
    itself is instrumented, or None."""
    libname = {"address": "libasan.so", "thread": "libtsan.so"}.get(SANITIZER)
    if not libname:
        return None
    out = subprocess.run(["gcc", "-print-file-name=" + libname],
                         capture_output=True, text=True).stdout.strip()
    return out if out and os.path.isabs(out) else None


SANITIZER_REPORT_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                            "runtime error:", "WARNING: ThreadSanitizer",
                            "ERROR: ThreadSanitizer")


def assert_no_sanitizer_report(stderr_text):
    """Fails the test when a helper's stderr carries a sanitizer report."""
    for marker in SANITIZER_REPORT_MARKERS:
        assert marker not in stderr_text, f"sanitizer report in stderr:\n{stderr_text}"


@pytest.fixture
def build_dir():
    return BUILD_DIR


def _children():
    """PIDs of this pytest process's live children."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(d))
    return out


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """A test that fails before it stops a program it started (a writer in a loop, say,
    when run against the inert library) must not leave it running for the rest of the
    suite: whatever child a test started and left alive is killed when it ends."""
    before = _children()
    yield
    for pid in _children() - before:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
