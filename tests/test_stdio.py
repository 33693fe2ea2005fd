"""stdio under the shim (doc/behaviour.md §2, §5, §9): every output call alone, std streams,
exit flushes, descriptor queries on streams. Each scenario runs without and with
the shim; the files must be byte-identical (a direct write(2) every few records
shows exactly where each stream flushed), and the shimmed run must have diverted
the writes (strace counts them)."""
import os
import pty
import select
import shutil
import subprocess

import pytest

from conftest import helper_path
from stdio_harness import (needs_strace, run_one, run_pair, shim_env, plain_env, strace_wrap,
                           writes_to, assert_same, shim_library)
from shim_fixture import assert_diverted, read_stats

FILE_CALLS = ["fwrite", "fwrite_big", "fwrite_unlocked", "fputs", "fputs_unlocked", "fputc",
              "putc", "fputc_unlocked", "putc_unlocked", "putw", "fprintf", "vfprintf",
              "dprintf", "vdprintf", "fwprintf", "fputws", "fputwc"]
STD_CALLS = ["std_printf", "std_printf_const", "std_vprintf", "std_puts", "std_putchar",
             "std_putchar_unlocked", "std_fputs", "std_fwrite", "std_wprintf", "std_putwchar",
             "stderr", "perror"]


@pytest.mark.parametrize("build", ["stdio_calls", "stdio_calls_plain"])
@pytest.mark.parametrize("call", FILE_CALLS + STD_CALLS)
def test_each_call_alone(tmp_path, build, call):
    exe = helper_path(build)
    on_std = call in STD_CALLS
    run_pair(tmp_path, lambda out: [exe, call, out], stdout_to_file=on_std,
             stderr_to_file=on_std)


@pytest.mark.parametrize("call", ["std_printf", "std_puts", "std_fwrite", "perror"])
def test_std_calls_on_a_truncating_redirect(tmp_path, call):
    """stdout and stderr opened by a shell's `>` (O_TRUNC, no O_APPEND): the
    offset is at the end of the file, so they are appending streams too."""
    exe = helper_path("stdio_calls")
    run_pair(tmp_path, lambda out: [exe, call, out], stderr_to_file=True, redirect="wb")


@needs_strace
@pytest.mark.parametrize("call", ["fwrite", "putc_unlocked", "fprintf", "dprintf", "fputws",
                                  "std_printf", "std_puts", "std_putchar_unlocked", "perror"])
def test_each_call_is_diverted(tmp_path, call):
    """Without the shim the file sees hundreds of writes; with it a handful (one
    batch per interval, plus what glibc flushes after the final flush at exit)."""
    exe = helper_path("stdio_calls")
    on_std = call in STD_CALLS
    plain, shimmed = run_pair(tmp_path, lambda out: [exe, call, out], stdout_to_file=on_std,
                              stderr_to_file=on_std, wrap=strace_wrap)
    before = writes_to(plain.dir, plain.out)
    after = writes_to(shimmed.dir, shimmed.out)
    assert len(before) > 40
    assert len(after) <= 4, "\n".join(after[:10])


