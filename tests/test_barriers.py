"""Barriers (doc/behaviour.md §4): calls that need the queued bytes flush first; queries do not flush."""
import textwrap

from conftest import helper_path
from shim_fixture import assert_same_files, run_shimmed

LONG = 30  # an interval no test waits for: whatever reaches the disk early came from a barrier


def ops(*args):
    return [str(helper_path("shim_ops")), *args]


def shimmed_ops(tmp_path, *args, interval=LONG, **kw):
    return run_shimmed(ops(*args), paths=[f"{tmp_path}/*.log"], interval=interval,
                       cwd=tmp_path, **kw)


def test_without_a_barrier_nothing_is_on_disk(tmp_path):
    # The control for the tests below: the bytes wait for the interval.
    r = shimmed_ops(tmp_path, "open", "1", "a.log", "a", "write", "1", "data\\n",
                    "rawcat", "a.log")
    assert r.stdout == "rawcat []\n"


def test_fsync_returns_with_the_bytes_on_disk(tmp_path):
    r = shimmed_ops(tmp_path, "open", "1", "a.log", "a", "write", "1", "data\\n",
                    "rawcat", "a.log", "fsync", "1",
                    "rawcat", "a.log", "write", "1", "more\\n", "rawcat", "a.log", "fdatasync", "1",
                    "rawcat", "a.log")
    # Each time: nothing on disk before the barrier (diverted), the bytes after it.
    assert r.stdout == ("rawcat []\nrawcat [data\n]\nrawcat [data\n]\n"
                        "rawcat [data\nmore\n]\n")


def test_sync_and_syncfs_flush_every_target(tmp_path):
    r = shimmed_ops(tmp_path, "open", "1", "a.log", "a", "open", "2", "b.log", "a",
                    "write", "1", "a\\n", "write", "2", "b\\n", "rawcat", "a.log", "rawcat", "b.log",
                    "sync", "rawcat", "a.log", "rawcat", "b.log", "write", "2", "c\\n",
                    "rawcat", "b.log", "syncfs", "1", "rawcat", "b.log")
    assert r.stdout == ("rawcat []\nrawcat []\nrawcat [a\n]\nrawcat [b\n]\nrawcat [b\n]\n"
                        "rawcat [b\nc\n]\n")


def test_queries_answer_without_flushing(tmp_path):
    r = shimmed_ops(tmp_path, "open", "1", "a.log", "a", "write", "1", "12345",
                    "tell", "1", "end", "1", "size", "1", "stat", "a.log", "lstat", "a.log",
                    "statx", "a.log", "rawsize", "a.log")
    assert r.stdout == ("tell 5\nend 5\nsize 5\nstat 5\nlstat 5\nstatx 5\nrawsize 0\n")


def test_read_through_another_descriptor_sees_the_bytes(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "ab", "write", "1", "c\\n",
                "open", "2", "a.log", "r",
                "read", "2", "100", "write", "1", "def\\n", "read", "2", "100",
                "open", "3", "a.log", "ra", "write", "3", "ghi\\n", "read", "3", "100",
                "seek", "3", "0", "read", "3", "6", "write", "3", "jkl\\n", "tell", "3"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)


def test_reopen_with_o_trunc_flushes_first(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "old bytes\\n",
                "open", "2", "a.log", "w", "write", "2", "new\\n", "write", "1", "appended\\n",
                "creat", "3", "b.log", "write", "3", "b1\\n", "creat", "4", "b.log",
                "write", "4", "b2\\n", "write", "3", "b3\\n"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)


def test_truncate_and_ftruncate(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "a", "write", "1", "abcdef", "ftruncate", "1", "2",
                "write", "1", "XY", "tell", "1", "truncate", "a.log", "3", "write", "1", "!",
                "size", "1", "open", "2", "b.log", "w", "write", "2", "01234",
                "write", "2", "56789", "ftruncate", "2", "4", "write", "2", "tail", "tell", "2"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)


def test_seek_that_moves_is_a_barrier(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "rw", "write", "1", "hello ", "write", "1", "world",
                "seek", "1", "6",
                "write", "1", "W", "tell", "1", "end", "1", "write", "1", "!\\n", "tell", "1",
                "seek", "1", "12", "tell", "1", "write", "1", "tail\\n"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)


def test_positional_writes_pass_through_after_a_flush(tmp_path):
    def scenario(d, run):
        run(ops("open", "1", "a.log", "w", "write", "1", "aa", "write", "1", "aa",
                "pwrite", "1", "1", "X",
                "write", "1", "bb", "tell", "1", "open", "2", "b.log", "a", "write", "2", "1234",
                "pwrite", "2", "0", "Z", "write", "2", "5", "size", "2"))
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)


def test_rename_unlink_link_flush_first(tmp_path):
    r = shimmed_ops(tmp_path, "open", "1", "a.log", "a", "write", "1", "one\\n", "rawcat", "a.log",
                    "link", "a.log", "hard.log", "rawcat", "hard.log",
                    "write", "1", "two\\n", "rawcat", "a.log", "rename", "a.log", "b.log",
                    "rawcat", "b.log", "write", "1", "three\\n", "rawcat", "b.log",
                    "unlink", "hard.log", "rawcat", "b.log")
    # Before each barrier the last write is not on disk yet (diverted); after it, it is.
    assert r.stdout == ("rawcat []\nrawcat [one\n]\nrawcat [one\n]\nrawcat [one\ntwo\n]\n"
                        "rawcat [one\ntwo\n]\nrawcat [one\ntwo\nthree\n]\n")


PY_KERNEL_COPIES = textwrap.dedent("""
    import mmap, os, sys
    fd = os.open("a.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"queued ")
    os.write(fd, b"twice\\n")
    src = os.open("src.txt", os.O_RDONLY)
    os.sendfile(fd, src, 0, 4)
    os.write(fd, b"\\n")
    os.copy_file_range(src, fd, 3, 4)
    os.write(fd, b"\\n")
    r = os.open("a.log", os.O_RDONLY)
    m = mmap.mmap(r, 0, prot=mmap.PROT_READ)
    sys.stdout.write(m[:].decode())
    m.close()
    os.write(fd, b"end\\n")
""")


def test_sendfile_copy_file_range_mmap(tmp_path):
    def scenario(d, run):
        (d / "src.txt").write_bytes(b"0123456789")
        run(["python3", "-c", PY_KERNEL_COPIES])
    assert_same_files(scenario, tmp_path, paths=["*.log"], interval=LONG)
