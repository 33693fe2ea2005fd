"""Which opens match BUFSHIM_PATHS by their canonical path (doc/behaviour.md §1), now that an
open resolved without a symlink is matched by its name made absolute and only an open through
a symlink reads /proc/self/fd/N (wrap_open.c): folders and mounts that appear after the
program started, bind mounts, symlinked folders, wildcards in folder parts. Each case runs a
shimmed bash that makes the folders, links or mounts itself, after the shim started, then
appends through each path; BUFSHIM_DEBUG's "fd N -> PATH: diverted" lines say which opens
matched, under which canonical name, and the files must hold exactly what was written."""
import shutil
import subprocess

import pytest

from shim_fixture import run_shimmed

BASH = shutil.which("bash")
UNSHARE = shutil.which("unshare")


def diverted(stderr):
    """The paths of the descriptors the shim diverted, in order: a target's canonical path,
    or the name an open of a target's file answered by elision (elide.c) came through."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("bufshim: fd ") and line.endswith((": diverted", ": open elided")):
            out.append(line.split(" -> ", 1)[1].rsplit(": ", 1)[0])
    return out


def shimmed_bash(tmp_path, script, paths, mounts=False):
    argv = [BASH, "-c", "set -e\n" + script]
    if mounts:
        argv = [UNSHARE, "-m", "--propagation", "private", *argv]
    return run_shimmed(argv, paths=paths, interval="30", debug=1, cwd=tmp_path)


def can_mount():
    if UNSHARE is None:
        return False
    p = subprocess.run([UNSHARE, "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs t /mnt && umount /mnt"], capture_output=True)
    return p.returncode == 0


needs_mounts = pytest.mark.skipif(not can_mount(), reason="needs unshare -m and mount (root)")


def test_folder_created_after_start_and_reached_through_a_symlink(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    p = shimmed_bash(tmp_path, f"""
        mkdir -p {conf}/late/deeper
        echo a >> {conf}/late/a.log
        ln -s {conf}/late lnk
        echo b >> {tmp_path}/lnk/b.log
        echo c >> lnk/deeper/../c.log
        cd lnk/deeper
        echo d >> d.log
        echo e >> {tmp_path}/outside.log
        """, [f"{conf}/"])
    assert diverted(p.stderr) == [f"{conf}/late/{n}.log" for n in "abc"] + \
        [f"{conf}/late/deeper/d.log"], p.stderr
    for n in "abc":
        assert (conf / "late" / f"{n}.log").read_text() == f"{n}\n"
    assert (conf / "late" / "deeper" / "d.log").read_text() == "d\n"
    assert (tmp_path / "outside.log").read_text() == "e\n"


def test_configured_folder_named_through_a_symlink_and_a_symlink_out_of_it(tmp_path):
    """The configuration names the real folder: an alias reaches it (matched by its
    canonical path). A symlink inside the folder to a folder outside matches by the name it
    was opened under, as before."""
    conf = tmp_path / "conf"
    (conf / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    p = shimmed_bash(tmp_path, f"""
        ln -s {conf} alias
        ln -s {tmp_path}/elsewhere {conf}/out
        echo a >> alias/sub/a.log
        echo b >> {conf}/out/b.log
        echo c >> {tmp_path}/elsewhere/c.log
        """, [f"{conf}/**"])
    got = diverted(p.stderr)
    assert got[0] == f"{conf}/sub/a.log", p.stderr
    assert len(got) == 2 and got[1] in (f"{conf}/out/b.log", f"{tmp_path}/elsewhere/b.log"), \
        p.stderr
    assert (conf / "sub" / "a.log").read_text() == "a\n"
    assert (tmp_path / "elsewhere" / "b.log").read_text() == "b\n"
    assert (tmp_path / "elsewhere" / "c.log").read_text() == "c\n"


def test_wildcard_folder_parts_through_symlinks(tmp_path):
    conf = tmp_path / "conf"
    (conf / "app1" / "logs").mkdir(parents=True)
    p = shimmed_bash(tmp_path, f"""
        ln -s {conf}/app1 a1
        mkdir -p {conf}/app2/logs/deep
        ln -s {conf}/app2/logs l2
        echo a >> a1/logs/a.log
        echo b >> l2/deep/b.log
        echo c >> a1/c.log
        """, [f"{conf}/*/logs/**"])
    assert diverted(p.stderr) == [f"{conf}/app1/logs/a.log", f"{conf}/app2/logs/deep/b.log"], \
        p.stderr
    assert (conf / "app1" / "logs" / "a.log").read_text() == "a\n"
    assert (conf / "app2" / "logs" / "deep" / "b.log").read_text() == "b\n"
    assert (conf / "app1" / "c.log").read_text() == "c\n"


@needs_mounts
def test_tmpfs_mounted_below_a_configured_folder_after_start(tmp_path):
    """A mount made after the shim started, in a subfolder of the configured folder: its
    files match by name and through a symlink (another device than the folder's). The
    contents are read inside the mount namespace, after a fork has flushed them."""
    conf = tmp_path / "conf"
    conf.mkdir()
    p = shimmed_bash(tmp_path, f"""
        mkdir -p {conf}/m
        mount -t tmpfs bufshim-test {conf}/m
        ln -s {conf}/m lnk
        echo a >> {conf}/m/a.log
        echo b >> lnk/b.log
        echo "[$(cat {conf}/m/a.log)][$(cat {conf}/m/b.log)]"
        """, [f"{conf}/"], mounts=True)
    assert diverted(p.stderr) == [f"{conf}/m/a.log", f"{conf}/m/b.log"], p.stderr
    assert p.stdout == "[a][b]\n", p.stdout


@needs_mounts
def test_bind_mounts_below_and_of_a_configured_folder(tmp_path):
    """A folder bind-mounted below the configured one: its files match by name and through
    a symlink. The configured folder bind-mounted elsewhere (recursively): a file opened there has that
    other canonical path (readlink names the bind mount), so it matches only as a file
    already a target (the same inode)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    p = shimmed_bash(tmp_path, f"""
        mkdir -p {conf}/b {tmp_path}/view
        mount --bind {src} {conf}/b
        mount --rbind {conf} {tmp_path}/view
        ln -s {conf}/b lnk
        echo a >> {conf}/b/a.log
        echo b >> lnk/b.log
        echo c >> {src}/c.log
        echo d >> {tmp_path}/view/d.log
        echo a2 >> {tmp_path}/view/b/a.log
        echo "[$(cat {src}/a.log)][$(cat {src}/b.log)][$(cat {src}/c.log)][$(cat {conf}/d.log)]"
        """, [f"{conf}/"], mounts=True)
    got = diverted(p.stderr)
    assert got[:2] == [f"{conf}/b/a.log", f"{conf}/b/b.log"], p.stderr
    assert f"{src}/c.log" not in got and f"{tmp_path}/view/d.log" not in got, p.stderr
    assert len(got) == 3 and got[2] in (f"{conf}/b/a.log", f"{tmp_path}/view/b/a.log"), p.stderr
    assert p.stdout == "[a\na2][b][c][d]\n", p.stdout


def test_odd_opens_keep_their_results(tmp_path):
    """What the kernel's open would do, through the shim's openat2: a dangling symlink
    created through by O_CREAT, O_NOFOLLOW on a symlink (ELOOP), O_PATH, a missing folder
    (ENOENT), a mode with bits above 07777, unknown flag bits, O_TMPFILE in a matched
    folder, /dev/stdout."""
    conf = tmp_path / "conf"
    conf.mkdir()
    code = f"""
import errno, os, sys
conf = {str(conf)!r}
os.symlink(conf + "/target.log", conf + "/dangling.log")
fd = os.open(conf + "/dangling.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, b"via dangling\\n"); os.close(fd)
try:
    os.open(conf + "/dangling.log", os.O_WRONLY | os.O_NOFOLLOW)
    print("nofollow opened")
except OSError as e:
    print("nofollow", errno.errorcode[e.errno])
fd = os.open(conf + "/target.log", os.O_PATH); print("O_PATH", os.path.basename(os.readlink(f"/proc/self/fd/{{fd}}"))); os.close(fd)
try:
    os.open(conf + "/missing/x.log", os.O_WRONLY | os.O_CREAT, 0o644)
except OSError as e:
    print("missing", errno.errorcode[e.errno])
fd = os.open(conf + "/mode.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o170644)
os.write(fd, b"mode\\n"); os.close(fd); print("mode", oct(os.stat(conf + "/mode.log").st_mode & 0o7777))
fd = os.open(conf + "/flags.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | 0x40000000, 0o600)
os.write(fd, b"flags\\n"); os.close(fd)
fd = os.open(conf, os.O_WRONLY | os.O_TMPFILE, 0o600); os.write(fd, b"tmp"); os.close(fd)
fd = os.open("/dev/stdout", os.O_WRONLY); os.write(fd, b"to stdout\\n"); os.close(fd)
"""
    p = run_shimmed(["/usr/bin/python3", "-c", code], paths=[f"{conf}/"], interval="30",
                    debug=1, cwd=tmp_path)
    assert p.stdout.splitlines() == ["nofollow ELOOP", "O_PATH target.log", "missing ENOENT",
                                     "mode 0o644", "to stdout"], (p.stdout, p.stderr)
    assert (conf / "target.log").read_text() == "via dangling\n"
    assert (conf / "mode.log").read_text() == "mode\n"
    assert (conf / "flags.log").read_text() == "flags\n"
    got = diverted(p.stderr)
    assert f"{conf}/target.log" in got and f"{conf}/mode.log" in got and \
        f"{conf}/flags.log" in got, p.stderr


def test_only_an_open_through_a_symlink_reads_its_link(tmp_path):
    """The non-diverted open costs no readlink of /proc/self/fd/N when its path has no
    symlink (the +264% of issue 13); one through a symlinked folder still reads it, the first
    time after a failed openat2, then at once (the real open, no openat2 first)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "lnk").symlink_to(tmp_path / "d")
    code = f"""
import os
for i in range(5):
    os.close(os.open({str(tmp_path)!r} + "/other.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
for i in range(5):
    os.close(os.open({str(tmp_path)!r} + "/lnk/x.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
"""
    trace = tmp_path / "strace.log"
    run_shimmed(["/usr/bin/python3", "-c", code], paths=["/nonexistent-bufshim-test/"],
                interval="30", strace=trace, strace_calls="openat,openat2,readlink")
    lines = trace.read_text().splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if "/other.log" in ln):]
    links = [ln for ln in lines if "readlink(\"/proc/self/fd/" in ln]
    assert len(links) == 5, lines
    other = [ln for ln in lines if "/other.log" in ln]
    assert len(other) == 5 and all("openat2(" in ln for ln in other), other
    via = [ln for ln in lines if "/lnk/x.log" in ln]
    assert [("ELOOP" in ln) for ln in via if "openat2(" in ln] == [True], via
    assert len([ln for ln in via if "openat(" in ln]) == 5, via