def test_fortify_helpers_import_the_chk_entry_points():
    """The FORTIFY builds really call the __*_chk functions and __overflow (inline
    putc_unlocked), so the tests above exercise them; the shim exports every
    FILE*-taking one of them."""
    def imported(name):
        out = subprocess.run(["nm", "-D", "--undefined-only", str(helper_path(name))],
                             capture_output=True, text=True, check=True).stdout
        return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    calls = imported("stdio_calls") | imported("stdio_mix")
    for name in ["__printf_chk", "__fprintf_chk", "__vfprintf_chk", "__dprintf_chk",
                 "__vdprintf_chk", "__overflow", "__fwprintf_chk", "__wprintf_chk"]:
        assert name in calls, f"{name} not imported by the FORTIFY helpers"
    out = subprocess.run(["nm", "-D", "--defined-only", str(shim_library())],
                         capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    # Functions that take a FILE* (or write to a descriptor through a private
    # FILE) must be wrapped; printf, puts, putchar, perror, __printf_chk read the
    # stdout/stderr variable, which is the diverting stream, and need no wrapper.
    must_wrap = {"fwrite", "fwrite_unlocked", "fputs", "fputs_unlocked", "fputc",
                 "fputc_unlocked", "putc", "putc_unlocked", "putw", "fprintf", "vfprintf",
                 "__fprintf_chk", "__vfprintf_chk", "__overflow", "dprintf", "vdprintf",
                 "__dprintf_chk", "__vdprintf_chk", "fputwc", "putwc", "fputws", "fwprintf",
                 "__fwprintf_chk", "wprintf", "__wprintf_chk", "putwchar", "fopen", "fopen64",
                 "fdopen", "freopen", "freopen64", "fclose", "fflush", "setvbuf", "fileno"}
    missing = sorted((calls & must_wrap) - exported)
    assert missing == [], f"imported by the helpers but not wrapped: {missing}"


def test_symbols_exported_under_called_names():
    """Every wrapped name of the call table is defined by the library under that name
    (-D_FILE_OFFSET_BITS=64 would silently turn a fopen definition into fopen64)."""
    from test_exports import table_calls
    names = [n for n, cls in table_calls() if cls != "PASS"]
    out = subprocess.run(["nm", "-D", "--defined-only", str(shim_library())],
                         capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    for must in ["fopen", "fopen64", "freopen", "freopen64", "fdopen", "fclose", "__overflow",
                 "fwrite", "fputs", "fprintf", "__fprintf_chk", "dprintf", "__dprintf_chk"]:
        assert must in names
    assert [n for n in names if n not in defined] == []


@pytest.mark.parametrize("mode", ["return", "exit", "atexit", "dso", "fclose_stdout", "saved",
                                  "dso_stream"])
def test_exit_flush(tmp_path, mode):
    """Buffered stdio data at exit, also data written and flushed after the shim's
    destructor (a library destructor that prints), reaches the file."""
    exe = helper_path("stdio_exit")

    def argv(out):
        return [exe, mode, out]
    extra = {"LD_LIBRARY_PATH": str(exe.parent)}
    if mode in ("dso", "dso_stream"):
        plain = run_one(argv, tmp_path / "plain", False,
                        env_extra=dict(extra, STDIO_EXIT_DSO_PATH=str(tmp_path / "plain" / "out.log")))
        shimmed = run_one(argv, tmp_path / "shim", True, stats=tmp_path / "shim.stats",
                          env_extra=dict(extra, STDIO_EXIT_DSO_PATH=str(tmp_path / "shim" / "out.log")))
        assert plain.proc.returncode == shimmed.proc.returncode == 0, shimmed.stderr
        assert b"dso destructor: stdout after" in plain.data
        assert_same(plain.data, shimmed.data)
        assert_diverted(read_stats(tmp_path / "shim.stats"), mode)
        if mode == "dso_stream":
            assert plain.data.count(b"<direct") == 15
            return
    else:
        plain, shimmed = run_pair(tmp_path, argv, env_extra=extra)
    if mode == "saved":
        assert plain.data.count(b"<w>") == 30
        return
    assert plain.data.count(b"main: stdout") == 100
    if mode == "fclose_stdout":
        assert b"printf after fclose(stdout): -1 0 Bad file descriptor" in plain.data


def test_fdops_on_a_diverted_stream(tmp_path):
    """fileno, isatty, fstat, flock, fsync (bytes on disk after it), ftell,
    fdopen/freopen semantics and errno are what they are without the shim."""
    exe = helper_path("stdio_fdops")
    res = {}
    for variant, shim in (("plain", False), ("shim", True)):
        d = tmp_path / variant
        r = run_one(lambda out: [exe, out, d / "report.txt"], d, shim)
        assert r.proc.returncode == 0, r.stderr
        res[variant] = (d / "report.txt").read_text(), r.data
    report = res["plain"][0]
    assert "fsync: 0" in report and "fileno valid: 1" in report
    assert res["shim"][0] == report
    assert_same(res["plain"][1], res["shim"][1])


def _c_program(tmp_path, name, source):
    src = tmp_path / (name + ".c")
    src.write_text(source)
    exe = tmp_path / name
    subprocess.run(["cc", "-O2", "-D_FORTIFY_SOURCE=2", "-o", str(exe), str(src)], check=True)
    return exe


FOPEN_W_THEN_A = r"""
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    FILE *w = fopen(argv[1], "w");
    for (int i = 0; i < 500; i++) fprintf(w, "w %d\n", i);
    fclose(w);
    FILE *a = fopen(argv[1], "a");
    int fd = open(argv[1], O_WRONLY | O_APPEND);
    for (int i = 0; i < 2000; i++) {
        fprintf(a, "a %d ", i);
        if (i % 301 == 0) dprintf(fd, "<direct %d>\n", i);
    }
    FILE *w2 = fopen(argv[1], "a+");
    fputs("a+ stream\n", w2);
    fflush(w2);
    return 0;
}
"""


def test_fopen_w_then_a(tmp_path):
    exe = _c_program(tmp_path, "wa", FOPEN_W_THEN_A)
    run_pair(tmp_path, lambda out: [exe, out], stdout_to_file=False)


DUP2_STDOUT = r"""
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    dup2(fd, 1);
    for (int i = 0; i < 3000; i++) {
        printf("line %d%s", i, i % 3 ? " " : "\n");
        if (i % 211 == 0) write(fd, "<direct>\n", 9);
    }
    return 0;
}
"""


def _run_on_pty(argv, env):
    """Runs argv with stdout on a pseudo-terminal; returns (status, bytes seen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    return proc.wait(timeout=30), data


@pytest.mark.parametrize("initial", ["file", "pty"])
def test_dup2_file_onto_stdout(tmp_path, initial):
    """dup2 of a file onto stdout, then printf: stdout is fully buffered (glibc
    decides at the first output) even when fd 1 started as a terminal."""
    exe = _c_program(tmp_path, "dup2", DUP2_STDOUT)
    if initial == "file":
        run_pair(tmp_path, lambda out: [exe, out], stdout_to_file=False)
        return
    outs = {}
    for variant, shim in (("plain", False), ("shim", True)):
        d = tmp_path / variant
        d.mkdir()
        out = d / "out.log"
        env = shim_env(str(d) + "/*.log") if shim else plain_env()
        status, _ = _run_on_pty([str(exe), str(out)], env)
        assert status == 0
        outs[variant] = out.read_bytes()
    assert outs["plain"].count(b"<direct>") == 15
    assert_same(outs["plain"], outs["shim"])


TTY_STDOUT = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 300; i++) {
        printf("p%d", i);
        if (i % 4 == 0) printf("\n");
        if (i % 7 == 0) write(1, "<w>", 3);
    }
    printf("tail without newline");
    return 0;
}
"""


def test_stdout_on_a_terminal_is_line_buffered(tmp_path):
    """With BUFSHIM_PATHS=stdout a terminal stdout is diverted, and stays line
    buffered as glibc makes it: the terminal sees the same byte order."""
    exe = _c_program(tmp_path, "tty", TTY_STDOUT)
    s1, plain = _run_on_pty([str(exe)], plain_env())
    s2, shimmed = _run_on_pty([str(exe)], shim_env("stdout"))
    assert s1 == s2 == 0
    assert plain.count(b"<w>") == 43
    assert_same(plain, shimmed)


FREOPEN_STDOUT = r"""
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
int main(int argc, char **argv) {
    printf("before freopen: goes to the original stdout\n");
    if (!freopen(argv[1], "a", stdout)) return 1;
    if (fileno(stdout) != 1) return 1;
    int fd = open(argv[1], O_WRONLY | O_APPEND);
    for (int i = 0; i < 3000; i++) {
        printf("r%d ", i);
        if (i % 250 == 0) dprintf(fd, "<direct %d>\n", i);
    }
    if (!freopen(NULL, "a", stdout)) return 1;
    printf("after reopening the same path\n");
    return 0;
}
"""


def test_freopen_stdout(tmp_path):
    exe = _c_program(tmp_path, "freopen", FREOPEN_STDOUT)
    run_pair(tmp_path, lambda out: [exe, out], stdout_to_file=False)


def test_python_print_file(tmp_path):
    """python3's print(file=) writes with write(2) through its own buffer."""
    code = ("import sys\nf = open(sys.argv[1], 'a')\nfor i in range(5000):\n"
            "    print('line', i, file=f, end='\\n' if i % 3 else ' ')\n"
            "    if i % 999 == 0: f.flush()\n")
    run_pair(tmp_path, lambda out: ["/usr/bin/python3", "-c", code, out], stdout_to_file=False)


THREADS = r"""
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static FILE *shared;
static void *work(void *arg) {
    long t = (long)arg;
    char pad[200];
    memset(pad, 'a' + (int)t, sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    for (int i = 0; i < 4000; i++) {
        fprintf(shared, "t%ld %d %.*s\n", t, i, (int)(i % 150), pad);
        if (i % 3 == 0) printf("o%ld %d\n", t, i);
        if (i % 500 == 0) fflush(shared);
    }
    return NULL;
}
int main(int argc, char **argv) {
    shared = fopen(argv[1], "a");
    pthread_t th[4];
    for (long t = 0; t < 4; t++) pthread_create(&th[t], NULL, work, (void *)t);
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    return 0;
}
"""


def test_threads_keep_records_whole_and_in_order(tmp_path):
    """doc/behaviour.md §5, multi-threaded: each fprintf record on a shared stream stays
    contiguous and each thread's records keep their order. (stdout goes
    elsewhere: two fully buffered streams on one file interleave at buffer
    boundaries, mid-record, with or without the shim.)"""
    src = tmp_path / "threads.c"
    src.write_text(THREADS)
    exe = tmp_path / "threads"
    subprocess.run(["cc", "-O2", "-pthread", "-o", str(exe), str(src)], check=True)
    r = run_one(lambda out: [exe, out], tmp_path / "shim", True, stdout_to_file=False)
    assert r.proc.returncode == 0, r.stderr
    lines = r.data.split(b"\n")[:-1]
    assert len(lines) == 4 * 4000
    last = {}
    for line in lines:
        kind, num = line.split(b" ")[0], int(line.split(b" ")[1])
        if kind.startswith(b"t"):
            t = int(kind[1:])
            assert line == b"t%d %d " % (t, num) + bytes([ord("a") + t]) * (num % 150)
        assert num > last.get(kind, -1), line
        last[kind] = num


FORK = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "a");
    /* Flushed records first (diverted, and flushed by the fork), then unflushed ones. */
    for (int i = 0; i < 20; i++) {
        fprintf(f, "parent flushed %d\n", i);
        fflush(f);
    }
    fprintf(f, "parent before fork, unflushed\n");
    printf("stdout before fork, unflushed\n");
    pid_t pid = fork();
    if (pid == 0) {
        fprintf(f, "child\n");
        printf("child stdout\n");
        return 0;
    }
    waitpid(pid, NULL, 0);
    fprintf(f, "parent after the child ended\n");
    return 0;
}
"""


def test_fork_with_buffered_stdio(tmp_path):
    """The child inherits the stdio buffers, as without the shim (both flush them)."""
    exe = _c_program(tmp_path, "fork", FORK)
    plain, _ = run_pair(tmp_path, lambda out: [exe, out])
    assert plain.data.count(b"parent before fork") == 2


PROMPT = r"""
#include <stdio.h>
int main(void) {
    char line[100];
    printf("name? ");
    if (!fgets(line, sizeof line, stdin)) return 1;
    printf("hello %s", line);
    return 0;
}
"""


def test_prompt_reaches_the_terminal_before_reading_stdin(tmp_path):
    """Reading a line-buffered stdin flushes a line-buffered stdout (glibc's
    _IO_file_underflow looks at the `stdout` variable): the prompt must show up
    on the terminal before the program gets its input."""
    exe = _c_program(tmp_path, "prompt", PROMPT)
    for env in (plain_env(), shim_env("stdout")):
        master, slave = pty.openpty()
        proc = subprocess.Popen([str(exe)], env=env, stdin=slave, stdout=slave,
                                stderr=subprocess.DEVNULL)
        os.close(slave)
        seen = b""
        while b"name? " not in seen:
            r, _, _ = select.select([master], [], [], 10)
            assert r, f"no prompt before input; saw {seen!r}"
            seen += os.read(master, 1024)
        os.write(master, b"bufshim\n")
        while b"hello bufshim" not in seen:
            r, _, _ = select.select([master], [], [], 10)
            assert r, f"no greeting; saw {seen!r}"
            seen += os.read(master, 1024)
        assert proc.wait(timeout=10) == 0
        os.close(master)


UPDATE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "a+");
    int fd = open(argv[1], O_WRONLY | O_APPEND);
    for (int i = 0; i < 3000; i++) {
        fprintf(f, "line %d\n", i);
        if (i % 500 == 0) dprintf(fd, "direct %d\n", i);
    }
    /* Reading an update stream flushes it first; the read is a barrier. */
    rewind(f);
    char buf[100];
    long lines = 0, sum = 0;
    while (fgets(buf, sizeof buf, f)) {
        lines++;
        sum += (long)strlen(buf) * lines;
    }
    printf("read back %ld lines, checksum %ld, ftell %ld\n", lines, sum, ftell(f));
    fseek(f, 0, SEEK_END);
    fprintf(f, "after reading\n");
    printf("ftell after writing %ld\n", ftell(f));
    FILE *r = fopen(argv[1], "r");
    fseek(r, -14, SEEK_END);
    printf("tail through another stream: %s", fgets(buf, sizeof buf, r) ? buf : "(none)\n");
    fflush(f);
    fseek(r, -14, SEEK_END);
    printf("tail after fflush: %s", fgets(buf, sizeof buf, r) ? buf : "(none)\n");
    return 0;
}
"""


