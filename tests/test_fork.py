"""fork and exec from multi-threaded programs: no deadlock, every record exactly
once and whole, children after the parent's earlier bytes (doc/behaviour.md §9)."""
import re
import subprocess

from conftest import assert_no_sanitizer_report, helper_path
from lifecycle_util import shim_env
from shim_fixture import assert_diverted, read_stats


def run_stress(tmp_path, threads, children, mode, timeout):
    argv = [str(helper_path("fork_stress")), str(tmp_path), str(threads), str(children), mode]
    stats = tmp_path / "shim.stats"  # not a *.log: the report is no target
    p = subprocess.run(argv, env=shim_env([str(tmp_path / "*.log")], "0.05",
                                          {"BUFSHIM_STATS": stats}),
                       capture_output=True, text=True, timeout=timeout)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert_diverted(read_stats(stats), "fork_stress")
    counts = {}
    for line in p.stdout.splitlines():
        k, n = line.split()
        counts[int(k[1:])] = int(n)
    assert len(counts) == threads
    return counts


def check_files(tmp_path, counts, children, child_tag):
    """Thread k's record i went to file i % 3: every one there once, in order;
    every child's three records there once."""
    pat = re.compile(r"([tcx])(\d+) (\d+)")
    seen_child = set()
    for f, name in enumerate(["a.log", "b.log", "c.log"]):
        next_i = {k: f for k in counts}  # the first record of thread k in file f
        for line in (tmp_path / name).read_text().splitlines():
            m = pat.fullmatch(line)
            assert m, f"{name}: torn line {line!r}"
            tag, a, b = m.group(1), int(m.group(2)), int(m.group(3))
            if tag == "t":
                assert b == next_i[a], f"{name}: thread {a} record {b}, expected {next_i[a]}"
                next_i[a] += 3
            else:
                assert tag == child_tag and b == f, line
                assert (a, f) not in seen_child, f"{name}: child {a} twice"
                seen_child.add((a, f))
        for k, n in counts.items():
            expected_end = f + 3 * ((n - f + 2) // 3) if n > f else f
            assert next_i[k] == expected_end, f"{name}: thread {k} stops at {next_i[k]}"
    assert len(seen_child) == 3 * children


def test_fork_200_times_with_8_threads_appending(tmp_path):
    """No deadlock (the timeout would fire), nothing lost or doubled."""
    counts = run_stress(tmp_path, 8, 200, "fork", timeout=240)
    check_files(tmp_path, counts, 200, "c")


def test_fork_and_exec_100_children_with_8_threads_on_3_targets(tmp_path):
    """The stress test: children exec /bin/sh (under its own shim) writing
    to the same three files."""
    counts = run_stress(tmp_path, 8, 100, "exec", timeout=300)
    check_files(tmp_path, counts, 100, "x")
