"""C++ iostreams under the shim (doc/behaviour.md §2): std::ofstream (libstdc++ writes with
write/writev, the core's wrappers), std::cout synced with stdio (libstdc++'s
stdio_sync_filebuf calls fwrite/putc/fflush on the stdout pointer it saved at
start-up, which may be glibc's original stream), std::cout unsynced, and
std::wcout. Byte-identical files with and without the shim, and diverted."""
import pytest

from conftest import BUILD_DIR
from stdio_harness import needs_strace, run_pair, strace_wrap, writes_to

CXX = BUILD_DIR / "tests" / "helpers" / "cxx_streams"

pytestmark = pytest.mark.skipif(not CXX.exists(), reason="no C++ compiler: cxx_streams not built")


@pytest.mark.parametrize("mode", ["ofstream", "cout", "cout_unsynced", "wcout"])
def test_cxx_streams(tmp_path, mode):
    run_pair(tmp_path, lambda out: [CXX, mode, out])


@needs_strace
@pytest.mark.parametrize("mode", ["ofstream", "cout"])
def test_cxx_streams_are_diverted(tmp_path, mode):
    plain, shimmed = run_pair(tmp_path, lambda out: [CXX, mode, out], wrap=strace_wrap)
    assert len(writes_to(plain.dir, plain.out)) > 40
    assert len(writes_to(shimmed.dir, shimmed.out)) <= 4
