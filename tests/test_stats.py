"""BUFSHIM_STATS: the per-target report at exit (src/shim/stats.c).

Two levels: a driver compiled here links stats.c with the engine directly, so the
report's numbers and formats are checked against known work; then real programs
run through the launcher with --stats and BUFSHIM_STATS=FILE.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import BUILD_DIR, SANITIZER, SOURCE_DIR, assert_no_sanitizer_report
from shim_fixture import launcher_env, run_shimmed

LAUNCHER = SOURCE_DIR / "tools" / "bufshim"
PYTHON = "/usr/bin/python3"

DRIVER_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine_i.h"

void bs_stats_report(const char *dest);
void bs_stats_retire(bufshim_writer *w);

static int fails_left = 1;

/* Fails its first call with -EIO, then consumes everything. */
static ssize_t flaky_sink(void *ctx, const void *data, size_t len)
{
    (void)ctx; (void)data;
    if (fails_left > 0) { fails_left--; return -EIO; }
    return (ssize_t)len;
}

/* One incarnation of a writer to path: n records of 10 bytes in one batch; retired
 * and closed unless keep. */
static bufshim_writer *incarnation(const char *path, int n, int keep)
{
    struct bufshim_options o = {.interval = 3600};
    bufshim_writer *w = bufshim_open_file(path, &o);
    if (!w) exit(1);
    for (int i = 0; i < n; i++)
        if (bufshim_append(w, "ten bytes\n", 10)) exit(1);
    if (bufshim_flush(w) != 10 * n) exit(1);
    if (keep) return w;
    bs_stats_retire(w);
    if (bufshim_close(w)) exit(1);
    return NULL;
}

/* stats_driver DEST PATH1 PATH2 PATH3 PATH4: PATH1 gets 3 batches (10+20+30
 * records of 50 bytes), PATH2 one record of 7 bytes, a flaky sink one failure
 * episode; PATH3 three writers one after the other (5, 3, 2 records), the last
 * still open; PATH4 two writers (4, 6 records), both retired. */
int main(int argc, char **argv)
{
    if (argc == 2) { /* no writer at all */
        bs_engine_shutdown();
        bs_stats_report(argv[1]);
        return 0;
    }
    if (argc != 6) return 2;
    /* Open and never written: no line. */
    char idle_path[4096];
    snprintf(idle_path, sizeof idle_path, "%s.idle", argv[2]);
    struct bufshim_options oi = {.interval = 3600};
    if (!bufshim_open_file(idle_path, &oi)) return 1;
    incarnation(argv[4], 5, 0);
    incarnation(argv[5], 4, 0);
    incarnation(argv[4], 3, 0);
    incarnation(argv[5], 6, 0);
    incarnation(argv[4], 2, 1);
    /* Opened and closed without a byte: not a target worth a line. */
    struct bufshim_options o0 = {.interval = 3600};
    bufshim_writer *empty = bufshim_open_file(argv[5], &o0);
    bs_stats_retire(empty);
    bufshim_close(empty);
    struct bufshim_options o = {.interval = 3600};
    bufshim_writer *a = bufshim_open_file(argv[2], &o);
    bufshim_writer *b = bufshim_open_file(argv[3], &o);
    bufshim_writer *c = bs_writer_open_named(flaky_sink, NULL, &o, "flaky \"sink\"\n");
    if (!a || !b || !c) { perror("open"); return 1; }
    char rec[50];
    memset(rec, 'x', sizeof rec);
    rec[49] = '\n';
    for (int batch = 1; batch <= 3; batch++) {
        for (int i = 0; i < 10 * batch; i++)
            if (bufshim_append(a, rec, sizeof rec)) return 1;
        if (bufshim_flush(a) != 10 * batch * 50) return 1;
    }
    if (bufshim_append(b, "seven\n\n", 7)) return 1;
    if (bufshim_append(c, "abc", 3)) return 1;
    if (bufshim_flush(c) != -EIO) return 1;
    if (bufshim_flush(c) != 3) return 1;
    bs_engine_shutdown();
    bs_stats_report(argv[1]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def stats_driver(tmp_path_factory):
    engine = BUILD_DIR / "src" / "libbufshim_engine.a"
    if not engine.exists():
        pytest.fail(f"{engine} is not built")
    d = tmp_path_factory.mktemp("stats_driver")
    (d / "driver.c").write_text(DRIVER_C)
    exe = d / "stats_driver"
    flags = {"address": ["-fsanitize=address,undefined"],
             "thread": ["-fsanitize=thread"]}.get(SANITIZER, [])
    cmd = (["gcc", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Werror"] + flags +
           ["-I", str(SOURCE_DIR / "include"), "-I", str(SOURCE_DIR / "src" / "engine"),
            "-I", str(SOURCE_DIR / "src" / "shim"), "-o", str(exe), str(d / "driver.c"),
            str(SOURCE_DIR / "src" / "shim" / "stats.c"), str(engine), "-pthread"])
    c = subprocess.run(cmd, capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    return exe


def run_driver(exe, dest, tmp_path):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    p = subprocess.run([str(exe), dest, str(tmp_path / "a.log"), str(tmp_path / "b\tlog"),
                        str(tmp_path / "rot.log"), str(tmp_path / "gone.log")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    return p


def test_json_report_has_exact_numbers(stats_driver, tmp_path):
    dest = tmp_path / "stats.jsonl"
    dest.write_text('{"earlier": "line"}\n')  # the report appends
    p = run_driver(stats_driver, str(dest), tmp_path)
    lines = dest.read_text().splitlines()
    assert lines[0] == '{"earlier": "line"}'
    recs = {r["path"]: r for r in map(json.loads, lines[1:])}
    assert set(recs) == {str(tmp_path / "a.log"), str(tmp_path / "b\tlog"),
                         'flaky "sink"\n', str(tmp_path / "rot.log"),
                         str(tmp_path / "gone.log")}
    assert len(lines) == 6  # one line per name, retired writers merged
    rot = recs[str(tmp_path / "rot.log")]
    assert (rot["bytes"], rot["records"], rot["batches"], rot["largest_batch"]) == \
        (100, 10, 3, 50)
    assert rot["batch_ns_max"] >= rot["batch_ns_p50"] > 0
    gone = recs[str(tmp_path / "gone.log")]
    assert (gone["bytes"], gone["records"], gone["batches"], gone["largest_batch"],
            gone["unwritten"]) == (100, 10, 2, 60, 0)
    a = recs[str(tmp_path / "a.log")]
    assert a["pid"] == a["pid"] and a["pid"] > 0
    assert a["bytes"] == 60 * 50 == (tmp_path / "a.log").stat().st_size
    assert a["records"] == 60
    assert a["batches"] == 3
    assert a["largest_batch"] == 30 * 50
    assert a["peak_buffered"] == 30 * 50
    assert 0 < a["batch_ns_p50"] <= a["batch_ns_max"]
    assert a["failure_episodes"] == 0 and a["unwritten"] == 0
    b = recs[str(tmp_path / "b\tlog")]
    assert (b["bytes"], b["records"], b["batches"], b["largest_batch"]) == (7, 1, 1, 7)
    assert (tmp_path / "b\tlog").read_bytes() == b"seven\n\n"
    c = recs['flaky "sink"\n']
    assert c["failure_episodes"] == 1 and c["batches"] == 1 and c["unwritten"] == 0
    assert set(a) == {"pid", "path", "bytes", "records", "batches", "largest_batch",
                      "peak_buffered", "batch_ns_p50", "batch_ns_max",
                      "failure_episodes", "unwritten"}
    assert "statistics" not in p.stderr


def test_stderr_table(stats_driver, tmp_path):
    p = run_driver(stats_driver, "stderr", tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("bufshim: ")]
    head = next(i for i, ln in enumerate(lines) if "statistics of process" in ln)
    header = lines[head + 1].split()
    assert header[1:] == ["bytes", "records", "batches", "largest", "peak", "p50", "max",
                          "failures", "path"]
    rows = {}
    for ln in lines[head + 2:]:
        m = re.match(r"bufshim: +(\d+(?:\.\d)? (?:B|KiB|MiB)) +(\d+) +(\d+) +"
                     r"(\S+ \S+) +(\S+ \S+) +(\d+\.\d\d) +(\d+\.\d\d) +(\d+)  (.*)$", ln)
        assert m, ln
        rows[m.group(9)] = m.groups()
    a = rows[str(tmp_path / "a.log")]
    assert a[:5] == ("2.9 KiB", "60", "3", "1.5 KiB", "1.5 KiB")
    assert float(a[5]) <= float(a[6])
    assert a[7] == "0"
    assert rows[str(tmp_path / "b?log")][:5] == ("7 B", "1", "1", "7 B", "7 B")
    assert rows['flaky "sink"?'][7] == "1"
    # Every row is aligned with the header: the path column starts at one place.
    assert len(rows) == 5 == len(lines) - head - 2
    assert rows[str(tmp_path / "rot.log")][:5] == ("100 B", "10", "3", "50 B", "50 B")
    assert rows[str(tmp_path / "gone.log")][:5] == ("100 B", "10", "2", "60 B", "60 B")
    starts = {ln.index("  ", 70) for ln in lines[head + 2:]}
    assert len(starts) == 1


def test_a_process_without_targets_says_nothing(stats_driver, tmp_path):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    for dest in ("stderr", str(tmp_path / "s.json")):
        p = subprocess.run([str(stats_driver), dest], capture_output=True, text=True,
                           timeout=60, env=env)
        assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    assert not (tmp_path / "s.json").exists()


def test_unwritable_destination_gives_one_line(stats_driver, tmp_path):
    p = run_driver(stats_driver, str(tmp_path / "no" / "such" / "dir.json"), tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if "BUFSHIM_STATS" in ln]
    assert len(lines) == 1 and "No such file or directory" in lines[0]


# Through the shim, with real programs.

PY_WRITER = """
import sys
with open(sys.argv[1], "a") as f:
    for i in range(2000):
        f.write(f"record {i}\\n")
        f.flush()
