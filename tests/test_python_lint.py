"""The project's own Python, checked with pyflakes (Debian's python3-pyflakes, installed by
tools/install-deps): names defined twice, names never defined, imports never used. It
exists because bench/bench.py once defined finish() twice, the second (the plots') hiding
the first (a benchmark process's), and `tools/bench` failed at its first measurement with
nothing in the suite noticing."""
import importlib.util
import subprocess
import sys

import pytest

from conftest import SOURCE_DIR


def test_pyflakes_finds_nothing_in_the_projects_python():
    files = sorted(str(p) for p in SOURCE_DIR.glob("tests/*.py"))
    files += [str(SOURCE_DIR / p) for p in ("bench/bench.py", "src/gen_exports.py",
                                            "examples/tcp_collector.py", "tools/bufshim-status")]
    if importlib.util.find_spec("pyflakes") is None:
        pytest.fail("pyflakes is missing: tools/install-deps installs python3-pyflakes")
    r = subprocess.run([sys.executable, "-m", "pyflakes", *files], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
