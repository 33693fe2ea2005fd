/* elide_ops.c - what a program sees of descriptors it opens per record (append opens of a file
 * it wrote and closed before): numbers, flags, fdinfo, and the calls that need a description
 * of their own. Prints one line per observation; the tests compare the output with and
 * without the shim. Usage: elide_ops SCENARIO FILE [ARG]. Exit 0, 1 on a setup failure. */
#include <errno.h>
#include <execinfo.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *file;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, (size_t)n) != n)
        exit(1);
}

static int app(int extra)
{
    return open(file, O_WRONLY | O_APPEND | O_CREAT | extra, 0644);
}

/* One record, as a logger that opens per record writes it. */
static void record(const char *text)
{
    int fd = app(0);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0) {
        perror("record");
        exit(1);
    }
}

static const char *err(int r)
{
    return r < 0 ? strerror(errno) : "ok";
}

/* The "flags:" line of /proc/self/fdinfo/fd. */
static void fdinfo(const char *tag, int fd)
{
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(p, "r");
    if (!f) {
        say("%s fdinfo: none\n", tag);
        return;
    }
    while (fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "flags:", 6))
            say("%s fdinfo %s", tag, buf);
    fclose(f);
}

static void look(const char *tag, int fd)
{
    struct stat st;
    int r = fstat(fd, &st);
    say("%s fd %d getfl %o getfd %d fstat %s mode %o nlink %lu\n", tag, fd, fcntl(fd, F_GETFL),
        fcntl(fd, F_GETFD), err(r), r == 0 ? st.st_mode : 0,
        r == 0 ? (unsigned long)st.st_nlink : 0);
    fdinfo(tag, fd);
}

/* Numbers, flags and fdinfo of append opens of a file written and closed before. */
static void visible(void)
{
    record("one\n");
    record("two\n");
    int a = app(0);
    look("plain", a);
    int b = app(O_CLOEXEC);
    look("cloexec", b);
    /* A hole below: the lowest free number is what an open gives. */
    close(a);
    int c = app(O_NOCTTY);
    look("hole", c);
    int d = open(file, O_WRONLY | O_APPEND);
    look("nocreat", d);
    if (write(c, "three\n", 6) != 6 || write(b, "four\n", 5) != 5)
        exit(1);
    close(b);
    close(c);
    close(d);
    FILE *f = fopen(file, "a");
    look("fopen", fileno(f));
    fputs("five\n", f);
    fclose(f);
    int e = app(0);
    say("after everything: next fd %d\n", e);
    close(e);
}

