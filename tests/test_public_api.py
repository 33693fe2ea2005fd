"""A program that includes only <bufshim.h> and links libbufshim.so (-lbufshim)."""
import re
import subprocess

from conftest import assert_no_sanitizer_report, helper_path


def test_header_alone_program_links_the_shared_library(tmp_path):
    exe = helper_path("api_only")
    needed = subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True).stdout
    # Linked by the versioned SONAME (libbufshim.so.1), as -lbufshim records it.
    assert re.search(r"\(NEEDED\).*\[libbufshim\.so\.\d+\]", needed), needed
    p = subprocess.run([str(exe), str(tmp_path / "f.log")], capture_output=True, text=True,
                       timeout=120)
    assert_no_sanitizer_report(p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "calls=" in p.stdout
