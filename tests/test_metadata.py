"""Metadata set after writing comes out as without the shim (doc/behaviour.md §8 "Metadata", §4
default-barrier).

Each scenario runs twice, in ``plain/`` without the shim and in ``shim/`` under it with an
interval no test waits for (whatever the later batch does to the file shows). Then a plain
process (this one) compares, file by file: mode, size, owner, extended attributes, the
bytes, st_blocks where asked, and atime/mtime to the nanosecond where the program set them;
the program's own view right after each call (its stdout) must be the same too. Every
shimmed run must also have diverted (tests/diversion.py).
"""
import os
import pathlib
import pwd
import shutil
import tempfile

import pytest

from conftest import helper_path
from diversion import assert_diverted
from shim_fixture import run_plain, run_shimmed

LONG = 30  # never waited for: without barriers the only batch is the one at exit
PY = "/usr/bin/python3"
A_NS = 1000000000 * 10**9 + 123456789  # the times meta_ops sets
M_NS = 1100000000 * 10**9 + 987654321
TARGET = "f.log"


def snapshot(d, times, blocks):
    """What a plain process sees of every file under d. Stat and xattrs first: reading
    the bytes afterwards may move atime (relatime: atime older than mtime)."""
    out = {}
    for p in sorted(pathlib.Path(d).rglob("*")):
        if not p.is_file():
            continue
        st = os.lstat(p)
        rec = {"mode": oct(st.st_mode), "size": st.st_size, "uid": st.st_uid, "gid": st.st_gid,
               "xattrs": {n: os.getxattr(p, n, follow_symlinks=False)
                          for n in sorted(os.listxattr(p, follow_symlinks=False))}}
        if times:
            rec["atime_ns"], rec["mtime_ns"] = st.st_atime_ns, st.st_mtime_ns
        if blocks:
            rec["blocks"] = st.st_blocks
        rec["bytes"] = p.read_bytes()
        out[str(p.relative_to(d))] = rec
    return out


def differential(root, scenario, times=False, blocks=False, user=None):
    """Runs scenario(workdir, run) in root/plain and root/shim; compares the snapshots and
    the programs' stdout; checks the shimmed run diverted TARGET. user: run every program
    as that user through setpriv (the folders are given to it)."""
    views = {}
    for mode in ("plain", "shim"):
        d = pathlib.Path(root) / mode
        d.mkdir()
        stats = pathlib.Path(root) / f"{mode}.stats"
        if user:
            pw = pwd.getpwnam(user)
            os.chown(d, pw.pw_uid, pw.pw_gid)

        def run(argv, mode=mode, d=d, stats=stats, **kw):
            kw.setdefault("cwd", d)
            if user:
                argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups",
                        *argv]
            if mode == "plain":
                return run_plain(argv, **kw)
            return run_shimmed(argv, paths=[f"{d}/*.log"], interval=LONG, stats=stats, **kw)

        results = scenario(d, run)
        results = results if isinstance(results, (list, tuple)) else [results]
        views[mode] = (snapshot(d, times, blocks), [r.stdout for r in results])
    (plain_files, plain_out), (shim_files, shim_out) = views["plain"], views["shim"]
    assert plain_files, "the scenario made no file"
    diff = [(f, k, plain_files.get(f, {}).get(k), shim_files.get(f, {}).get(k))
            for f in sorted(set(plain_files) | set(shim_files))
            for k in sorted(set(plain_files.get(f, {})) | set(shim_files.get(f, {})))
            if plain_files.get(f, {}).get(k) != shim_files.get(f, {}).get(k)]
    assert not diff, "with the shim differs from without (file, field, plain, shim):\n" + \
        "\n".join(f"{f} {k}: {_short(a)} != {_short(b)}" for f, k, a, b in diff)
    assert shim_out == plain_out
    assert_diverted(pathlib.Path(root) / "shim.stats", pathlib.Path(root) / "shim" / TARGET)
    return plain_files, plain_out


def _short(v):
    if isinstance(v, bytes) and len(v) > 80:
        return f"{len(v)} bytes {v[:40]!r}...{v[-40:]!r}"
    return repr(v)


def meta_ops(*args):
    return [str(helper_path("meta_ops")), TARGET, *args]


# ---------------------------------------------------------------- times set after writing

TIME_CALLS = ["utimensat", "futimens", "utimes", "futimes", "lutimes", "futimesat", "utime",
              "sys_utimensat", "sys_utimensat_fd"]


def expected_times(call):
    if call == "utime":
        return A_NS // 10**9 * 10**9, M_NS // 10**9 * 10**9
    if call in ("utimes", "futimes", "lutimes", "futimesat"):
        return A_NS // 1000 * 1000, M_NS // 1000 * 1000
    return A_NS, M_NS


@pytest.mark.parametrize("call", TIME_CALLS)
def test_c_time_setter_after_writes(tmp_path, call):
    files, out = differential(tmp_path, lambda d, run: run(meta_ops(
        "rec", "5", "line", call, "times", "fstat")), times=True)
    a, m = expected_times(call)
    assert (files[TARGET]["atime_ns"], files[TARGET]["mtime_ns"]) == (a, m)
    assert out[0].splitlines()[0] == f"times atime={a // 10**9}.{a % 10**9:09d} " \
                                     f"mtime={m // 10**9}.{m % 10**9:09d}"


