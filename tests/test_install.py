"""meson install: library, header, pkg-config file, launcher and man pages, and the
installed launcher running a program under the installed library."""
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import (BUILD_DIR, SANITIZER, SOURCE_DIR, assert_no_sanitizer_report,
                      sanitizer_runtime)

PYTHON = "/usr/bin/python3"


def project_version():
    return re.search(r"version\s*:\s*'([^']+)'", (SOURCE_DIR / "meson.build").read_text()).group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Installs the build under a temporary DESTDIR; returns (destdir, {name: path})
    where name is the installed file's base name and path is inside destdir."""
    if not (BUILD_DIR / "build.ninja").exists():
        pytest.fail(f"{BUILD_DIR} is not a configured build directory")
    dest = tmp_path_factory.mktemp("destdir")
    p = subprocess.run(["meson", "install", "-C", str(BUILD_DIR),
                        "--destdir", str(dest)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    mapping = json.loads(subprocess.run(["meson", "introspect", str(BUILD_DIR), "--installed"],
                                        capture_output=True, text=True, check=True).stdout)
    files = {}
    for target in mapping.values():
        files[os.path.basename(target)] = dest / target.lstrip("/")
    return dest, files


def test_everything_is_installed(installed):
    dest, files = installed
    for name in ("libbufshim.so", "bufshim.h", "bufshim.pc", "bufshim", "bufshim.1",
                 "bufshim.3"):
        assert name in files, f"meson does not install {name}"
        assert files[name].is_file(), f"{files[name]} missing after meson install"
    rel = {n: str(files[n].relative_to(dest)) for n in files}
    assert re.fullmatch(r".*/lib[^/]*(/[^/]+)?/libbufshim\.so", "/" + rel["libbufshim.so"])
    assert rel["bufshim.h"].endswith("include/bufshim.h")
    assert rel["bufshim.pc"].endswith("pkgconfig/bufshim.pc")
    assert rel["bufshim"].endswith("bin/bufshim")
    assert rel["bufshim.1"].endswith("man/man1/bufshim.1")
    assert rel["bufshim.3"].endswith("man/man3/bufshim.3")
    assert files["bufshim.h"].read_bytes() == (SOURCE_DIR / "include" / "bufshim.h").read_bytes()
    # Only the public header: the engine's and the shim's stay private.
    assert not [n for n in files if n.endswith("_i.h")]


def test_pkg_config_file(installed):
    _, files = installed
    pc = files["bufshim.pc"].read_text()
    assert re.search(r"^Version: " + re.escape(project_version()) + "$", pc, re.M)
    assert re.search(r"^Libs: .*-lbufshim\b", pc, re.M)
    assert re.search(r"^Cflags: .*-I\$\{includedir\}", pc, re.M)


def test_man_pages_are_roff(installed):
    _, files = installed
    for page, section in (("bufshim.1", "1"), ("bufshim.3", "3")):
        text = files[page].read_text()
        assert re.search(rf'^\.TH "?bufshim"? "?{section}"?', text, re.M), text[:300]
        if shutil.which("man"):
            out = subprocess.run(["man", "-l", str(files[page])], capture_output=True,
                                 text=True, env=dict(os.environ, MANWIDTH="80")).stdout
            assert "SYNOPSIS" in out and "bufshim" in out
    one = files["bufshim.1"].read_text()
    for word in ("BUFSHIM_PATHS", "BUFSHIM_INTERVAL", "BUFSHIM_FSYNC", "BUFSHIM_DEBUG",
                 "BUFSHIM_STATS", "125", "126", "127"):
        assert word in one, word
    three = files["bufshim.3"].read_text()
    for fn in ("bufshim_open", "bufshim_open_file", "bufshim_append", "bufshim_flush",
               "bufshim_close"):
        assert fn in three, fn


def launcher_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BUFSHIM_") and k != "LD_PRELOAD"}
    if sanitizer_runtime():
        # The launcher puts a sanitized library's runtime first itself (the shell
        # it runs in must not have it: bash and dash crash under TSan).
        # bash, python3 and coreutils leak by design: only the shim's errors count.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    env.update(extra)
    return env


def test_installed_launcher_has_its_paths_filled_in(installed):
    _, files = installed
    launcher = files["bufshim"]
    assert launcher.stat().st_mode & stat.S_IXUSR
    text = launcher.read_text()
    assert not re.search(r"@[A-Z_]+@", text), "unsubstituted @VARIABLE@ in the launcher"
    p = subprocess.run([str(launcher), "--version"], capture_output=True, text=True,
                       env=launcher_env())
    assert p.stdout == f"bufshim {project_version()}\n"


def test_installed_launcher_runs_a_program_under_the_installed_library(installed, tmp_path):
    _, files = installed
    lib = os.path.realpath(files["libbufshim.so"])
    log = tmp_path / "a.log"
    script = ("import os\n"
              f"with open({str(log)!r}, 'a') as f:\n"
              "    for i in range(1000): print('line', i, file=f, flush=True)\n"
              "print(os.environ['LD_PRELOAD'])\n"
              "print(open('/proc/self/maps').read())\n")
    p = subprocess.run([str(files["bufshim"]), "-p", f"{tmp_path}/*.log", "--",
                        PYTHON, "-c", script], capture_output=True, text=True,
                       env=launcher_env(), timeout=60)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    preload, maps = p.stdout.split("\n", 1)
    assert lib in preload.split(":")
    assert lib in maps
    assert str(BUILD_DIR / "src" / "libbufshim.so") not in maps
    assert log.read_text() == "".join(f"line {i}\n" for i in range(1000))


def test_installed_launcher_without_its_library_says_where_it_looked(installed, tmp_path):
    _, files = installed
    lone = tmp_path / "bin" / "bufshim"
    lone.parent.mkdir()
    shutil.copy(files["bufshim"], lone)
    abs_libdir = re.search(r"^BUFSHIM_LIBDIR_ABS='([^']*)'", lone.read_text(), re.M).group(1)
    p = subprocess.run([str(lone), "-p", "/x", "--", "true"], capture_output=True,
                       text=True, env=launcher_env())
    if os.path.exists(os.path.join(abs_libdir, "libbufshim.so")):
        assert p.returncode == 0  # a real install on this machine: it is used
    else:
        assert p.returncode == 125
        assert abs_libdir in p.stderr


def test_program_against_installed_header_links_with_lbufshim(installed, tmp_path):
    """A program written against <bufshim.h> alone builds with pkg-config's flags
    for the installed tree and runs with the installed library."""
    if not shutil.which("pkg-config"):
        pytest.fail("pkg-config is not installed (tools/install-deps installs it)")
    dest, files = installed
    env = dict(os.environ, PKG_CONFIG_PATH=str(files["bufshim.pc"].parent),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "bufshim"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert "-lbufshim" in flags
    exe = tmp_path / "logger"
    san = {"address": ["-fsanitize=address,undefined"],
           "thread": ["-fsanitize=thread"]}.get(SANITIZER, [])
    c = subprocess.run(["cc"] + san + [str(SOURCE_DIR / "examples" / "logger.c"), "-o", str(exe),
                        "-pthread"] + flags, capture_output=True, text=True)
    assert c.returncode == 0, c.stderr
    libdir = str(files["libbufshim.so"].parent)
    run_env = launcher_env(LD_LIBRARY_PATH=libdir)
    run_env.pop("LD_PRELOAD", None)
    log = tmp_path / "out.log"
    p = subprocess.run([str(exe), str(log), "3", "1000", "0.05"], capture_output=True,
                       text=True, env=run_env, timeout=60)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stderr
    assert len(log.read_text().splitlines()) == 3000
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, env=run_env).stdout
    assert os.path.join(libdir, "libbufshim.so") in ldd


def test_other_prefix_bindir_and_libdir(tmp_path):
    """The launcher's way to its library follows the configured directories."""
    build = tmp_path / "build"
    dest = tmp_path / "dest"
    setup = subprocess.run(["meson", "setup", str(build), str(SOURCE_DIR), "--prefix=/opt/bs",
                            "--bindir=tools/bin", "--libdir=lib64", "-Dtests=false"],
                           capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    inst = subprocess.run(["meson", "install", "-C", str(build), "--destdir", str(dest)],
                          capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    launcher = dest / "opt/bs/tools/bin/bufshim"
    lib = dest / "opt/bs/lib64/libbufshim.so"
    assert lib.is_file()
    text = launcher.read_text()
    assert "BUFSHIM_LIBDIR_ABS='/opt/bs/lib64'" in text
    assert "BUFSHIM_LIBDIR_REL='../../lib64'" in text
    p = subprocess.run([str(launcher), "-p", "/x", "--", "printenv", "LD_PRELOAD"],
                       capture_output=True, text=True, env=launcher_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(lib.resolve())
