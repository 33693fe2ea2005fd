"""Exit paths, exec and child processes flush first (doc/behaviour.md §9): nothing lost,
nothing doubled, children's bytes after the parent's earlier bytes."""
import subprocess

import pytest

from conftest import assert_no_sanitizer_report
from lifecycle_util import lifecycle, parse_records, shim_env, tag_order
from shim_fixture import assert_diverted, read_stats

LONG = "30"  # nothing reaches the file by the interval during these tests
N = 500


def run(tmp_path, mode, shimmed=True):
    """One run of the writer; a shimmed one must prove (BUFSHIM_STATS) that it diverted."""
    path = tmp_path / ("shim.log" if shimmed else "plain.log")
    stats = tmp_path / "shim.stats"
    # An exec replaces the process before its report at exit: there the debug lines
    # of the batches are the proof (fewer batches than the program's writes).
    execs = mode in ("exec", "execvpe", "fexecve")
    extra = {"BUFSHIM_DEBUG": "1"} if execs else {"BUFSHIM_STATS": stats}
    env = shim_env([str(tmp_path / "shim.log")], LONG, extra) if shimmed else None
    p = lifecycle(path, mode, N, env=env)
    assert_no_sanitizer_report(p.stderr)
    if shimmed and execs:
        batches = [ln for ln in p.stderr.splitlines() if ln.startswith("bufshim: batch ")]
        assert 1 <= len(batches) < N, p.stderr
    elif shimmed:
        assert_diverted(read_stats(stats), f"lifecycle_writer {mode}")
    return p, path.read_bytes()


@pytest.mark.parametrize("mode", ["return", "exit", "_exit", "_Exit", "quick_exit", "exec",
                                  "execvpe", "fexecve"])
def test_exit_and_exec_paths_flush(tmp_path, mode):
    ref, ref_data = run(tmp_path, mode, shimmed=False)
    p, data = run(tmp_path, mode)
    assert p.returncode == ref.returncode == 0, p.stderr
    assert data == ref_data
    assert parse_records(data) == {"p": list(range(N))}


def test_failed_exec_keeps_buffering(tmp_path):
    ref, ref_data = run(tmp_path, "exec-fail", shimmed=False)
    p, data = run(tmp_path, "exec-fail")
    assert p.returncode == 0, p.stderr
    assert data == ref_data
    assert tag_order(data) == "pq"


@pytest.mark.parametrize("mode", ["fork", "vfork-exec", "posix_spawn", "system", "popen"])
def test_children_follow_the_parents_earlier_bytes(tmp_path, mode):
    ref, ref_data = run(tmp_path, mode, shimmed=False)
    p, data = run(tmp_path, mode)
    assert p.returncode == ref.returncode == 0, p.stderr
    assert data == ref_data
    recs = parse_records(data)
    assert recs["p"] == list(range(N)) and recs["q"] == list(range(N))
    if mode == "fork":
        assert tag_order(data) == "pcq"
        assert recs["c"] == list(range(N))


def test_multiprocessing_pool_of_forked_workers(tmp_path):
    """python3 multiprocessing (fork start method; workers end with os._exit):
    every line present once."""
    log = tmp_path / "pool.log"
    code = f"""
import logging, multiprocessing, os
def work(i):
    with open({str(log)!r}, "a") as f:
        for j in range(200):
            f.write(f"w {{i}} {{j}} {{os.getpid()}}\\n")
            f.flush()
    return i
if __name__ == "__main__":
    with open({str(log)!r}, "a") as f:
        f.write("parent start\\n")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        assert sorted(pool.map(work, range(40))) == list(range(40))
    with open({str(log)!r}, "a") as f:
        f.write("parent end\\n")
"""
    p = subprocess.run(["/usr/bin/python3", "-c", code],
                       env=shim_env([str(tmp_path / "*.log")], "0.2",
                                    {"BUFSHIM_STATS": tmp_path / "shim.stats"}),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert_diverted(read_stats(tmp_path / "shim.stats"), "multiprocessing")
    lines = log.read_text().splitlines()
    assert lines[0] == "parent start" and lines[-1] == "parent end"
    body = lines[1:-1]
    assert len(body) == 40 * 200
    seen = {(int(l.split()[1]), int(l.split()[2])) for l in body}
    assert len(seen) == 40 * 200, "a line is missing or doubled"