/* Two append opens are two descriptions: what one does to its own stays its own. */
static void separate(void)
{
    record("one\n");
    int a = app(0), b = app(0);
    say("setfl %s\n", err(fcntl(a, F_SETFL, O_APPEND | O_NONBLOCK)));
    say("a getfl %o b getfl %o\n", fcntl(a, F_GETFL), fcntl(b, F_GETFL));
    say("ioctl fionbio %s\n", err(ioctl(b, FIONBIO, &(int){1})));
    say("b getfl %o\n", fcntl(b, F_GETFL));
    int c = app(0), d = app(0);
    say("seek c %ld\n", (long)lseek(c, 1, SEEK_SET));
    say("tell d %ld tell c %ld\n", (long)lseek(d, 0, SEEK_CUR), (long)lseek(c, 0, SEEK_CUR));
    int e = app(0), g = app(0);
    say("flock e %s\n", err(flock(e, LOCK_EX | LOCK_NB)));
    say("flock g %s\n", err(flock(g, LOCK_EX | LOCK_NB)));
    int h = app(0), k = app(0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    say("ofd h %s\n", err(fcntl(h, F_OFD_SETLK, &fl)));
    say("ofd k %s\n", err(fcntl(k, F_OFD_SETLK, &fl)));
    char buf[8];
    int m = app(0);
    say("read %s\n", err((int)read(m, buf, sizeof buf)));
    say("pread %s\n", err((int)pread(m, buf, sizeof buf, 0)));
    say("raw pread %s\n", err((int)syscall(SYS_pread64, m, buf, sizeof buf, 0)));
    say("fchdir %s\n", err(fchdir(m)));
    say("lease %s\n", err(fcntl(m, F_SETLEASE, F_WRLCK)));
    for (int fd = a; fd <= m; fd++)
        if (fd != 1 && fd != 2 && write(fd, "x\n", 2) != 2 && errno != EAGAIN)
            say("write %d %s\n", fd, strerror(errno));
    for (int fd = a; fd <= m; fd++)
        close(fd);
    /* The locks went with the descriptions: a new one takes them at once. */
    int n = app(0);
    say("flock again %s\n", err(flock(n, LOCK_EX | LOCK_NB)));
    say("ofd again %s\n", err(fcntl(n, F_OFD_SETLK, &fl)));
    close(n);
}

/* A descriptor passed over a socket: the receiver's copy shares the sender's description
   only. */
static void passed(void)
{
    record("one\n");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        exit(1);
    int a = app(0), b = app(0);
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &a, sizeof a);
    say("sendmsg %s\n", err((int)sendmsg(sv[0], &m, 0)));
    struct msghdr r = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    say("recvmsg %s\n", err((int)recvmsg(sv[1], &r, 0)));
    int got;
    memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&r)), sizeof got);
    say("received fd %d\n", got);
    say("flock got %s\n", err(flock(got, LOCK_EX | LOCK_NB)));
    say("flock a %s\n", err(flock(a, LOCK_EX | LOCK_NB)));
    say("flock b %s\n", err(flock(b, LOCK_EX | LOCK_NB)));
    if (write(got, "two\n", 4) != 4 || write(b, "three\n", 6) != 6)
        exit(1);
    close(got);
    close(a);
    close(b);
    close(sv[0]);
    close(sv[1]);
    int n = app(0);
    say("flock again %s\n", err(flock(n, LOCK_EX | LOCK_NB)));
    close(n);
}

