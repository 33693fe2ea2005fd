"""write and writev on diverted descriptors: same bytes, returned lengths, errno untouched (doc/behaviour.md §2, §5)."""
import os

from conftest import helper_path
from shim_fixture import assert_diverted, assert_same_files, read_stats, run_shimmed


def ops(*args):
    return [helper_path("shim_ops"), *args]


def test_write_alone(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "first\\n", "write", "1", "second\\n",
                "many", "1", "500", "record", "write", "1", "no newline at end"))
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_writev_alone(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "writev", "1", "one|two|three\\n",
                "writev", "1", "x|\\n", "write", "1", "between\\n",
                "writev", "1", "a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p\\n"))
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_large_writes_and_writev_beyond_the_stack_buffer(tmp_path):
    big_piece = "x" * 3000

    def scenario(d, run):
        run(ops("open", "1", "a.log", "w", "big", "1", "1048576", "A", "write", "1", "\\n",
                "writev", "1", "|".join([big_piece] * 5), "big", "1", "70000", "B"))
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_write_returns_length_and_keeps_errno(tmp_path):
    r = run_shimmed(ops("open", "1", "a.log", "a", "ewrite", "1", "hello\\n", "rawsize", "a.log"),
                    paths=[f"{tmp_path}/*.log"], interval=30, cwd=tmp_path)
    # Diverted: the length comes back, errno is as the program left it, nothing on disk yet.
    assert r.stdout == "ewrite 6 errno kept\nrawsize 0\n"
    assert (tmp_path / "a.log").read_bytes() == b"hello\n"  # the final flush at exit


def test_non_matching_file_is_written_directly(tmp_path):
    r = run_shimmed(ops("open", "1", "a.txt", "a", "write", "1", "hello\\n", "rawsize", "a.txt"),
                    paths=[f"{tmp_path}/*.log"], interval=30, cwd=tmp_path)
    assert r.stdout == "rawsize 6\n"


def test_bytes_stay_in_memory_until_the_interval(tmp_path):
    # The control for every "rawsize 0" assertion: without the shim the bytes are on disk.
    r = run_shimmed(ops("open", "1", "a.log", "a", "write", "1", "abc", "rawsize", "a.log",
                        "sleep", "2500", "rawsize", "a.log"),
                    paths=[f"{tmp_path}/*.log"], interval="1", cwd=tmp_path)
    assert r.stdout == "rawsize 0\nrawsize 3\n"


def test_wrappers_called_before_the_shim_initialised(tmp_path):
    # A linked library's constructor opens and writes before the shim's
    # constructor ran: those calls pass through, and the descriptor is then
    # found by the start-up scan and diverted like an inherited one.
    def scenario(d, run):
        run([helper_path("shim_early")], env={"SHIM_EARLY_FILE": d / "early.log"})
    assert_same_files(scenario, tmp_path, paths=["*.log"])
    r = run_shimmed([helper_path("shim_early")], paths=[f"{tmp_path}/*.log"], debug=1,
                    env={"SHIM_EARLY_FILE": tmp_path / "again.log"})
    assert "diverted" in r.stderr


def test_write_from_a_signal_handler_never_deadlocks(tmp_path):
    # A handler interrupting a diverted write writes to the same descriptor: it
    # passes through instead of waiting for the lock its own thread holds. (A
    # handler's append may allocate, which ThreadSanitizer reports as
    # signal-unsafe: a known limit, see the shim's write path, not this test's.)
    r = run_shimmed(ops("open", "1", "a.log", "a", "sigwrite", "1", "200000"),
                    paths=[f"{tmp_path}/*.log"], interval="0.05", cwd=tmp_path, timeout=120,
                    stats=tmp_path / "shim.stats", env={"TSAN_OPTIONS": os.environ.get("TSAN_OPTIONS", "") +
                         ":report_signal_unsafe=0"})
    sigs = int(r.stdout.split()[1])
    lines = (tmp_path / "a.log").read_text().splitlines()
    assert [x for x in lines if x != "sig"] == [f"main {i}" for i in range(200000)]
    assert lines.count("sig") == sigs and sigs > 0
    assert_diverted(read_stats(tmp_path / "shim.stats"), "sigwrite")
