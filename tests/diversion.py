"""Proof that a shimmed run diverted (a test must fail against a shim that diverts nothing).

A with/without comparison passes trivially when the shim does nothing, so every one of
them also checks the shimmed run's ``BUFSHIM_STATS`` report: the target's records (write
calls the program made) must outnumber its batches (writes that reached the file).

``stats_lines(stats_path)``
    The JSON objects of a ``BUFSHIM_STATS`` file (an empty list when there is none).
``assert_diverted(stats_path, target, min_lines=1)``
    Sums the lines whose path is ``target`` (compared after ``realpath``) over every process
    that reported it and fails unless there are at least ``min_lines`` of them and their
    records exceed their batches. Returns ``(records, batches)``.
"""
import json
import os
import pathlib


def stats_lines(stats_path):
    p = pathlib.Path(stats_path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def assert_diverted(stats_path, target, min_lines=1):
    want = os.path.realpath(str(target))
    lines = [s for s in stats_lines(stats_path) if os.path.realpath(s["path"]) == want]
    assert len(lines) >= min_lines, (
        f"no diversion: {len(lines)} BUFSHIM_STATS lines for {want} (wanted {min_lines}); "
        f"all lines: {stats_lines(stats_path)}")
    records = sum(s["records"] for s in lines)
    batches = sum(s["batches"] for s in lines)
    assert records > batches, (
        f"no diversion: {want} had {records} records in {batches} batches: {lines}")
    return records, batches