def test_python_os_utime_after_a_closed_write(tmp_path):
    # The first reproduction of the bug this file guards against: open().write() (closed at once), then os.utime.
    code = ("import os\n"
            "for i in range(5):\n"
            "    open('f.log', 'a').write(f'line {i}\\n')\n"
            f"os.utime('f.log', ns=({A_NS}, {M_NS}))\n"
            "st = os.stat('f.log')\n"
            "print(st.st_atime_ns, st.st_mtime_ns, st.st_size)\n")
    files, out = differential(tmp_path, lambda d, run: run([PY, "-c", code]), times=True)
    assert (files[TARGET]["atime_ns"], files[TARGET]["mtime_ns"]) == (A_NS, M_NS)
    assert out == [f"{A_NS} {M_NS} 35\n"]


def test_python_os_utime_on_an_open_descriptor(tmp_path):
    code = ("import os\n"
            "f = open('f.log', 'a', buffering=1)\n"
            "for i in range(5):\n"
            "    f.write(f'line {i}\\n')\n"
            f"os.utime(f.fileno(), ns=({A_NS}, {M_NS}))\n"
            "st = os.fstat(f.fileno())\n"
            "print(st.st_atime_ns, st.st_mtime_ns, st.st_size)\n"
            "f.close()\n")
    files, out = differential(tmp_path, lambda d, run: run([PY, "-c", code]), times=True)
    assert files[TARGET]["mtime_ns"] == M_NS
    assert out == [f"{A_NS} {M_NS} 35\n"]


def test_perl_utime_after_writes(tmp_path):
    code = ("use IO::Handle; open(my $f, '>>', 'f.log') or die; $f->autoflush(1);\n"
            "print $f \"line $_\\n\" for 1..5;\n"
            "utime(1000000000, 1100000000, 'f.log') or die;\n"
            "my @s = stat('f.log'); print \"$s[8] $s[9] $s[7]\\n\"; close $f;\n")
    files, out = differential(tmp_path, lambda d, run: run(["perl", "-e", code]), times=True)
    assert (files[TARGET]["atime_ns"], files[TARGET]["mtime_ns"]) == \
        (1000000000 * 10**9, 1100000000 * 10**9)
    assert out == ["1000000000 1100000000 35\n"]


def test_touch_d_after_writes(tmp_path):
    script = ("for i in 1 2 3 4 5; do echo \"line $i\" >> f.log; done\n"
              "touch -d @1000000000.123456789 f.log\n"
              "stat -c '%x %y %s' f.log\n"
              "exit 0\n")  # a builtin last: bash would exec a last external command
    files, _ = differential(tmp_path, lambda d, run: run(
        ["bash", "-c", script], env={"TZ": "UTC"}), times=True)
    assert files[TARGET]["mtime_ns"] == A_NS


# ---------------------------------------------------------------- mode bits

def nobody_root():
    """A folder a non-root user may write in (pytest's tmp_path is root's, mode 0700)."""
    return tempfile.mkdtemp(prefix="bufshim-meta-", dir="/tmp")


@pytest.mark.parametrize("more", [False, True], ids=["then-exit", "then-more-writes"])
@pytest.mark.parametrize("call", ["fchmod", "chmod"])
@pytest.mark.parametrize("mode", ["4755", "2755"])
@pytest.mark.parametrize("user", ["root", "nobody"])
def test_setuid_setgid_after_writes(tmp_path, user, mode, call, more):
    # Without the shim: as root the bits stay; as nobody a write after the chmod strips
    # them (no CAP_FSETID), a chmod after the last write keeps them. The shim's later
    # batch must not strip what the plain run keeps (nor keep what it strips).
    # The program's own stat right after the chmod is compared; none after its later
    # writes: the mode the kernel strips at a write is not something the shim answers
    # virtually (only sizes are), and the buffered write has not happened yet.
    tail = ["rec", "3", "after"] if more else ["fstat"]
    args = meta_ops("rec", "5", "before", call, mode, "stat", *tail)
    if user == "root":
        differential(tmp_path, lambda d, run: run(args))
        return
    root = nobody_root()
    try:
        pw = pwd.getpwnam("nobody")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        files, _ = differential(root, lambda d, run: run(args), user="nobody")
        m = int(files[TARGET]["mode"], 8)
        if not more:
            assert m & 0o7777 == int(mode, 8)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- extended attributes

CAP_BLOB = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")


@pytest.mark.parametrize("more", [False, True], ids=["then-exit", "then-more-writes"])
@pytest.mark.parametrize("call", ["setxattr", "fsetxattr"])
def test_user_xattr_after_writes(tmp_path, call, more):
    tail = ["rec", "3", "after"] if more else []
    files, _ = differential(tmp_path, lambda d, run: run(meta_ops(
        "rec", "5", "before", call, "user.x", "value", *tail, "fstat")))
    assert files[TARGET]["xattrs"] == {"user.x": b"value"}