/* exec: the new program inherits a plain append descriptor; its flock ends with it. */
static void inherit(const char *self)
{
    record("one\n");
    record("two\n");
    int a = app(0);
    int b = app(O_CLOEXEC);
    char num[16];
    snprintf(num, sizeof num, "%d", a);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "child", file, num, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    say("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    say("flock a %s\n", err(flock(a, LOCK_EX | LOCK_NB)));
    close(a);
    say("flock b %s\n", err(flock(b, LOCK_EX | LOCK_NB)));
    close(b);
}

static void child(int fd)
{
    look("child", fd);
    say("child flock %s\n", err(flock(fd, LOCK_EX | LOCK_NB)));
    for (int i = 0; i < 3; i++)
        if (write(fd, "from the child\n", 15) != 15)
            exit(1);
    /* Exits with the lock: its description ends with the process's descriptor. */
}

/* flock around each record from two processes: lock order kept, nobody stuck. */
static void lockers(int n)
{
    record("start\n");
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            /* Records without a lock first: the next open is answered by the shim. */
            for (int i = 0; i < 3; i++)
                record(k ? "warm b\n" : "warm a\n");
            for (int i = 0; i < n; i++) {
                int fd = app(0);
                if (fd < 0 || flock(fd, LOCK_EX) != 0)
                    _exit(1);
                char line[64];
                int len = snprintf(line, sizeof line, "p%d %d\n", k, i);
                if (write(fd, line, (size_t)len) != len)
                    _exit(1);
                close(fd); /* the close releases the lock */
            }
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        say("locker %d exit %d\n", k, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static int per_thread;

static void *thread_main(void *arg)
{
    long k = (long)arg;
    for (int i = 0; i < per_thread; i++) {
        int fd = app(i & 1 ? O_CLOEXEC : 0);
        char line[64];
        int len = snprintf(line, sizeof line, "t%ld %d\n", k, i);
        if (fd < 0 || write(fd, line, (size_t)len) != len || close(fd) != 0)
            exit(1);
    }
    return NULL;
}

static void threads(int total)
{
    record("start\n");
    int before = count_fds();
    per_thread = total / 4;
    pthread_t t[4];
    for (long k = 0; k < 4; k++)
        pthread_create(&t[k], NULL, thread_main, (void *)k);
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    say("descriptors before %d after %d\n", before, count_fds());
}

/*
 * What glibc writes itself, and what reaches the kernel without a wrapper seeing it, at a
 * descriptor opened per record: glibc's backtrace_symbols_fd (as a crash handler calls it)
 * writes to 2 with a writev no wrapper sees, after an open that lands at 2 and after a
 * dup2 onto 2; isatty (its ioctl is glibc's own), TCGETS, FIOCLEX, a seek that does not
 * move, an empty write; and a destructor's write after exit's flush.
 */
static int late_fd = -1;

__attribute__((destructor)) static void late_write(void)
{
    if (late_fd >= 0) {
        if (write(late_fd, "late\n", 5) != 5)
            _exit(3);
        close(late_fd);
    }
}

static void glibc_writes(void)
{
    void *frames[1] = {(void *)0x1}; /* printed as "[0x1]": the same in every run */
    record("one\n");
    usleep(300 * 1000); /* the writer thread takes the closed description as its own */
    int saved = dup(2);
    close(2);
    int e = app(0);
    say("open at %d\n", e);
    backtrace_symbols_fd(frames, 1, 2);
    dup2(saved, 2);
    int a = app(0);
    dup2(a, 2);
    backtrace_symbols_fd(frames, 1, 2);
    dup2(saved, 2);
    close(saved);
    close(a);
    int b = app(0);
    errno = 0;
    int tty = isatty(b);
    say("isatty %d %s\n", tty, strerror(errno));
    struct termios tio;
    say("TCGETS %s\n", err(ioctl(b, TCGETS, &tio)));
    int r = ioctl(b, FIOCLEX);
    say("FIOCLEX %s getfd %d\n", err(r), fcntl(b, F_GETFD));
    say("seek cur %ld\n", (long)lseek(b, 0, SEEK_CUR));
    if (write(b, "two\n", 4) != 4)
        exit(1);
    say("empty write %zd\n", write(b, "", 0));
    close(b);
    late_fd = app(0);
}

/*
 * A signal handler that writes to an elided descriptor, often while the interrupted thread
 * is inside the shim appending to the same file (a timer every 100 µs against a loop of
 * appends): every line of both lands, once. Prints the number of handler lines.
 */
static volatile int sig_fd = -1;
static volatile sig_atomic_t sig_lines;

static void on_alarm(int sig)
{
    (void)sig;
    char line[16] = "sig 000000\n";
    int v = sig_lines;
    for (int i = 9; i >= 4; i--, v /= 10)
        line[i] = (char)('0' + v % 10);
    int saved = errno;
    if (write(sig_fd, line, 11) != 11)
        _exit(5);
    errno = saved;
    sig_lines = sig_lines + 1;
}

static void signal_writes(int n)
{
    record("start\n");
    usleep(300 * 1000); /* the writer thread takes the closed description as its own */
    sig_fd = app(0);
    int fd = app(0);
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    char line[32];
    for (int i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "main %07d\n", i);
        if (write(fd, line, (size_t)len) != len)
            exit(1);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    say("handler lines %d\n", (int)sig_lines);
    close(fd);
    close(sig_fd);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 1;
    file = argv[2];
    const char *s = argv[1];
    if (!strcmp(s, "visible"))
        visible();
    else if (!strcmp(s, "separate"))
        separate();
    else if (!strcmp(s, "passed"))
        passed();
    else if (!strcmp(s, "inherit"))
        inherit(argv[0]);
    else if (!strcmp(s, "child"))
        child(atoi(argv[3]));
    else if (!strcmp(s, "lockers"))
        lockers(atoi(argv[3]));
    else if (!strcmp(s, "threads"))
        threads(atoi(argv[3]));
    else if (!strcmp(s, "glibc"))
        glibc_writes();
    else if (!strcmp(s, "signals"))
        signal_writes(atoi(argv[3]));
    else
        return 1;
    return 0;
}
