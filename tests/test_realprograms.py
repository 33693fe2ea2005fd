"""Real programs (bash, python3, perl, awk, coreutils) produce the same files with and without the shim."""
import textwrap

from shim_fixture import assert_same_files, sorted_lines


def test_bash_echo_append_loop_5000(tmp_path):
    def scenario(d, run):
        run(["bash", "-c", 'for i in $(seq 5000); do echo "line $i" >> a.log; done'])
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_bash_redirects_gt_and_gtgt(tmp_path):
    def scenario(d, run):
        run(["bash", "-c", 'for i in $(seq 2000); do echo "out $i"; done > out.log; '
             'for i in $(seq 2000); do echo "more $i"; printf "%s\\n" p$i; done >> out.log; '
             'exec 2>>err.log; for i in $(seq 500); do echo "err $i" >&2; done; '
             'seq 3 | cat >> out.log; echo done >> out.log'])
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_inherited_redirect_with_stderr_joined(tmp_path):
    # `>> log 2>&1`: fd 1 and fd 2 share one open file description.
    def scenario(d, run):
        run(["bash", "-c", '{ for i in $(seq 300); do echo "o $i"; echo "e $i" >&2; done; '
             'python3 -c "import sys; [print(i, file=sys.stderr if i % 2 else sys.stdout) '
             'for i in range(300)]"; } > joined.log 2>&1; '
             '{ for i in $(seq 300); do echo "o $i"; echo "e $i" >&2; done; } >> app.log 2>&1'])
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_coreutils(tmp_path):
    def scenario(d, run):
        run(["bash", "-c", "seq 100000 > a.log; seq 5 | tee -a a.log b.log > /dev/null; "
             "cat a.log >> b.log; head -c 1000 a.log >> b.log; sort -r b.log > c.log; "
             "head -n 30000 c.log > part_1; tail -n +30001 c.log > part_2; "
             "cat part_* > d.log; cp d.log e.log; wc -l d.log >> b.log"])
    assert_same_files(scenario, tmp_path, paths=["*.log", "part_*"])


PY_PRINT = textwrap.dedent("""
    import threading
    f = open("print.log", "a")
    def work(n):
        for i in range(3000):
            print(f"thread {n} line {i}", file=f, flush=(i % 7 == 0))
    ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    f.close()
    with open("single.log", "w") as g:
        for i in range(5000):
            print("single", i, file=g)
            if i % 1000 == 0:
                g.flush()
                print("tell", g.tell(), file=g)
""")

PY_LOGGING = textwrap.dedent("""
    import logging, threading
    h = logging.FileHandler("app.log")
    h.setFormatter(logging.Formatter("%(threadName)s %(message)s"))
    log = logging.getLogger("t")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    def work(n):
        for i in range(2000):
            log.info("record %d", i)
    ts = [threading.Thread(target=work, args=(n,), name=f"T{n}") for n in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
""")


def per_thread_order_and_same_lines(rel, a, b):
    """Threads interleave differently from run to run: the same lines, and within
    each thread the same order (doc/behaviour.md §5, multi-threaded)."""
    if sorted_lines(a) != sorted_lines(b):
        return False
    def by_thread(data):
        out = {}
        for line in data.splitlines():
            key = line.split()[0] + (line.split()[1] if line.startswith(b"thread") else b"")
            out.setdefault(key, []).append(line)
        return out
    return by_thread(a) == by_thread(b)


def test_python_print_from_4_threads(tmp_path):
    def scenario(d, run):
        run(["python3", "-c", PY_PRINT])
    assert_same_files(scenario, tmp_path, paths=["*.log"],
                      compare=lambda rel, a, b: a == b if rel == "single.log"
                      else per_thread_order_and_same_lines(rel, a, b))


def test_python_logging_filehandler_from_4_threads(tmp_path):
    def scenario(d, run):
        run(["python3", "-c", PY_LOGGING])
    assert_same_files(scenario, tmp_path, paths=["*.log"], compare=per_thread_order_and_same_lines)


PY_ROTATING = textwrap.dedent("""
    import logging, logging.handlers
    h = logging.handlers.RotatingFileHandler("rot.log", maxBytes=4000, backupCount=50)
    log = logging.getLogger("r")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    for i in range(3000):
        log.info("record %d %s", i, "x" * (i % 37))
""")


def test_rotating_file_handler_rotates_at_the_same_byte(tmp_path):
    def scenario(d, run):
        run(["python3", "-c", PY_ROTATING])
    _, shim_dir, _, _ = assert_same_files(scenario, tmp_path, paths=["*.log", "*.log.*"])
    assert len(list(shim_dir.glob("rot.log.*"))) >= 20  # it did rotate, many times


def test_perl(tmp_path):
    def scenario(d, run):
        run(["perl", "-e", 'open(my $f, ">>", "p.log") or die; for my $i (1..5000) '
             '{ print $f "perl $i\\n"; } close $f; open(my $g, ">", "q.log") or die; '
             'select($g); $| = 1; for my $i (1..2000) { print "unbuffered $i\\n"; } '
             'printf $g "%d\\n", tell($g);'])
    assert_same_files(scenario, tmp_path, paths=["*.log"])


def test_awk_print_append(tmp_path):
    def scenario(d, run):
        run(["awk", 'BEGIN { for (i = 0; i < 5000; i++) { print "awk " i >> "a.log"; '
             'if (i % 1000 == 0) fflush("a.log") } close("a.log"); '
             'for (i = 0; i < 100; i++) print "again " i >> "a.log" }'])
    assert_same_files(scenario, tmp_path, paths=["*.log"])
