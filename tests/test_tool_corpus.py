"""A corpus of real tools run with and without the shim into a matched folder (doc/behaviour.md §8).

Each case runs the same scenario twice: into ``<tmp>/plain/out`` without the shim, and into
``<tmp>/shim/out`` under the shim with ``BUFSHIM_PATHS=<tmp>/shim/out/`` (everything below
it) and ``BUFSHIM_STATS`` outside it. Then:

- the two ``out`` trees must be the same file by file WITH metadata (tests/tree_compare.py:
  content, full mode incl. setuid/setgid, owner, size, symlink targets, every xattr incl.
  ``security.capability``, and mtimes where the tool sets them);
- what the programs printed must be the same (paths normalised to ``OUT``);
- the shimmed run must have diverted: some target below ``out`` has ``records > batches`` in
  ``BUFSHIM_STATS``. A shim that diverted nothing fails every case here.

The inputs are made so that buffering really happens: files written in many ``write`` calls
(a 400 kB file extracted by tar in 10 kB records, gzip's 16 kB output chunks, line-by-line
logs), not only files written with one ``write`` each. The interval is long (30 s), so that
every batch before exit comes from a barrier: a time setter, chmod, setxattr, rename, fork...
that the shim failed to honour shows up as a different tree.

Tools: tar (``xpf``, ``--xattrs``, as ``nobody``), rsync ``-aX`` and its second quick-check
run, ``cp -a``, ``install -p -m 4755``, ``touch -d``, ``gzip -k``, git, sqlite3, perl, node,
a Rust std program (compiled with rustc at test time), Python's ``tarfile`` and ``os.utime``.
A case is skipped only when its tool is not installed (tools/install-deps installs them all).
"""
import json
import os
import pathlib
import random
import shutil
import stat
import subprocess
import tempfile

import pytest

from shim_fixture import run_plain, run_shimmed
from tree_compare import assert_same_tree

INTERVAL = "30"
PY = "/usr/bin/python3"
TREE_TIME_NS = 1_000_000_000_123_456_789
GIT_ENV = {"GIT_AUTHOR_NAME": "A U Thor", "GIT_AUTHOR_EMAIL": "a@example.org",
           "GIT_COMMITTER_NAME": "C O Mitter", "GIT_COMMITTER_EMAIL": "c@example.org",
           "GIT_AUTHOR_DATE": "1000000000 +0000", "GIT_COMMITTER_DATE": "1000000000 +0000",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent"}


def need(tool):
    path = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:"
                        + os.path.expanduser("~/.cargo/bin"))
    if path is None:
        pytest.skip(f"{tool} is not installed (tools/install-deps installs it)")
    return path


def _words(rng, n):
    vocab = ["alpha", "beta", "gamma", "delta", "log", "record", "value", "error", "ok",
             "request", "id", "user", "time", "path", "bytes", "size", "batch", "shim"]
    return " ".join(rng.choice(vocab) for _ in range(n))


