"""Helpers for the lifecycle tests (exit paths, children, signals, faults)."""
import re
import subprocess

import shim_fixture
from conftest import helper_path


def shim_env(paths, interval="1", extra=None):
    """Environment that loads the shim for `paths` (a list of globs/words)."""
    return shim_fixture.shim_env(paths, interval, env=extra)


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
