"""Helpers for the lifecycle tests (exit paths, children, signals, faults)."""
import os
import re
import subprocess

from conftest import BUILD_DIR, sanitizer_runtime, helper_path

SHIM = BUILD_DIR / "src" / "libbufshim.so"


def shim_env(paths, interval="1", extra=None):
    """Environment that loads the shim for `paths` (a list of globs/words)."""
    env = dict(os.environ)
    preload = [str(SHIM)]
    rt = sanitizer_runtime()
    if rt:
        preload.insert(0, rt)
    env["LD_PRELOAD"] = ":".join(preload)
    env["BUFSHIM_PATHS"] = ":".join(paths)
    env["BUFSHIM_INTERVAL"] = str(interval)
    if rt:
        # Programs like bash and python3 leak by design; only reports about the
        # shim's own errors matter here.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    env.update(extra or {})
    return env


def lifecycle(path, mode, n=1000, env=None, timeout=60):
    argv = [str(helper_path("lifecycle_writer")), str(path), mode, str(n)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def parse_records(data):
    """{tag: [i, ...]} from lines "<tag> <i>"; fails on a torn or foreign line."""
    out = {}
    for line in data.decode().splitlines():
        m = re.fullmatch(r"([a-z]) (\d+)", line)
        assert m, f"torn or foreign line {line!r}"
        out.setdefault(m.group(1), []).append(int(m.group(2)))
    return out


def tag_order(data):
    """The sequence of tags as they appear, runs collapsed: b"p..c..q.." -> "pcq"."""
    tags = []
    for line in data.decode().splitlines():
        if not tags or tags[-1] != line[0]:
            tags.append(line[0])
    return "".join(tags)
