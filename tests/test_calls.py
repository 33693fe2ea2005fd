"""The call table (src/shim/calls_i.h) accounts for every libc call that takes a descriptor or a
path, and raw syscall(2) forms behave as their libc forms under the shim.

The list of such libc calls is not written here: it is read off this machine's glibc headers
(every prototype with a parameter named like a descriptor or a path) and kept to the names
libc.so.6 exports. A call that glibc gains, or that the table forgets, fails the test until it is
classified: wrapped (diverted, queried, barrier, tracked) or PASS with its reason.
"""
import os
import re
import subprocess
import textwrap

import pytest

from conftest import SANITIZER
from shim_fixture import run_plain, run_shimmed
from test_exports import LIBC, dynamic_names, table_calls

HEADERS = """
fcntl.h unistd.h stdio.h stdlib.h sys/stat.h sys/statfs.h sys/statvfs.h sys/time.h sys/file.h
sys/xattr.h sys/mman.h sys/sendfile.h sys/uio.h sys/ioctl.h utime.h dirent.h spawn.h
sys/socket.h poll.h sys/epoll.h termios.h aio.h sys/inotify.h sys/fanotify.h ftw.h glob.h
sys/mount.h sys/vfs.h wchar.h sys/timerfd.h sys/eventfd.h sys/signalfd.h pty.h
""".split()

FD_PARAM = re.compile(r"^(const )?int (__fd|__fildes|__dirfd|__oldfd|__newfd|__fdin|__fdout|"
                      r"__in_fd|__out_fd|__fd_in|__fd_out|__infd|__outfd|__olddirfd|"
                      r"__newdirfd|__dfd|__fd1|__fd2)$")
PATH_PARAM = re.compile(r"^const char \*(__restrict )?(__file|__path|__filename|__name|__old|"
                        r"__new|__from|__to|__oldpath|__newpath|__dir|__pathname|__target|"
                        r"__linkpath|__path1|__path2|__file1|__file2)$")


def libc_fd_and_path_calls(tmp_path):
    src = tmp_path / "hdrs.c"
    src.write_text("#define _GNU_SOURCE\n" + "".join(f"#include <{h}>\n" for h in HEADERS))
    text = subprocess.run(["gcc", "-E", "-P", str(src)], capture_output=True, text=True,
                          check=True).stdout
    text = re.sub(r"\s+", " ", text)
    exported = dynamic_names(LIBC)
    found = {}
    for m in re.finditer(r"extern [^;{}]*?\b([A-Za-z_]\w*) \(([^()]*(?:\([^()]*\)[^()]*)*)\)"
                         r"[^;{}]*;", text):
        name, params = m.group(1), m.group(2)
        if name not in exported:
            continue
        for p in (p.strip() for p in params.split(",")):
            if FD_PARAM.match(p) or PATH_PARAM.match(p):
                found[name] = p
                break
    return found


def test_the_header_scan_finds_what_it_must(tmp_path):
    # The scan itself must work, or the next test would pass over an empty list.
    calls = libc_fd_and_path_calls(tmp_path)
    assert len(calls) > 150
    for name in ("write", "open", "fchmod", "utimensat", "setxattr", "posix_fallocate", "flock",
                 "ioctl", "futimes", "lchown", "copy_file_range" if "copy_file_range" in calls
                 else "sendfile"):
        assert name in calls, name


def test_every_libc_call_taking_a_descriptor_or_path_is_in_the_table(tmp_path):
    listed = {n for n, _ in table_calls()}
    missing = sorted(set(libc_fd_and_path_calls(tmp_path)) - listed)
    assert missing == [], "libc calls that take a descriptor or path but are not classified " \
                          "in src/shim/calls_i.h"


def test_table_names_are_libc_names_and_unique():
    names = [n for n, _ in table_calls()]
    assert len(names) == len(set(names))
    libc = dynamic_names(LIBC)
    assert sorted(set(names) - libc) == []


def test_table_classes_are_known():
    classes = {c for _, c in table_calls()}
    assert classes <= {"WRITE", "QUERY", "BARRIER", "FLUSH", "LOCK", "ALL", "TRACK", "SIGNAL",
                       "EXIT", "PASS"}


RAW_C = textwrap.dedent(r"""
    #define _GNU_SOURCE
    #include <fcntl.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/stat.h>
    #include <sys/syscall.h>
    #include <time.h>
    #include <unistd.h>

    /* raw PATH: writes 100 records with syscall(SYS_write), prints the size syscall(SYS_statx)
       and syscall(SYS_fstat) report, then sets the times with syscall(SYS_utimensat). */
    int main(int argc, char **argv)
    {
        (void)argc;
        int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd < 0) return 1;
        for (int i = 0; i < 100; i++)
            if (syscall(SYS_write, fd, "0123456789\n", 11) != 11) return 1;
        struct statx sx;
        if (syscall(SYS_statx, AT_FDCWD, argv[1], 0, STATX_SIZE, &sx) != 0) return 1;
        struct stat st;
        if (syscall(SYS_fstat, fd, &st) != 0) return 1;
        printf("statx %llu fstat %lld\n", (unsigned long long)sx.stx_size, (long long)st.st_size);
        struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
        if (syscall(SYS_utimensat, AT_FDCWD, argv[1], ts, 0) != 0) return 1;
        return 0;
    }
""")


@pytest.mark.skipif(SANITIZER == "thread", reason="an uninstrumented program (see conftest)")
def test_raw_syscalls_behave_as_their_libc_forms(tmp_path):
    exe = tmp_path / "raw"
    (tmp_path / "raw.c").write_text(RAW_C)
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(tmp_path / "raw.c")], check=True)
    results = {}
    for mode in ("plain", "shim"):
        d = tmp_path / mode
        d.mkdir()
        target = d / "a.log"
        if mode == "plain":
            p = run_plain([exe, target])
        else:
            stats = tmp_path / "stats.json"
            p = run_shimmed([exe, target], paths=[f"{d}/*.log"], interval="5", stats=stats)
            rec = [__import__("json").loads(l) for l in stats.read_text().splitlines()]
            ours = [r for r in rec if r["path"] == str(target)]
            # Diverted: 100 calls, one batch (the utimensat barrier).
            assert ours and ours[0]["records"] == 100 and ours[0]["batches"] == 1, rec
        st = os.stat(target)
        results[mode] = (p.stdout, st.st_size, st.st_mtime_ns)
    assert results["plain"] == results["shim"]
    assert results["plain"] == ("statx 1100 fstat 1100\n", 1100, 1000000000 * 10**9)