def test_update_stream_read_back_and_seek(tmp_path):
    """A "a+" stream: reading flushes pending output and reads what was written
    (diverted bytes included: reads are barriers); ftell and fseek agree."""
    exe = _c_program(tmp_path, "update", UPDATE)
    plain, _ = run_pair(tmp_path, lambda out: [exe, out])
    assert b"read back 3006 lines" in plain.data
    assert b"tail after fflush: after reading" in plain.data


STDBUF = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 3000; i++) {
        printf("l%d%s", i, i % 3 ? " " : "\n");
        fprintf(stderr, "e%d ", i);
        if (i % 97 == 0) write(1, "<w>", 3);
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("stdbuf") is None, reason="no stdbuf")
@pytest.mark.parametrize("mode", ["-oL", "-o0", "-o4096", "-eL"])
def test_stdbuf_settings_are_kept(tmp_path, mode):
    """stdbuf's library calls setvbuf on the original streams from its
    constructor, before the shim replaces them: the replacements keep that mode."""
    exe = _c_program(tmp_path, "stdbuf", STDBUF)
    run_pair(tmp_path, lambda out: ["stdbuf", mode, exe], stderr_to_file=True)


FDOPEN_APPEND = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    /* O_TRUNC, no O_APPEND: appending by its offset, diverted. */
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 300; i++) dprintf(fd, "before fdopen %d\n", i);
    FILE *f = fdopen(fd, "a"); /* adds O_APPEND */
    if (!f || !(fcntl(fd, F_GETFL) & O_APPEND)) return 1;
    int other = open(argv[1], O_WRONLY | O_APPEND);
    for (int i = 0; i < 3000; i++) {
        fprintf(f, "stream %d ", i);
        if (i % 400 == 0) dprintf(other, "<other %d>\n", i);
        if (i % 700 == 0) dprintf(fd, "<same fd %d>\n", i);
    }
    fclose(f);
    dprintf(other, "after fclose\n");
    return 0;
}
"""


def test_fdopen_append_on_a_diverted_descriptor(tmp_path):
    """fdopen "a" on a descriptor that is already diverted (at end of file, no
    O_APPEND) sets O_APPEND as glibc does; bytes buffered before stay first."""
    exe = _c_program(tmp_path, "fdopen_append", FDOPEN_APPEND)
    plain, _ = run_pair(tmp_path, lambda out: [exe, out], stdout_to_file=False)
    assert plain.data.startswith(b"before fdopen 0\n")


MODES = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *modes[] = {"r", "r+", "w", "w+", "a", "a+", "rb", "wb+", "ab", "a+b", "wx",
                           "ax", "we", "ae+", "wc", "a,x", "z", "", "+", "r,ccs=UTF-8"};
    const char *dir = argv[1];
    char path[4096], line[200];
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        for (int exists = 0; exists < 2; exists++) {
            snprintf(path, sizeof path, "%s/m%u_%d.log", dir, i, exists);
            if (exists) {
                FILE *c = fopen(path, "w");
                fputs("existing content\n", c);
                fclose(c);
            }
            errno = 0;
            FILE *f = fopen(path, modes[i]);
            int e = errno;
            if (!f) {
                printf("%s exists=%d: NULL %s\n", modes[i], exists, strerror(e));
                continue;
            }
            int fd = fileno(f);
            int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
            long pos = ftell(f);
            int w = fputs("written\n", f);
            int fe = ferror(f);
            clearerr(f);
            rewind(f);
            char *got = fgets(line, sizeof line, f);
            printf("%s exists=%d: acc=%d append=%d cloexec=%d ftell=%ld fputs=%d ferror=%d "
                   "read=%s", modes[i], exists, fl & O_ACCMODE, !!(fl & O_APPEND),
                   !!(fdfl & FD_CLOEXEC), pos, w >= 0, fe, got ? got : "(none)\n");
            fseek(f, 0, SEEK_END);
            long end = ftell(f);
            printf("  end ftell=%ld fclose=%d\n", end, fclose(f));
        }
    }
    /* "rm": glibc may read through an mmap of the file; the bytes still
     * buffered by the shim must be there (reads are barriers). */
    snprintf(path, sizeof path, "%s/mmap.log", dir);
    FILE *w = fopen(path, "a");
    for (int i = 0; i < 1000; i++)
        fprintf(w, "mapped line %d\n", i);
    fflush(w);
    FILE *r = fopen(path, "rm");
    long n = 0;
    while (fgets(line, sizeof line, r))
        n++;
    printf("rm read %ld lines, ftell %ld\n", n, ftell(r));
    /* (glibc's vdprintf leaks a buffer on a bad descriptor: not in an ASan helper) */
    errno = 0;
    int d = dprintf(987, "x%d", 1);
    printf("dprintf to a bad descriptor: %d %s\n", d, strerror(errno));
    fclose(r);
    fclose(w);
    return 0;
}
"""


def test_fopen_modes_behave_as_glibc(tmp_path):
    """Every fopen mode letter ('+', 'x', 'e', 'b', 'c', invalid ones, a wide
    ",ccs=" stream left to glibc): same descriptor flags, errors, reads,
    positions and file contents with and without the shim; an "rm" stream
    reads what is still buffered."""
    exe = _c_program(tmp_path, "modes", MODES)
    res = {}
    for variant, shim in (("plain", False), ("shim", True)):
        d = tmp_path / variant
        r = run_one(lambda out: [exe, d], d, shim)
        assert r.proc.returncode == 0, r.stderr
        files = {p.name: p.read_bytes() for p in sorted(d.glob("m*.log"))}
        assert len(files) > 30
        res[variant] = (r.data, files)
    assert b"wx exists=1: NULL File exists" in res["plain"][0]
    assert b"rm read 1000 lines" in res["plain"][0]
    assert b"dprintf to a bad descriptor: -1 Bad file descriptor" in res["plain"][0]
    assert_same(res["plain"][0], res["shim"][0])
    assert res["plain"][1] == res["shim"][1]