def make_tree(root, caps=True):
    """A tree with many small files, files big enough to be written in many calls, setuid,
    setgid and read-only modes, a symlink, a hard link, an empty file, user xattrs, a file
    capability (as root), odd directory modes, and a distinct nanosecond mtime on every
    entry, directories included (set last, bottom-up)."""
    rng = random.Random(10)
    root.mkdir(parents=True)
    for d in range(6):
        sub = root / f"d{d}" / f"e{d % 2}"
        sub.mkdir(parents=True)
        for i in range(30):
            (sub / f"f{i}.txt").write_bytes(rng.randbytes(rng.randint(1, 300)))
    (root / "big.bin").write_bytes(rng.randbytes(400_000))
    (root / "log.txt").write_text("".join(f"{i} {_words(rng, 8)}\n" for i in range(20000)))
    (root / "empty").write_bytes(b"")
    (root / "suid").write_bytes(rng.randbytes(50_000))
    os.chmod(root / "suid", 0o4755)
    (root / "sgid").write_bytes(rng.randbytes(30_000))
    os.chmod(root / "sgid", 0o2750)
    (root / "readonly").write_text("read only\n")
    os.chmod(root / "readonly", 0o444)
    os.symlink("d0/e0/f1.txt", root / "link")
    os.link(root / "log.txt", root / "hard")
    (root / "x.txt").write_bytes(rng.randbytes(70_000))
    os.setxattr(root / "x.txt", "user.comment", b"kept by tar --xattrs and rsync -X")
    os.setxattr(root / "d1", "user.dir", b"a directory xattr")
    os.chmod(root / "d2", 0o750)
    os.chmod(root / "d3" / "e1", 0o2775)
    if caps:
        (root / "cap.bin").write_bytes(rng.randbytes(200_000))
        os.chmod(root / "cap.bin", 0o755)
        subprocess.run([need("setcap"), "cap_net_raw+ep", str(root / "cap.bin")], check=True)
        os.setxattr(root / "cap.bin", "user.note", b"hello")
    entries = sorted((p for p in root.rglob("*")), key=lambda p: -len(p.parts))
    for i, p in enumerate(entries):
        t = TREE_TIME_NS + i * 1_000_000_007
        os.utime(p, ns=(t, t), follow_symlinks=False)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The source tree (on the test's file system) and its tar archive (pax format, with
    every xattr, so nanosecond mtimes and capabilities survive)."""
    base = tmp_path_factory.mktemp("corpus")
    src = make_tree(base / "src", caps=os.geteuid() == 0)
    tar = need("tar")
    run_plain([tar, "--xattrs", "--xattrs-include=*", "--format=posix", "-cpf",
               str(base / "src.tar"), "-C", str(src), "."])
    # A repository to clone (outside the matched folders, so that the clones' config and
    # reflogs name the same origin in both runs).
    git = shutil.which("git")
    if git:
        repo = base / "srcrepo"
        run_plain([git, "init", "-q", "-b", "main", repo], env=GIT_ENV)
        run_plain([tar, "-xpf", base / "src.tar", "-C", repo])
        run_plain([git, "-C", repo, "add", "-A"], env=GIT_ENV)
        run_plain([git, "-C", repo, "commit", "-q", "-m", "source"], env=GIT_ENV)
    return {"src": src, "tar": base / "src.tar", "base": base}


def stats_lines(path):
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_diverted(stats_path, under):
    """Some target below ``under`` had more output calls than batches."""
    lines = stats_lines(stats_path)
    prefix = str(under).rstrip("/") + "/"
    mine = [s for s in lines if s.get("path", "").startswith(prefix)]
    assert any(s["records"] > s["batches"] for s in mine), (
        f"nothing below {under} was diverted (records > batches): BUFSHIM_STATS had "
        f"{len(lines)} lines, {len(mine)} below it: {mine[:10]}")
    return mine


def pair(tmp_path, scenario, times=True, dir_times=None, ignore=(), same_stdout=True,
         base_dir=None):
    """Runs ``scenario(out, run)`` plain then shimmed (see the module docstring) and
    compares. ``run(argv, **kw)`` takes run_plain's keywords (cwd defaults to ``out``).
    Returns ``(plain_out, shim_out, plain_stdouts, shim_stdouts)``."""
    base_dir = pathlib.Path(base_dir or tmp_path)
    result = {}
    for kind in ("plain", "shim"):
        base = base_dir / kind
        out = base / "out"
        out.mkdir(parents=True, exist_ok=True)
        stats = base / "stats.jsonl"
        stdouts = []

        def run(argv, _kind=kind, _out=out, _stats=stats, _stdouts=stdouts, **kw):
            kw.setdefault("cwd", _out)
            if _kind == "plain":
                r = run_plain(argv, **kw)
            else:
                r = run_shimmed(argv, paths=[f"{_out}/"], interval=INTERVAL, stats=_stats, **kw)
            _stdouts.append(r.stdout.replace(str(_out), "OUT"))
            return r

        scenario(out, run)
        result[kind] = (out, stdouts, stats)
    (pout, pstd, _), (sout, sstd, sstats) = result["plain"], result["shim"]
    problems = []
    try:
        assert_same_tree(pout, sout, times=times, dir_times=dir_times, ignore=ignore)
    except AssertionError as e:
        problems.append(str(e))
    if same_stdout and pstd != sstd:
        problems.append("the programs printed different things:\n"
                        + "\n".join(f"  without: {a!r}\n  with:    {b!r}"
                                    for a, b in zip(pstd, sstd) if a != b))
    assert not problems, "\n".join(problems)
    assert_diverted(sstats, sout)
    return pout, sout, pstd, sstd


# --- tar ------------------------------------------------------------------------------

def test_tar_xpf_same_tree_and_mtimes(corpus, tmp_path):
    tar = need("tar")
    pout, _, _, _ = pair(tmp_path, lambda out, run: run([tar, "-xpf", corpus["tar"], "-C", out]))
    # The tool itself restored every mtime (directories too) and mode, so the comparison
    # above compared something: the plain extraction equals the source but for xattrs.
    assert_same_tree(corpus["src"], pout, ignore=("*:xattrs",))


def test_tar_xattrs_keeps_capability_and_user_xattrs(corpus, tmp_path):
    tar = need("tar")
    pout, sout, _, _ = pair(tmp_path, lambda out, run: run(
        [tar, "--xattrs", "--xattrs-include=*", "-xpf", corpus["tar"], "-C", out]))
    assert_same_tree(corpus["src"], pout)
    assert os.getxattr(sout / "x.txt", "user.comment").startswith(b"kept")
    if os.geteuid() == 0:
        assert "security.capability" in os.listxattr(sout / "cap.bin")


def test_tar_xpf_as_nobody_keeps_setuid(corpus, tmp_path):
    """As a non-root user the kernel strips setuid/setgid on every write; a batch written
    after tar's chmod would strip the bits tar restored."""
    tar = need("tar")
    setpriv = need("setpriv")
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    base = pathlib.Path(tempfile.mkdtemp(prefix="bufshim-nobody-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        archive = base / "own.tar"
        owned = base / "tree"
        make_tree(owned, caps=False)
        shutil.chown(owned, "nobody", "nogroup")
        for p in owned.rglob("*"):
            os.chown(p, 65534, 65534, follow_symlinks=False)
        os.chmod(owned / "suid", 0o4755)  # chown cleared them
        os.chmod(owned / "sgid", 0o2750)
        run_plain([tar, "--format=posix", "-cpf", archive, "-C", owned, "."])
        os.chmod(archive, 0o644)
        for kind in ("plain", "shim"):
            (base / kind / "out").mkdir(parents=True)
            for p in (base / kind, base / kind / "out"):
                os.chown(p, 65534, 65534)
        as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        pout, sout, _, _ = pair(tmp_path, lambda out, run: run(
            [*as_nobody, tar, "-xpf", archive, "-C", out]), base_dir=base)
        assert stat.S_IMODE(os.stat(pout / "suid").st_mode) == 0o4755
        assert os.stat(sout / "suid").st_uid == 65534
    finally:
        shutil.rmtree(base)


# --- rsync ----------------------------------------------------------------------------

def test_rsync_aX_then_quick_check_finds_nothing(corpus, tmp_path):
    rsync = need("rsync")
    src = f"{corpus['src']}/"

    def scenario(out, run):
        run([rsync, "-aX", src, f"{out}/"])
        # The second run compares sizes and mtimes: with every mtime kept it sends nothing
        # and prints nothing (a re-sent file would print a line like ">f..t...... big.bin").
        r = run([rsync, "-aiX", src, f"{out}/"])
        assert r.stdout == "", f"rsync's second run found differences:\n{r.stdout}"

    pout, _, _, _ = pair(tmp_path, scenario, ignore=("*:nlink",))
    assert_same_tree(corpus["src"], pout, ignore=("*:nlink",))


# --- coreutils ------------------------------------------------------------------------

@pytest.fixture
def tmpfs_src(tmp_path):
    """The source tree on /dev/shm (tmpfs). From another file system cp and install cannot
    use copy_file_range or a reflink (EXDEV) and copy with read/write, which the shim
    diverts; from the same ext4 they would never call write at all."""
    shm = pathlib.Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is not a separate tmpfs here")
    base = pathlib.Path(tempfile.mkdtemp(prefix="bufshim-corpus-", dir=shm))
    try:
        yield make_tree(base / "src", caps=os.geteuid() == 0)
    finally:
        shutil.rmtree(base)


def test_cp_a(tmpfs_src, tmp_path):
    cp = need("cp")
    pout, _, _, _ = pair(tmp_path, lambda out, run: run([cp, "-a", tmpfs_src, f"{out}/tree"]))
    assert_same_tree(tmpfs_src, pout / "tree")


def test_install_p_m_4755(tmpfs_src, tmp_path):
    install = need("install")

    def scenario(out, run):
        run([install, "-p", "-m", "4755", tmpfs_src / "big.bin", out / "big.bin"])
        run([install, "-p", "-m", "2755", tmpfs_src / "log.txt", out / "log.txt"])
        if os.geteuid() == 0:
            run([install, "-p", "-m", "755", "-o", "nobody", "-g", "nogroup",
                 tmpfs_src / "x.txt", out / "x.txt"])

    pout, _, _, _ = pair(tmp_path, scenario)
    assert stat.S_IMODE(os.stat(pout / "big.bin").st_mode) == 0o4755
    assert os.stat(pout / "big.bin").st_mtime_ns == os.stat(tmpfs_src / "big.bin").st_mtime_ns


def test_touch_d_after_write(tmp_path):
    bash, touch = need("bash"), need("touch")
    script = ('for i in $(seq 1 500); do echo "line $i of the log"; done > a.log\n'
              f'{touch} -d @1000000000 a.log\n'
              'mkdir d; for i in $(seq 1 300); do echo "$i" >> d/b.log; done\n'
              f'{touch} -m -d "2001-09-09 01:46:40.5 UTC" d/b.log\n'
              f'{touch} -d @999999999 d\n'
              'stat -c "%s %Y %n" a.log d/b.log\n'
              'echo end\n')  # a builtin last: bash -c execs a last external command, and
    # an exec'd process leaves no BUFSHIM_STATS line
    pair(tmp_path, lambda out, run: run([bash, "-c", script]))


def test_gzip_k(tmp_path):
    gzip = need("gzip")
    rng = random.Random(3)
    text = "".join(f"{i} {_words(rng, 12)} {rng.random()}\n" for i in range(60000))

    def scenario(out, run):
        f = out / "big.txt"
        f.write_text(text)
        os.chmod(f, 0o640)
        os.utime(f, ns=(TREE_TIME_NS, TREE_TIME_NS))
        run([gzip, "-k", "-9", f])
        run([gzip, "-t", f"{f}.gz"])

    pout, _, _, _ = pair(tmp_path, scenario)
    assert os.stat(pout / "big.txt.gz").st_mtime_ns == TREE_TIME_NS
    assert os.stat(pout / "big.txt.gz").st_size > 200_000  # many 16 kB writes


# --- git ------------------------------------------------------------------------------

def test_git_init_add_commit_clone(corpus, tmp_path):
    git, tar = need("git"), need("tar")

    def scenario(out, run):
        def g(*args, **kw):
            return run([git, *args], env=GIT_ENV, **kw)
        g("init", "-q", "-b", "main", "repo")
        repo = out / "repo"
        run([tar, "-xpf", corpus["tar"], "-C", repo])
        g("-C", repo, "add", "-A")
        g("-C", repo, "commit", "-q", "-m", "first")
        for i in range(3):
            with open(repo / "log.txt", "a") as f:
                f.write(f"change {i}\n" * 50)
            (repo / f"new{i}.txt").write_text(f"new file {i}\n" * 1000)
            g("-C", repo, "add", "-A")
            g("-C", repo, "commit", "-q", "-m", f"change {i}")
        g("-C", repo, "fsck", "--full", "--strict")
        g("-C", repo, "log", "--format=%H %T %an %ad %s", "--stat")
        g("clone", "-q", "--no-local", f"file://{corpus['base'] / 'srcrepo'}", "clone")
        g("-C", out / "clone", "fsck", "--full", "--strict")
        g("-C", out / "clone", "log", "--format=%H %T %s")
        g("-C", out / "clone", "ls-tree", "-r", "HEAD")

    # The index records inodes and stat times; checked-out files get the time of checkout;
    # the clone's pack is made by a threaded pack-objects (its bytes may vary; fsck checked it).
    pair(tmp_path, scenario, times=False,
         ignore=("*/.git/index", "clone/.git/objects/pack/*", "clone/.git/objects/pack"))


# --- sqlite3 --------------------------------------------------------------------------

def test_sqlite3_db_and_dump(tmp_path):
    sqlite3 = need("sqlite3")
    rng = random.Random(5)
    rows = "\n".join(f"INSERT INTO t VALUES ({i}, '{_words(rng, 6)}', {i * 7 % 1000});"
                     for i in range(3000))
    script = ("CREATE TABLE t (id INTEGER PRIMARY KEY, msg TEXT, n INTEGER);\n"
              "BEGIN;\n" + rows + "\nCOMMIT;\n"
              "CREATE INDEX tn ON t(n);\n"
              "UPDATE t SET n = n + 1 WHERE id % 3 = 0;\n"
              "DELETE FROM t WHERE id % 10 = 0;\n"
              ".output dump.sql\n.dump\n.output stdout\n"
              "PRAGMA integrity_check;\nSELECT count(*), sum(n) FROM t;\n")

    def scenario(out, run):
        r = run([sqlite3, "db.sqlite"], input=script)
        assert r.stdout.splitlines()[0] == "ok"
        # sqlite writes its database with pwrite (not diverted); its .dump output is written
        # line by line through stdio (diverted): both must come out the same.
        run([sqlite3, "db.sqlite", ".dump"])
        run([sqlite3, "db.sqlite", "PRAGMA integrity_check;"])

    pair(tmp_path, scenario, times=False)


# --- perl, node, rust, python ---------------------------------------------------------

def test_perl_log_then_utime_chmod(tmp_path):
    perl = need("perl")
    script = r'''
        my ($a, $b) = ("a.log", "b.log");
        open(my $f, ">>", $a) or die; my $old = select($f); $| = 1; select($old);
        print $f "line $_ of the log\n" for 1..2000;
        utime 1000000000, 1000000000, $a or die;
        chmod 0640, $a or die;
        print $f "";   # an empty print changes nothing
        close $f;
        open(my $g, ">", $b) or die;           # PerlIO's own 8 kB buffering
        print $g "record $_ " . ("x" x 40) . "\n" for 1..5000;
        close $g;
        utime 999999999, 999999999.25, $b or die;
        my @s = stat($a); my @t = stat($b);
        print "$s[7] $s[9] $t[7] $t[9]\n";
    '''
    pair(tmp_path, lambda out, run: run([perl, "-e", script]))


def test_node_append_utimes_statsize(tmp_path):
    node = need("node")
    script = r'''
        const fs = require('fs');
        for (let i = 0; i < 500; i++) fs.appendFileSync('a.log', `line ${i} of the log\n`);
        console.log(fs.statSync('a.log').size);
        fs.utimesSync('a.log', 1000000000, 1000000000.5);
        const fd = fs.openSync('b.log', 'a');
        for (let i = 0; i < 500; i++) fs.writeSync(fd, `record ${i}\n`);
        console.log(fs.fstatSync(fd).size);
        fs.futimesSync(fd, 999999999, 999999999);
        fs.fchmodSync(fd, 0o600);
        fs.closeSync(fd);
        console.log(fs.statSync('a.log').size, fs.statSync('b.log').size,
                    fs.statSync('a.log').mtimeMs, fs.statSync('b.log').mtimeMs);
    '''
    pair(tmp_path, lambda out, run: run([node, "-e", script]))


RUST_PROGRAM = r'''
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

fn main() {
    let a = "a.log";
    let mut f = File::create(a).unwrap();
    for i in 0..1000 {
        writeln!(f, "line {} of the log", i).unwrap();
    }
    println!("{}", f.metadata().unwrap().len());
    f.set_modified(UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789)).unwrap();
    drop(f);
    let mut g = OpenOptions::new().append(true).create(true).open("b.log").unwrap();
    for i in 0..1000 {
        g.write_all(format!("record {}\n", i).as_bytes()).unwrap();
    }
    g.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    g.set_modified(UNIX_EPOCH + Duration::new(999_999_999, 0)).unwrap();
    println!("{} {}", std::fs::metadata(a).unwrap().len(), g.metadata().unwrap().len());
}
'''


@pytest.fixture(scope="module")
def rust_program(tmp_path_factory):
    rustc = need("rustc")
    d = tmp_path_factory.mktemp("rust")
    (d / "main.rs").write_text(RUST_PROGRAM)
    run_plain([rustc, "-O", "--edition=2021", "-o", d / "prog", d / "main.rs"], timeout=300)
    return d / "prog"


def test_rust_std_writes_set_modified_len(rust_program, tmp_path):
    pair(tmp_path, lambda out, run: run([rust_program]))


def test_python_tarfile_extractall_and_utime(corpus, tmp_path):
    script = (
        "import os, sys, tarfile\n"
        "with tarfile.open(sys.argv[1]) as t:\n"
        "    t.extractall('tree')\n"
        "with open('a.log', 'w', buffering=1) as f:\n"
        "    for i in range(2000):\n"
        "        f.write(f'line {i} of the log\\n')\n"
        "    os.utime(f.fileno(), ns=(10**18, 10**18 + 5))\n"
        "    os.chmod('a.log', 0o4750)\n"
        "st = os.stat('a.log')\n"
        "print(st.st_size, st.st_mtime_ns, oct(st.st_mode))\n")
    # tarfile does not set a symlink's own time.
    pout, _, _, _ = pair(tmp_path, lambda out, run: run([PY, "-c", script, corpus["tar"]]),
                         ignore=("tree/link:mtime_ns",))
    # tarfile restores modes, owners and mtimes (not xattrs; mtimes through a float, so
    # to about a microsecond), directories included.
    assert_same_tree(corpus["src"], pout / "tree", times=False, ignore=("*:xattrs", "*:nlink"))
    for rel in ("big.bin", "d0", "d0/e0/f1.txt"):
        assert (os.stat(pout / "tree" / rel).st_mtime_ns // 1000
                == os.stat(corpus["src"] / rel).st_mtime_ns // 1000)
