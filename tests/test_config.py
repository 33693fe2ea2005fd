"""Configuration (doc/behaviour.md §1): every bad value gives one stderr line and an inert shim; matching rules."""
import os

import pytest

from conftest import helper_path
from shim_fixture import run_plain, run_shimmed

INERT = "buffering is off, writes go straight to their files"


def ops(*args):
    return [str(helper_path("shim_ops")), *args]


# What the probe program prints when its write is buffered (0 on disk) or not (6).
BUFFERED, DIRECT = "rawsize 0\n", "rawsize 6\n"


def probe(tmp_path, name="a.log", **settings):
    settings.setdefault("paths", [f"{tmp_path}/*.log"])
    settings.setdefault("interval", 30)
    return run_shimmed(ops("open", "1", name, "a", "write", "1", "hello\\n", "rawsize", name),
                       cwd=tmp_path, **settings)


BAD = [
    ("BUFSHIM_INTERVAL", "abc", "not a duration"),
    ("BUFSHIM_INTERVAL", "-1", "not a duration"),
    ("BUFSHIM_INTERVAL", "0", "must be more than zero"),
    ("BUFSHIM_INTERVAL", "0ms", "must be more than zero"),
    ("BUFSHIM_INTERVAL", "1x", "not a duration"),
    ("BUFSHIM_INTERVAL", "2 s", "not a duration"),
    ("BUFSHIM_INTERVAL", "nan", "not a duration"),
    ("BUFSHIM_INTERVAL", "0x10", "not a duration"),
    ("BUFSHIM_FSYNC", "yes", "not 0 or 1"),
    ("BUFSHIM_FSYNC", "2", "not 0 or 1"),
    ("BUFSHIM_DEBUG", "true", "not 0 or 1"),
    ("BUFSHIM_PATHS", "logs/*.log", "is neither an absolute glob nor stdout/stderr"),
    ("BUFSHIM_PATHS", "stdot", "is neither an absolute glob nor stdout/stderr"),
    ("BUFSHIM_PATHS", "{dir}/*.log:relative", "is neither an absolute glob nor stdout/stderr"),
]


@pytest.mark.parametrize("var,value,reason", BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_bad_value_one_line_and_inert(tmp_path, var, value, reason):
    value = value.replace("{dir}", str(tmp_path))
    settings = {"paths": [f"{tmp_path}/*.log"], "interval": 30}
    env = {var: value}
    if var == "BUFSHIM_PATHS":
        settings["paths"] = value
        env = {}
    if var == "BUFSHIM_INTERVAL":
        settings.pop("interval")
    r = probe(tmp_path, env=env, **settings)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f'bufshim: {var}="{value}": '), lines[0]
    assert reason in lines[0] and lines[0].endswith(INERT), lines[0]
    assert r.stdout == DIRECT  # inert: the write went straight to the file
    # Output identical to an unshimmed run.
    (tmp_path / "a.log").unlink()
    plain = run_plain(ops("open", "1", "a.log", "a", "write", "1", "hello\\n", "rawsize",
                          "a.log"), cwd=tmp_path)
    assert plain.stdout == r.stdout


GOOD_INTERVALS = ["2", "0.25", "500ms", "2s", "30"]


@pytest.mark.parametrize("interval", GOOD_INTERVALS)
def test_good_intervals_buffer_silently(tmp_path, interval):
    r = probe(tmp_path, interval=interval)
    assert r.stderr == ""
    assert r.stdout == BUFFERED
    assert (tmp_path / "a.log").read_bytes() == b"hello\n"


def test_empty_values_mean_unset(tmp_path):
    r = probe(tmp_path, env={"BUFSHIM_FSYNC": "", "BUFSHIM_DEBUG": ""}, interval="")
    assert r.stderr == "" and r.stdout == BUFFERED


def test_no_paths_means_nothing_diverted(tmp_path):
    r = probe(tmp_path, paths="")
    assert r.stderr == "" and r.stdout == DIRECT


def test_glob_does_not_cross_slashes(tmp_path):
    (tmp_path / "sub").mkdir()
    r = probe(tmp_path, name="sub/a.log", paths=[f"{tmp_path}/*.log"])
    assert r.stdout == DIRECT
    r = probe(tmp_path, name="sub/b.log", paths=[f"{tmp_path}/*/*.log"])
    assert r.stdout == BUFFERED
    r = probe(tmp_path, name="sub/c.log", paths=[f"{tmp_path}/sub/?.log"])
    assert r.stdout == BUFFERED


@pytest.mark.parametrize("entry", ["{dir}/", "{dir}/**"])
def test_folder_entries_match_everything_below(tmp_path, entry):
    (tmp_path / "x" / "y").mkdir(parents=True)
    paths = [entry.replace("{dir}", str(tmp_path / "x"))]
    assert probe(tmp_path, name="x/y/deep.txt", paths=paths).stdout == BUFFERED
    assert probe(tmp_path, name="x/top.bin", paths=paths).stdout == BUFFERED
    assert probe(tmp_path, name="outside.txt", paths=paths).stdout == DIRECT


def test_given_path_is_folded_and_made_absolute(tmp_path):
    (tmp_path / "sub").mkdir()
    r = probe(tmp_path, name="sub/../sub/./a.log", paths=[f"{tmp_path}/sub/a.log"])
    assert r.stdout == BUFFERED


def test_canonical_path_matches_through_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    # Opened through the alias; only the canonical name matches.
    r = probe(tmp_path, name="alias/a.log", paths=[f"{tmp_path}/real/*.log"])
    assert r.stdout == BUFFERED
    # Opened through the alias; only the given name matches.
    r = probe(tmp_path, name="alias/b.log", paths=[f"{tmp_path}/alias/*.log"])
    assert r.stdout == BUFFERED


def test_stdout_word_diverts_fd_1_whatever_it_is(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        r = run_shimmed(ops("fd1", "hello\\n", "rawsize", "out.txt"), paths="stdout",
                        interval=30, cwd=tmp_path, stdout=f)
    assert out.read_text() == "hello\nrawsize 0\n"
    with open(out, "w") as f:
        run_shimmed(ops("fd1", "hello\\n", "rawsize", "out.txt"), paths="stderr",
                    interval=30, cwd=tmp_path, stdout=f)
    assert out.read_text() == "hello\nrawsize 6\n"
    # A pipe works too: the bytes arrive, in order.
    r = run_shimmed(ops("fd1", "a\\n", "fd2", "e\\n", "fd1", "b\\n"), paths="stdout:stderr",
                    interval=30)
    assert r.stdout == "a\nb\n" and r.stderr == "e\n"


def test_debug_prints_decisions_and_batches(tmp_path):
    r = probe(tmp_path, debug=1, interval="0.1")
    assert "bufshim: fd 3 -> " in r.stderr and "diverted" in r.stderr
    assert "bufshim: batch " in r.stderr
    assert all(line.startswith("bufshim: ") for line in r.stderr.splitlines())


def test_fsync_setting_syncs_each_batch(tmp_path):
    def fdatasyncs(fsync):
        trace = tmp_path / f"strace{fsync}.out"
        run_shimmed(ops("open", "1", "a.log", "a", "write", "1", "x\\n", "sleep", "400",
                        "write", "1", "y\\n"), paths=[f"{tmp_path}/*.log"], interval="0.1",
                    fsync=fsync, cwd=tmp_path, strace=trace, strace_calls="fdatasync")
        return sum(1 for line in trace.read_text().splitlines()
                   if "fdatasync(" in line and "a.log" in line)
    assert fdatasyncs(1) >= 2  # one per batch: the scheduled one and the final one
    assert fdatasyncs(0) == 0