@pytest.mark.parametrize("more", [False, True], ids=["then-exit", "then-more-writes"])
def test_security_capability_after_writes(tmp_path, more):
    # A write removes security.capability (even as root): after the last write it stays.
    tail = ["rec", "3", "after"] if more else []
    files, _ = differential(tmp_path, lambda d, run: run(meta_ops(
        "rec", "5", "before", "setcap", *tail, "fstat")))
    caps = files[TARGET]["xattrs"].get("security.capability")
    assert caps == (None if more else CAP_BLOB)


def test_python_setxattr_capability_after_writes(tmp_path):
    code = ("import os\n"
            "f = open('f.log', 'a', buffering=1)\n"
            "for i in range(5):\n"
            "    f.write(f'line {i}\\n')\n"
            f"os.setxattr('f.log', 'security.capability', bytes.fromhex('{CAP_BLOB.hex()}'))\n"
            "os.setxattr(f.fileno(), 'user.x', b'1')\n"
            "print(sorted(os.listxattr('f.log')))\n")
    files, out = differential(tmp_path, lambda d, run: run([PY, "-c", code]))
    assert files[TARGET]["xattrs"] == {"security.capability": CAP_BLOB, "user.x": b"1"}


def test_setcap_and_setfattr_programs_after_writes(tmp_path):
    if shutil.which("setcap") is None or shutil.which("setfattr") is None:
        pytest.skip("setcap (libcap2-bin) or setfattr (attr) is not installed")
    script = ("for i in 1 2 3 4 5; do echo \"line $i\" >> f.log; done\n"
              "setfattr -n user.x -v 1 f.log\n"
              "setcap cap_net_bind_service=ep f.log\n"
              "getcap f.log\n"
              "exit 0\n")
    files, _ = differential(tmp_path, lambda d, run: run(["bash", "-c", script]))
    assert files[TARGET]["xattrs"]["security.capability"] == CAP_BLOB


# ---------------------------------------------------------------- owner

@pytest.mark.parametrize("call", ["fchown", "chown"])
def test_chown_between_writes(tmp_path, call):
    files, _ = differential(tmp_path, lambda d, run: run(meta_ops(
        "rec", "5", "before", "fchmod", "4755", call, "65534", "65534", "stat",
        "rec", "3", "after", "fstat")))
    assert (files[TARGET]["uid"], files[TARGET]["gid"]) == (65534, 65534)


# ---------------------------------------------------------------- size

MIB = 1 << 20


def test_posix_fallocate_between_writes(tmp_path):
    # The reproduction of the bug this case guards against: an offset-based appending stream ("w"), 100 B,
    # posix_fallocate(fd, 0, 1 MiB), 100 B: 1 MiB with both records at the front.
    files, out = differential(tmp_path, lambda d, run: run(meta_ops(
        "reopen", "w", "bytes", "50", "a", "bytes", "50", "b",
        "posix_fallocate", "0", str(MIB), "fstat", "bytes", "50", "c", "bytes", "50", "d",
        "fstat", "sys_fstat", "stat")))
    data = files[TARGET]["bytes"]
    assert len(data) == MIB
    assert data[:200] == b"a" * 50 + b"b" * 50 + b"c" * 50 + b"d" * 50
    assert data[200:] == bytes(MIB - 200)


def test_posix_fallocate_on_an_append_descriptor(tmp_path):
    differential(tmp_path, lambda d, run: run(meta_ops(
        "bytes", "50", "a", "bytes", "50", "b", "posix_fallocate", "0", str(MIB), "fstat",
        "bytes", "50", "c", "bytes", "50", "d", "fstat")))


@pytest.mark.parametrize("reopen", ["a", "w"])
def test_fallocate_keep_size_between_writes(tmp_path, reopen):
    files, _ = differential(tmp_path, lambda d, run: run(meta_ops(
        "reopen", reopen, "bytes", "50", "a", "bytes", "50", "b",
        "fallocate_keep", "0", str(MIB), "fstat", "bytes", "50", "c", "bytes", "50", "d",
        "fstat")), blocks=True)
    assert files[TARGET]["size"] == 200


@pytest.mark.parametrize("reopen,length", [("a", "5"), ("w", "5"), ("w", "4096")])
def test_ftruncate_between_writes(tmp_path, reopen, length):
    differential(tmp_path, lambda d, run: run(meta_ops(
        "reopen", reopen, "rec", "3", "before", "ftruncate", length, "fstat",
        "rec", "3", "after", "fstat")))


@pytest.mark.parametrize("reopen", ["a", "w"])
def test_raw_syscall_fstat_counts_the_buffered_bytes(tmp_path, reopen):
    # syscall(SYS_fstat) is answered like fstat (doc/behaviour.md §4): the size includes buffered bytes.
    differential(tmp_path, lambda d, run: run(meta_ops(
        "reopen", reopen, "rec", "5", "line", "fstat", "sys_fstat")))
