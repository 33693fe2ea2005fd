"""Bytes follow their file through rename, unlink, replacement and symlink swaps (doc/behaviour.md §5)."""
import os
import subprocess
import time

from conftest import helper_path
from shim_fixture import assert_diverted, assert_same_files, read_stats, shim_env


def ops(*args):
    return [str(helper_path("shim_ops")), *args]


def test_write_then_rename_then_new_file(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "one\\n", "rename", "a.log", "b.log",
                "write", "1", "two\\n", "open", "2", "a.log", "a", "write", "2", "new\\n",
                "write", "1", "three\\n", "write", "2", "new2\\n"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=30)


def test_unlinked_file_keeps_its_bytes_and_a_new_one_is_separate(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "x\\n", "open", "2", "a.log", "r",
                "unlink", "a.log", "write", "1", "y\\n", "write", "1", "y2\\n",
                "open", "3", "a.log", "a", "write", "3", "fresh\\n", "write", "3", "fresh2\\n",
                "read", "2", "100", "write", "1", "z\\n",
                "read", "2", "100"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=30)


def _external_rotation(tmp_path, shimmed):
    """The program writes for ~1.5 s; meanwhile another process (not under the
    shim) renames the file away and creates a new one with the old name."""
    d = tmp_path / ("shim" if shimmed else "plain")
    d.mkdir()
    argv = ops("open", "1", "app.log", "a", "write", "1", "before\\n", "write", "1", "b2\\n",
               "sleep", "600", "write", "1", "during\\n", "sleep", "600", "write", "1", "after\\n")
    env = shim_env(paths=[f"{d}/*.log"], interval="0.2",
                   stats=tmp_path / "shim.stats") if shimmed else None
    p = subprocess.Popen([str(a) for a in argv], cwd=d, env=env)
    time.sleep(0.3)
    os.rename(d / "app.log", d / "app.log.1")
    (d / "app.log").write_bytes(b"")
    assert p.wait(timeout=30) == 0
    return d


def test_rotation_by_another_process(tmp_path):
    plain = _external_rotation(tmp_path, False)
    shim = _external_rotation(tmp_path, True)
    for name in ("app.log", "app.log.1"):
        assert (plain / name).read_bytes() == (shim / name).read_bytes(), name
    assert (shim / "app.log.1").read_bytes() == b"before\nb2\nduring\nafter\n"
    assert (shim / "app.log").read_bytes() == b""
    assert_diverted(read_stats(tmp_path / "shim.stats"), "rotation")


def test_symlink_swapped_under_the_program(tmp_path):
    # A matching name that is a symlink into another folder; the link is then
    # pointed at another file (as with a "current" link in /tmp). The bytes stay
    # with the file the program opened.
    def scenario(d, run):
        (d / "store").mkdir()
        (d / "logs").mkdir()
        os.symlink(d / "store" / "one.txt", d / "logs" / "current.log")
        run(ops("open", "1", "logs/current.log", "a", "write", "1", "first\\n",
                "symlink", f"{d}/store/two.txt", "logs/tmp.log",
                "rename", "logs/tmp.log", "logs/current.log",
                "write", "1", "second\\n", "open", "2", "logs/current.log", "a",
                "write", "2", "other\\n", "write", "1", "third\\n"))
        # Symlinks differ in their absolute targets: compare the link text relative to d.
        link = d / "logs" / "current.log"
        target = os.readlink(link)
        link.unlink()
        (d / "logs" / "current.target").write_text(os.path.relpath(target, d))
    assert_same_files(scenario, tmp_path, paths=["logs/*.log"], interval=30)


def test_renamed_file_written_by_the_batch_not_the_new_name(tmp_path):
    # No barrier in the program at all: the rename happens in the test process
    # while bytes are queued, so the batch itself must notice the path now
    # names another file and use the shim's own descriptor.
    d = tmp_path
    argv = ops("open", "1", "a.log", "a", "write", "1", "queued\\n", "sleep", "3000",
               "write", "1", "later\\n")
    p = subprocess.Popen([str(a) for a in argv], cwd=d,
                         env=shim_env(paths=[f"{d}/*.log"], interval="2"))
    time.sleep(0.3)
    assert (d / "a.log").read_bytes() == b""  # still queued
    os.rename(d / "a.log", d / "old.log")
    (d / "a.log").write_bytes(b"")
    assert p.wait(timeout=30) == 0
    assert (d / "old.log").read_bytes() == b"queued\nlater\n"
    assert (d / "a.log").read_bytes() == b""


def test_file_renamed_while_closed_is_written_by_its_new_name(tmp_path):
    from shim_fixture import run_shimmed
    r = run_shimmed(ops("open", "1", "a.log", "a", "write", "1", "x\\n", "fsync", "1",
                        "close", "1", "rename", "a.log", "b.log", "open", "2", "b.log", "a",
                        "write", "2", "y\\n", "open", "3", "a.log", "a", "write", "3", "new\\n"),
                    paths=[f"{tmp_path}/*.log"], interval=30, debug=1, cwd=tmp_path)
    assert (tmp_path / "b.log").read_bytes() == b"x\ny\n"
    assert (tmp_path / "a.log").read_bytes() == b"new\n"
    batches = [line for line in r.stderr.splitlines() if line.startswith("bufshim: batch ")]
    assert f"bufshim: batch {tmp_path}/b.log: 2 of 2 bytes via path" in batches, r.stderr


def test_batches_land_when_the_program_used_up_its_descriptors(tmp_path):
    # The path cannot be opened (EMFILE): the batch goes through the shim's own descriptor.
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "before\\n", "fillfds",
                "write", "1", "after\\n", "many", "1", "100", "rec", "sleep", "400",
                "write", "1", "last\\n", "closerange", "128"), preexec_fn=limit)
    # The closerange at the end frees descriptors for the BUFSHIM_STATS report at
    # exit (the proof of diversion); the batches of the sleep ran with none free.
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval="0.1")