with open(sys.argv[2], "a") as f:
    f.write("other\\n")
"""


def test_launcher_stats_prints_the_table_at_exit(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    p = subprocess.run([str(LAUNCHER), "--stats", "-i", "0.2", "-p", f"{tmp_path}/*.log",
                        "--", PYTHON, "-c", PY_WRITER, str(a), str(b)],
                       env=launcher_env(), capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert a.read_text() == "".join(f"record {i}\n" for i in range(2000))
    rows = {ln.split()[-1]: ln for ln in p.stderr.splitlines()
            if ln.startswith("bufshim: ") and ln.rstrip().endswith(".log")}
    assert set(rows) == {str(a), str(b)}, p.stderr
    fields = rows[str(a)].split()
    size = a.stat().st_size
    assert fields[1:3] == [f"{size / 1024:.1f}", "KiB"]
    assert fields[3] == "2000"  # one record per flush()
    assert 1 <= int(fields[4]) < 2000  # batched
    assert rows[str(b)].split()[1:5] == ["6", "B", "1", "1"]


def test_stats_file_has_one_json_line_per_target(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    out = tmp_path / "stats.json"
    p = subprocess.run([str(LAUNCHER), f"--stats={out}", "-p", f"{tmp_path}/*.log",
                        "--", PYTHON, "-c", PY_WRITER, str(a), str(b)],
                       env=launcher_env(), capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert "statistics" not in p.stderr
    recs = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(recs) == {str(a), str(b)}
    assert recs[str(a)]["bytes"] == a.stat().st_size
    assert recs[str(a)]["records"] == 2000
    assert 1 <= recs[str(a)]["batches"] < 2000
    assert recs[str(a)]["unwritten"] == 0
    assert recs[str(b)]["bytes"] == 6


def test_no_stats_without_the_variable(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    p = subprocess.run([str(LAUNCHER), "-p", f"{tmp_path}/*.log",
                        "--", PYTHON, "-c", PY_WRITER, str(a), str(b)],
                       env=launcher_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0
    assert "statistics" not in p.stderr
    assert a.stat().st_size > 0


def test_a_file_reopened_for_every_record_counts_whole(tmp_path):
    """bash's echo >> opens and closes the file for each line; between batches the
    shim retires the file's writer and makes a new one. The report still shows one
    line for the path with every record and byte (bs_stats_retire)."""
    if SANITIZER == "thread":
        pytest.skip("bash crashes with the TSan runtime preloaded, with or without bufshim")
    log = tmp_path / "a.log"
    out = tmp_path / "stats.json"
    loop = ('for i in $(seq 300); do echo "line $i" >> "$1"; '
            'if [ $((i % 50)) = 0 ]; then sleep 0.1; fi; done')
    p = subprocess.run([str(LAUNCHER), f"--stats={out}", "-i", "0.02", "-p", f"{tmp_path}/*.log",
                        "--", "bash", "-c", loop, "_", str(log)],
                       env=launcher_env(), capture_output=True, text=True, timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert rec["path"] == str(log)
    assert rec["records"] == 300, (
        "counters of retired writers are missing: src/shim/target.c's reap() must call "
        "bs_stats_retire(w) (weak, when bs_cfg.stats is set) before bufshim_close(w)")
    assert rec["bytes"] == log.stat().st_size
    assert 6 <= rec["batches"] < 300  # the pauses give at least one batch each
    assert rec["unwritten"] == 0


def test_relative_stats_file_is_taken_against_the_starting_directory(tmp_path):
    """BUFSHIM_STATS=rel.json: the report lands where the program started, even
    after it changed directory and removed the variable from its environment."""
    (tmp_path / "sub").mkdir()
    code = ("import os\n"
            "os.chdir('sub'); os.environ.pop('BUFSHIM_STATS', None)\n"
            "with open('a.log', 'a') as f:\n"
            "    f.write('x\\n')\n")
    run_shimmed(["/usr/bin/python3", "-c", code], paths=[f"{tmp_path}/sub/*.log"],
                stats="rel.json", cwd=tmp_path)
    report = (tmp_path / "rel.json").read_text()
    assert f"{tmp_path}/sub/a.log" in report
    assert not (tmp_path / "sub" / "rel.json").exists()
