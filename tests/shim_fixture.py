"""Running programs with and without the shim, and comparing what they leave behind.

Loaded as a plugin by tests/conftest.py; import the helpers with
``from shim_fixture import run_shimmed, assert_same_files, ...``.

Running
-------
``SHIM_LIB``
    ``build/src/libbufshim.so``.
``shim_env(paths=None, interval=None, fsync=None, debug=None, stats=None, env=None, preload=True)``
    A copy of ``os.environ`` with every ``BUFSHIM_*`` variable removed, then ``LD_PRELOAD`` (the
    sanitizer runtime first under ``BUFSHIM_TEST_SANITIZER``) and the given settings.
    ``paths`` is a string or a list of entries (joined with ``:``); ``interval``, ``fsync``,
    ``debug``, ``stats`` are written as given (``str()``). Values in ``env`` override, and a
    value of ``None`` there removes the variable. Under ASan, programs outside the build
    directory (bash, python3, ...) run with ``detect_leaks=0``: their leaks are not ours.
``launcher_env(**extra)``
    The environment for running ``tools/bufshim`` (which sets the shim's variables
    itself): no ``BUFSHIM_*`` or ``LD_PRELOAD`` inherited, ``BUFSHIM_BUILD_DIR`` the build
    under test, then ``extra``. The launcher puts a sanitized library's runtime first
    itself (the shell it runs in must not have it: bash and dash crash under TSan).
``run_plain(argv, env=None, cwd=None, timeout=120, input=None, check=True, stdout=None,
preexec_fn=None)``
    Runs argv without the shim (``LD_PRELOAD`` and ``BUFSHIM_*`` removed); returns the
    ``CompletedProcess`` (text mode; stdout captured unless ``stdout`` is a file object to
    hand the program as its fd 1, then ``.stdout`` is ``""``). ``check`` fails the test on a
    non-zero exit, showing stderr. The sanitizer-report check applies to every run.
``run_shimmed(argv, paths=None, interval=None, fsync=None, debug=None, stats=None, env=None,
cwd=None, timeout=120, input=None, check=True, strace=None, stdout=None, preexec_fn=None,
strace_calls="write,writev,pwrite64,openat,openat2,open")``
    The same under the shim. ``strace`` (a path) runs the program under
    ``strace -f -y -ttt -e trace=<strace_calls> -o PATH`` (the shim is preloaded into the
    traced program only, not into strace).
``strace_writes(log_path, file_path)``
    Parses such a log: a list of ``(time, pid, syscall, nbytes)`` for each write-type call
    whose descriptor resolved to ``file_path`` (``-y`` annotation), in log order; calls
    that strace split into ``<unfinished ...>`` and ``<... resumed>`` lines count once.

Differential runs
-----------------
``assert_same_files(scenario, tmp_path, paths=("*",), interval="0.3", env=None, compare=None,
same_stdout=True, diverted=True, times=False)``
    Runs ``scenario(workdir, run)`` twice: in ``tmp_path/"plain"`` with ``run`` bound to
    ``run_plain``, and in ``tmp_path/"shim"`` with ``run`` bound to ``run_shimmed`` whose
    ``paths`` entries are made absolute under that workdir (``"*.log"`` becomes
    ``"<workdir>/*.log"``; absolute entries and the words ``stdout``/``stderr`` are kept).
    ``run(argv, **kw)`` takes the keyword arguments of ``run_plain`` (``cwd`` defaults to
    the workdir; ``env`` is merged over the ``env`` given here). Every shimmed run appends
    its ``BUFSHIM_STATS`` report to ``tmp_path/"shim.stats"`` unless the call passes its
    own ``stats`` file. Then the two workdirs must hold the same (non-empty) set of files,
    each equal byte for byte or satisfying ``compare(relpath, plain_bytes, shim_bytes)``
    (return True), with the same mode, owner, group, size and extended attributes
    (``security.*`` included; none where the filesystem has no support), and with
    ``times`` the same mtime to the nanosecond (only scenarios that set their times
    explicitly can compare them: the two runs happen at different times); symlinks
    compare by their text; and, with ``same_stdout``, each run's stdout must be
    identical. With ``diverted`` (the default) the stats must show that the shim did
    its work: some target with more records (calls) than batches (``assert_diverted``).
    A scenario in which diversion is impossible passes ``diverted=False`` and says why.
    Returns a ``SameFiles``: the tuple ``(plain_dir, shim_dir, plain_results,
    shim_results)`` (the lists of CompletedProcess) with those as attributes and
    ``.stats``, the parsed report lines (``read_stats``).
``read_stats(path)``
    The JSON objects of a ``BUFSHIM_STATS`` file, one per line (``[]`` when it does not
    exist).
``assert_diverted(stats, what="")``
    Fails unless some entry of ``stats`` has ``records > batches``: calls were gathered
    into fewer writes. An empty library or a glob that matched nothing fails here.
``sorted_lines(data)``
    The lines of ``data`` (bytes), sorted: a ``compare`` helper for multi-threaded writers.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from tree_compare import xattrs
from conftest import BUILD_DIR, SANITIZER, assert_no_sanitizer_report, sanitizer_runtime

SHIM_LIB = BUILD_DIR / "src" / "libbufshim.so"
STRACE = shutil.which("strace")


def _clean_env(env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("BUFSHIM_") or k in ("BUFSHIM_BUILD_DIR", "BUFSHIM_SOURCE_DIR",
                                                  "BUFSHIM_TEST_SANITIZER")}
    e.pop("LD_PRELOAD", None)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    return e


def shim_env(paths=None, interval=None, fsync=None, debug=None, stats=None, env=None,
             preload=True):
    if not SHIM_LIB.exists():
        pytest.fail(f"{SHIM_LIB} is not built")
    e = _clean_env()
    if preload:
        rt = sanitizer_runtime()
        e["LD_PRELOAD"] = f"{rt}:{SHIM_LIB}" if rt else str(SHIM_LIB)
    if paths is not None:
        e["BUFSHIM_PATHS"] = paths if isinstance(paths, str) else ":".join(map(str, paths))
    for name, value in (("INTERVAL", interval), ("FSYNC", fsync), ("DEBUG", debug),
                        ("STATS", stats)):
        if value is not None:
            e["BUFSHIM_" + name] = str(value)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    return e


def _third_party_leaks_off(argv, env):
    """Under ASan the runtime is preloaded into bash, python3, perl...: their own
    leaks are not ours to report. Our helpers (under the build directory) keep
    leak detection."""
    if SANITIZER == "address" and not str(argv[0]).startswith(str(BUILD_DIR)):
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"


def launcher_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BUFSHIM_") and k != "LD_PRELOAD"}
    env["BUFSHIM_BUILD_DIR"] = str(BUILD_DIR)
    env.update(extra)
    return env


def _run(argv, env, cwd, timeout, input, check, stdout=None, preexec_fn=None):
    p = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, timeout=timeout,
                       input=input, stdout=stdout if stdout is not None else subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors="replace",
                       preexec_fn=preexec_fn)
    if p.stdout is None:
        p.stdout = ""
    assert_no_sanitizer_report(p.stderr)
    if check and p.returncode != 0:
        pytest.fail(f"{argv} exited with {p.returncode}\nstdout:\n{p.stdout[-3000:]}\n"
                    f"stderr:\n{p.stderr[-3000:]}")
    return p


def run_plain(argv, env=None, cwd=None, timeout=120, input=None, check=True, stdout=None,
              preexec_fn=None):
    e = _clean_env(env)
    _third_party_leaks_off(argv, e)
    return _run(argv, e, cwd, timeout, input, check, stdout, preexec_fn)


def run_shimmed(argv, paths=None, interval=None, fsync=None, debug=None, stats=None, env=None,
                cwd=None, timeout=120, input=None, check=True, strace=None, stdout=None,
                preexec_fn=None, strace_calls="write,writev,pwrite64,openat,openat2,open"):
    e = shim_env(paths, interval, fsync, debug, stats, env)
    _third_party_leaks_off(argv, e)
    if strace is not None:
        if STRACE is None:
            pytest.fail("strace is not installed")
        # strace itself must not run under the shim: hand LD_PRELOAD to the tracee only.
        preload = e.pop("LD_PRELOAD")
        if SANITIZER == "address":  # LeakSanitizer cannot run under ptrace
            e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        argv = [STRACE, "-f", "-y", "-ttt", "-e", f"trace={strace_calls}",
                "-o", str(strace), "-E", f"LD_PRELOAD={preload}", *argv]
    return _run(argv, e, cwd, timeout, input, check, stdout, preexec_fn)


_STRACE_CALL = re.compile(
    r"^(?P<pid>\d+)\s+(?P<t>\d+\.\d+)\s+(?P<call>write|writev|pwrite64)\((?P<fd>\d+)<(?P<path>[^>]*)>,")
_STRACE_RET = re.compile(r"\)\s+=\s+(?P<ret>-?\d+)")
_STRACE_RESUMED = re.compile(
    r"^(?P<pid>\d+)\s+\d+\.\d+\s+<\.\.\. (?P<call>write|writev|pwrite64) resumed>")


def strace_writes(log_path, file_path):
    file_path = str(file_path)
    out, unfinished = [], {}
    for line in pathlib.Path(log_path).read_text(errors="replace").splitlines():
        m = _STRACE_CALL.match(line)
        if m:
            call = (float(m.group("t")), int(m.group("pid")), m.group("call"), m.group("path"))
            if line.endswith("<unfinished ...>"):
                unfinished[call[1]] = call  # another thread's line came in between
                continue
        else:
            m = _STRACE_RESUMED.match(line)
            if not m or int(m.group("pid")) not in unfinished:
                continue
            call = unfinished.pop(int(m.group("pid")))
        r = _STRACE_RET.search(line)
        if r and call[3] == file_path:
            out.append((call[0], call[1], call[2], int(r.group("ret"))))
    return out


def _absolute_paths(paths, workdir):
    if isinstance(paths, str):
        paths = paths.split(":")
    return [p if p.startswith("/") or p in ("stdout", "stderr") else f"{workdir}/{p}"
            for p in paths]


def _files(root):
    return sorted(str(p.relative_to(root)) for p in pathlib.Path(root).rglob("*")
                  if p.is_file() or (p.is_symlink() and not p.exists()))


def sorted_lines(data):
    return sorted(data.splitlines(keepends=True))


def read_stats(path):
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_diverted(stats, what=""):
    summary = [(s.get("path"), s.get("records"), s.get("batches")) for s in stats]
    assert any(s["records"] > s["batches"] for s in stats), (
        f"{what}: the shimmed run diverted nothing (no target with more records than "
        f"batches in BUFSHIM_STATS): {summary or 'no report at all'}")


def _metadata(path, times):
    st = os.lstat(path)
    m = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size,
         "xattrs": xattrs(path)}
    if times:
        m["mtime_ns"] = st.st_mtime_ns
    return m


class SameFiles(tuple):
    """(plain_dir, shim_dir, plain_results, shim_results), and .stats."""

    def __new__(cls, plain_dir, shim_dir, plain_results, shim_results, stats):
        self = super().__new__(cls, (plain_dir, shim_dir, plain_results, shim_results))
        self.plain_dir, self.shim_dir = plain_dir, shim_dir
        self.plain_results, self.shim_results = plain_results, shim_results
        self.stats = stats
        return self


def assert_same_files(scenario, tmp_path, paths=("*",), interval="0.3", env=None, compare=None,
                      same_stdout=True, diverted=True, times=False):
    plain_dir = pathlib.Path(tmp_path) / "plain"
    shim_dir = pathlib.Path(tmp_path) / "shim"
    stats_file = pathlib.Path(tmp_path) / "shim.stats"
    plain_dir.mkdir()
    shim_dir.mkdir()
    plain_results, shim_results = [], []
    stats_files = []

    def plain_run(argv, **kw):
        kw.setdefault("cwd", plain_dir)
        kw["env"] = {**(env or {}), **(kw.get("env") or {})}
        r = run_plain(argv, **kw)
        plain_results.append(r)
        return r

    def shim_run(argv, **kw):
        kw.setdefault("cwd", shim_dir)
        kw["env"] = {**(env or {}), **(kw.get("env") or {})}
        kw.setdefault("paths", _absolute_paths(paths, shim_dir))
        kw.setdefault("interval", interval)
        kw.setdefault("stats", stats_file)
        if str(kw["stats"]) != "stderr" and kw["stats"] not in stats_files:
            stats_files.append(kw["stats"])
        r = run_shimmed(argv, **kw)
        shim_results.append(r)
        return r

    scenario(plain_dir, plain_run)
    scenario(shim_dir, shim_run)

    plain_files, shim_files = _files(plain_dir), _files(shim_dir)
    assert plain_files == shim_files, "different sets of files"
    assert plain_files, "the scenario left no files to compare"
    for rel in plain_files:
        a, b = plain_dir / rel, shim_dir / rel
        if a.is_symlink() or b.is_symlink():
            assert os.readlink(a) == os.readlink(b), rel
            continue
        da, db = a.read_bytes(), b.read_bytes()
        if compare is not None:
            assert compare(rel, da, db), f"{rel}: contents differ ({len(da)} vs {len(db)} bytes)"
        else:
            assert da == db, f"{rel}: contents differ ({len(da)} vs {len(db)} bytes)"
        ma, mb = _metadata(a, times), _metadata(b, times)
        assert ma == mb, f"{rel}: metadata differ: without the shim {ma}, with it {mb}"
    if same_stdout:
        assert [r.stdout for r in plain_results] == [r.stdout for r in shim_results]
    stats = [s for f in stats_files for s in read_stats(f)]
    if diverted:
        assert shim_results, "the scenario ran nothing under the shim"
        assert_diverted(stats, "assert_same_files")
    return SameFiles(plain_dir, shim_dir, plain_results, shim_results, stats)
