"""The launcher tools/bufshim: options, environment, LD_PRELOAD, exit codes, warnings."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import (BUILD_DIR, SANITIZER, SOURCE_DIR, assert_no_sanitizer_report,
                      sanitizer_runtime)
from shim_fixture import launcher_env

LAUNCHER = SOURCE_DIR / "tools" / "bufshim"
LIBRARY = BUILD_DIR / "src" / "libbufshim.so"
PYTHON = "/usr/bin/python3"
# A program that prints the variables the launcher sets, as JSON.
SHOW_ENV = [PYTHON, "-c",
            "import json, os; print(json.dumps({k: v for k, v in os.environ.items()"
            " if k.startswith('BUFSHIM_') or k == 'LD_PRELOAD'}))"]


def run(args, env=None, cwd=None, check_sanitizer=True, timeout=60):
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is not built")
    p = subprocess.run([str(LAUNCHER)] + [str(a) for a in args], env=env or launcher_env(),
                       cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check_sanitizer:
        assert_no_sanitizer_report(p.stderr)
    return p


def shown_env(args, **kw):
    p = run(list(args) + ["--"] + SHOW_ENV, **kw)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p


def expected_preload(existing=""):
    lib = os.path.realpath(LIBRARY)
    rt = sanitizer_runtime()
    parts = ([rt] if rt else []) + [lib] + [e for e in re.split("[: ]", existing) if e]
    return ":".join(os.path.realpath(e) if os.path.exists(e) else e for e in parts)


def real(preload):
    """LD_PRELOAD with each existing entry's symlinks resolved (the launcher and
    gcc name one sanitizer runtime by different paths)."""
    return ":".join(os.path.realpath(e) if os.path.exists(e) else e
                    for e in preload.split(":"))


def test_help_lists_every_option():
    p = run(["--help"])
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: bufshim ")
    for opt in ("--path=GLOB", "--interval=DURATION", "--fsync", "--stats", "--debug",
                "--help", "--version", "125", "126", "127"):
        assert opt in p.stdout, opt
    assert p.stderr == ""


def test_version_is_the_project_version():
    m = re.search(r"version\s*:\s*'([^']+)'", (SOURCE_DIR / "meson.build").read_text())
    for opt in ("--version", "-V"):
        p = run([opt])
        assert p.returncode == 0
        assert p.stdout == f"bufshim {m.group(1)}\n"


def test_options_set_the_environment():
    env, p = shown_env(["-p", "/var/log/app/*.log", "--path=/data/", "-pstdout",
                        "-i", "500ms", "--fsync", "--debug", "--stats"])
    assert env["BUFSHIM_PATHS"] == "/var/log/app/*.log:/data/:stdout"
    assert env["BUFSHIM_INTERVAL"] == "500ms"
    assert env["BUFSHIM_FSYNC"] == "1"
    assert env["BUFSHIM_DEBUG"] == "1"
    assert env["BUFSHIM_STATS"] == "stderr"
    assert real(env["LD_PRELOAD"]) == expected_preload()


def test_unset_options_leave_the_environment_alone():
    env, p = shown_env(["-p", "/x/*.log"])
    assert set(env) - {"BUFSHIM_BUILD_DIR"} == {"BUFSHIM_PATHS", "LD_PRELOAD"}
    assert p.stderr.count("bufshim:") == 0


def test_inherited_paths_are_kept_without_p():
    env, p = shown_env([], env=launcher_env(BUFSHIM_PATHS="/inherited/*.log"))
    assert env["BUFSHIM_PATHS"] == "/inherited/*.log"
    assert "bufshim:" not in p.stderr


def test_no_paths_at_all_warns_once():
    env, p = shown_env([])
    assert "BUFSHIM_PATHS" not in env
    lines = [line for line in p.stderr.splitlines() if line.startswith("bufshim:")]
    assert len(lines) == 1 and "nothing is buffered" in lines[0]


def test_stats_file_is_made_absolute(tmp_path):
    env, _ = shown_env(["-p", "/x", "--stats=out/stats.json"], cwd=tmp_path)
    assert env["BUFSHIM_STATS"] == str(tmp_path.resolve() / "out" / "stats.json")
    env, _ = shown_env(["-p", "/x", "--stats=/abs/s.json"])
    assert env["BUFSHIM_STATS"] == "/abs/s.json"


@pytest.mark.parametrize("duration", ["2", "0.25", ".5", "500ms", "2s", "10"])
def test_good_durations_pass_through(duration):
    env, _ = shown_env(["-p", "/x", "-i", duration])
    assert env["BUFSHIM_INTERVAL"] == duration


@pytest.mark.parametrize("args, words", [
    (["-p", "relative/*.log"], ["relative/*.log", "absolute"]),
    (["-p", "*.log"], ["*.log", "absolute"]),
    (["--path=./a.log"], ["./a.log", "absolute"]),
    (["-p", "/a:/b"], ["/a:/b", ":"]),
    (["-p", ""], ["empty"]),
    (["-i", "abc"], ["abc", "duration"]),
    (["-i", "0"], ["'0'", "duration"]),
    (["-i", "0ms"], ["0ms", "duration"]),
    (["-i", "-1"], ["-1", "duration"]),
    (["-i", "1.2.3"], ["1.2.3", "duration"]),
    (["-i", "5m"], ["5m", "duration"]),
    (["--interval="], ["duration"]),
    (["--stats="], ["FILE"]),
    (["-x"], ["unknown option", "-x"]),
    (["--frobnicate"], ["unknown option", "--frobnicate"]),
])
def test_own_errors_exit_125_without_running_the_program(tmp_path, args, words):
    marker = tmp_path / "ran"
    p = run(["-p", "/ok/*.log"] + args + ["--", "touch", marker])
    assert p.returncode == 125, p.stderr
    assert not marker.exists()
    first = p.stderr.splitlines()[0]
    assert first.startswith("bufshim: ")
    for w in words:
        assert w in first, (w, first)
    assert p.stdout == ""


def test_missing_option_argument_and_missing_program_exit_125():
    for args in (["-p"], ["-i"], ["-p", "/x"], ["-p", "/x", "--"]):
        p = run(args)
        assert p.returncode == 125, (args, p.stderr)
        assert p.stderr.startswith("bufshim: ")


def test_relative_glob_message_names_the_glob_and_suggests_a_fix(tmp_path):
    p = run(["-p", "relative/*.log", "--", "true"], cwd=tmp_path)
    assert p.returncode == 125
    assert "'relative/*.log'" in p.stderr
    assert f"'{tmp_path}/relative/*.log'" in p.stderr


def test_program_not_found_exits_127(tmp_path):
    for prog in ("bufshim-no-such-program", str(tmp_path / "missing")):
        p = run(["-p", "/x", "--", prog])
        assert p.returncode == 127, p.stderr
        assert prog in p.stderr


def test_program_not_executable_exits_126(tmp_path):
    f = tmp_path / "data.txt"
    f.write_text("echo hi\n")
    f.chmod(0o644)
    for prog in (str(f), str(tmp_path)):
        p = run(["-p", "/x", "--", prog])
        assert p.returncode == 126, p.stderr
        assert prog in p.stderr
    # Found on PATH but not executable, like execvp's EACCES.
    env = launcher_env(PATH=f"{tmp_path}:/usr/bin:/bin")
    p = run(["-p", "/x", "--", "data.txt"], env=env)
    assert p.returncode == 126, p.stderr


def test_path_search_skips_non_executable_candidates(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    (d1 / "prog").write_text(f"#!{PYTHON}\nprint('wrong')\n")
    (d1 / "prog").chmod(0o644)
    (d2 / "prog").write_text(f"#!{PYTHON}\nprint('right')\n")
    (d2 / "prog").chmod(0o755)
    p = run(["-p", "/x", "--", "prog"], env=launcher_env(PATH=f"{d1}:{d2}:/usr/bin:/bin"))
    assert (p.returncode, p.stdout) == (0, "right\n"), p.stderr


def test_exit_status_and_signal_pass_through():
    assert run(["-p", "/x", "--", PYTHON, "-c", "raise SystemExit(42)"]).returncode == 42
    p = run(["-p", "/x", "--", PYTHON, "-c", "import os; os.kill(os.getpid(), 15)"])
    assert p.returncode == -15  # died of the signal itself: no wrapper process


def test_program_replaces_the_launcher():
    proc = subprocess.Popen([str(LAUNCHER), "-p", "/x", "--", PYTHON, "-c",
                             "import os; print(os.getpid())"],
                            env=launcher_env(), stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert int(out) == proc.pid


def test_arguments_reach_the_program_unchanged():
    args = ["a b", "", "-p", "--", "*", "$HOME", "x\ny"]
    for sep in (["--"], []):
        p = run(["-p", "/x"] + sep + ["printf", "[%s]"] + args)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "".join(f"[{a}]" for a in args)


def test_library_is_loaded_into_the_program():
    p = run(["-p", "/x", "--", "cat", "/proc/self/maps"])
    assert p.returncode == 0
    assert os.path.realpath(LIBRARY) in p.stdout


@pytest.fixture(scope="module")
def tiny_lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("tinylib")
    src = d / "tiny.c"
    src.write_text("int bufshim_test_tiny_marker = 1;\n")
    lib = d / "libtiny.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_ld_preload_is_prepended_not_replaced(tiny_lib):
    existing = str(tiny_lib)
    p = run(["-p", "/x", "--", PYTHON, "-c",
             "import os; print(os.environ['LD_PRELOAD']); print(open('/proc/self/maps').read())"],
            env=launcher_env(LD_PRELOAD=existing))
    assert p.returncode == 0, p.stderr
    first, maps = p.stdout.split("\n", 1)
    assert real(first) == expected_preload(str(tiny_lib))
    assert str(tiny_lib) in maps and os.path.realpath(LIBRARY) in maps


def skip_under_tsan():
    if SANITIZER == "thread":
        pytest.skip("the launcher's shell (dash) crashes with the TSan runtime preloaded")


def test_library_is_not_added_twice():
    skip_under_tsan()
    env, _ = shown_env(["-p", "/x"], env=launcher_env(
        LD_PRELOAD=":".join(filter(None, [sanitizer_runtime(), os.path.realpath(LIBRARY)]))))
    assert real(env["LD_PRELOAD"]) == expected_preload()


def test_a_sanitizer_runtime_stays_first(tiny_lib):
    skip_under_tsan()
    # In a sanitizer run the real runtime must be there; otherwise a name that
    # only looks like one (the loader skips it with a warning).
    rt = sanitizer_runtime() or "/nonexistent/libasan.so.8"
    if not sanitizer_runtime():
        # A runtime that does not come first is left where it is.
        p = run(["-p", "/x", "--", PYTHON, "-c", "import os; print(os.environ['LD_PRELOAD'])"],
                env=launcher_env(LD_PRELOAD=f"{tiny_lib}:{rt}"), check_sanitizer=False)
        assert p.stdout.strip() == f"{os.path.realpath(LIBRARY)}:{tiny_lib}:{rt}", p.stderr
    p = run(["-p", "/x", "--", PYTHON, "-c", "import os; print(os.environ['LD_PRELOAD'])"],
            env=launcher_env(LD_PRELOAD=f"{rt}:{tiny_lib}"), check_sanitizer=False)
    assert p.stdout.strip() == f"{rt}:{os.path.realpath(LIBRARY)}:{tiny_lib}", p.stderr


def test_launcher_reached_through_a_symlink(tmp_path):
    link = tmp_path / "bin" / "bufshim"
    link.parent.mkdir()
    link.symlink_to(LAUNCHER)
    p = subprocess.run([str(link), "-p", "/x", "--"] + SHOW_ENV, env=launcher_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert real(json.loads(p.stdout)["LD_PRELOAD"]) == expected_preload()


def test_library_override(tmp_path, tiny_lib):
    env, _ = shown_env(["-p", "/x"], env=launcher_env(BUFSHIM_LIBRARY=str(tiny_lib)))
    assert env["LD_PRELOAD"].split(":")[-1] == str(tiny_lib)
    p = run(["-p", "/x", "--", "true"], env=launcher_env(BUFSHIM_LIBRARY=str(tmp_path / "no.so")))
    assert p.returncode == 125 and "no.so" in p.stderr


def _warnings(stderr):
    return [line for line in stderr.splitlines() if line.startswith("bufshim: warning")]


def test_dynamic_program_and_script_give_no_warning(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(f"#!{PYTHON}\n")
    script.chmod(0o755)
    for prog in ("/bin/true", str(script), PYTHON):
        p = run(["-p", "/x", "--", prog, "-c", "pass"] if prog == PYTHON
                else ["-p", "/x", "--", prog])
        assert p.returncode == 0, p.stderr
        assert _warnings(p.stderr) == [], (prog, p.stderr)


def test_static_program_warns_and_still_runs(tmp_path):
    src = tmp_path / "st.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("static ran"); return 7; }\n')
    for flags, name in ((["-static"], "st"), (["-static-pie"], "stpie")):
        exe = tmp_path / name
        c = subprocess.run(["cc"] + flags + ["-o", str(exe), str(src)],
                           capture_output=True, text=True)
        if c.returncode != 0:
            if name == "st":
                pytest.skip(f"cannot link a static program here (libc.a missing?): {c.stderr}")
            continue
        p = run(["-p", "/x", "--", exe])
        assert p.returncode == 7
        assert p.stdout == "static ran\n"
        w = _warnings(p.stderr)
        assert len(w) == 1 and "statically linked" in w[0] and str(exe) in w[0], p.stderr
    # The same program linked dynamically: no warning.
    exe = tmp_path / "dyn"
    subprocess.run(["cc", "-o", str(exe), str(src)], check=True)
    p = run(["-p", "/x", "--", exe])
    assert p.returncode == 7 and _warnings(p.stderr) == []


def test_setuid_program_warns(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a program another owner")
    exe = tmp_path / "suid-true"
    shutil.copy("/bin/true", exe)
    os.chown(exe, 65534, 65534)
    exe.chmod(0o4755)
    tmp_path.chmod(0o755)
    p = run(["-p", "/x", "--", exe])
    w = _warnings(p.stderr)
    assert len(w) == 1 and "setuid" in w[0], p.stderr
    # A setuid program owned by the caller runs with the shim: no warning.
    os.chown(exe, os.getuid(), os.getgid())
    exe.chmod(0o4755)
    p = run(["-p", "/x", "--", exe])
    assert _warnings(p.stderr) == [], p.stderr


def test_shell_syntax_is_posix():
    sh = shutil.which("dash") or shutil.which("sh")
    subprocess.run([sh, "-n", str(LAUNCHER)], check=True)
    if shutil.which("shellcheck"):
        c = subprocess.run(["shellcheck", "-s", "sh", str(LAUNCHER)],
                           capture_output=True, text=True)
        assert c.returncode == 0, c.stdout


def test_builds_the_library_when_missing(tmp_path):
    """From the source tree with no build yet: the launcher builds, then runs the
    program; the build's output goes to stderr only."""
    build = tmp_path / "build"
    env = launcher_env(BUFSHIM_BUILD_DIR=str(build))
    p = subprocess.run([str(LAUNCHER), "-p", "/x", "--", "echo", "program output"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout == "program output\n"
    assert (build / "src" / "libbufshim.so").exists()
    assert "building the library" in p.stderr
    # Second run: nothing to build, nothing said.
    p = subprocess.run([str(LAUNCHER), "-p", "/x", "--", "echo", "again"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "again\n", "")


def _demo_table(out):
    rows = {}
    for line in out.splitlines():
        # "with bufshim  1.02 s   2 opens, 1 writes" (slowfs), "... 1.02 s   1" (strace)
        m = re.match(r"\s+(without bufshim|with bufshim)\s+(\d+\.\d\d) s\s+"
                     r"(?:(\d+) opens, )?(\d+)(?: writes)?$", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), int(m.group(4)),
                                int(m.group(3)) if m.group(3) else None)
    return rows


@pytest.mark.parametrize("fuse", [True, False], ids=["slowfs", "tmpdir"])
def test_demo(fuse):
    """tools/demo, shortened: the files are identical, every echo reaches the
    filesystem without the shim, a few batches with it."""
    if SANITIZER == "thread":
        pytest.skip("bash crashes with the TSan runtime preloaded, with or without bufshim")
    if fuse and not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("FUSE is unusable here (/dev/fuse or fusermount3 missing)")
    if not fuse and not shutil.which("strace"):
        pytest.skip("the demo counts writes with strace when not on slowfs")
    lines = 400
    args = [str(SOURCE_DIR / "tools" / "demo"), "--lines", str(lines), "--interval", "5"]
    if not fuse:
        args.append("--no-fuse")
    p = subprocess.run(args, env=launcher_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "files identical: yes" in p.stdout
    assert ("counted by slowfs" if fuse else "counted by strace") in p.stdout
    rows = _demo_table(p.stdout)
    assert set(rows) == {"without bufshim", "with bufshim"}, p.stdout
    assert rows["without bufshim"][1] == lines
    # The loop takes well under 5 s: one batch at exit, perhaps one more.
    assert 1 <= rows["with bufshim"][1] <= 3, p.stdout
    if fuse:
        # Every echo opens the file; under the shim one open per batch plus one for the file.
        assert rows["without bufshim"][2] == lines, p.stdout
        assert rows["with bufshim"][2] <= rows["with bufshim"][1] + 1, p.stdout
