/* shim_ops.c - runs a script of descriptor operations from argv; prints every query's answer.
 *
 * Usage: shim_ops OP ARGS... [OP ARGS...]...   Descriptors are named by small
 * slot numbers K (0..63) chosen by the script. Each query prints one line on
 * stdout, so a run without and a run with the shim can be compared line by line.
 *
 *   open K PATH MODE        MODE: a (append), w (trunc), c (create, no trunc), r, rw, ra
 *   openat K DIR REL MODE   openat(2) relative to an O_DIRECTORY descriptor of DIR
 *   creat K PATH            creat(2)
 *   write K TEXT            write(2); TEXT takes \n and \t escapes
 *   writev K T1|T2|...      writev(2) of the pieces
 *   big K N C               write(2) of N bytes of character C
 *   many K N TEXT           N write(2) calls of "TEXT <i>\n"
 *   pwrite K OFF TEXT       pwrite(2)
 *   dup K J | dup2 K J NUM | dup3 K J NUM | dupfd K J MIN
 *   close K | fsync K | fdatasync K | ftruncate K N | truncate PATH N
 *   tell K | end K | seek K OFF | size K | stat PATH | lstat PATH | statx PATH
 *   read K N                read(2) up to N bytes and print them
 *   rawsize PATH            the size on disk, by raw system calls (no shim in the way)
 *   rawcat PATH             the content on disk, by raw system calls
 *   rename A B | unlink P | symlink T L | link A B
 *   fd1 TEXT | fd2 TEXT     write(2) to descriptor 1 / 2
 *   ewrite K TEXT           write(2) with errno preset to EILSEQ: prints whether it survived
 *   sync | syncfs K         sync(2) / syncfs(2)
 *   closerange LO           close_range(LO, ~0U, 0): every descriptor from LO up
 *   tryclose NUM            close(NUM) on a raw number; prints the result and errno
 *   nextfd                  prints the descriptor number the next open(2) gets
 *   fillfds                 opens /dev/null until EMFILE (prints nothing: the count differs)
 *   sigwrite K N            N writes of "main <i>\n" while a 50 us SIGALRM timer's handler
 *                           writes "sig\n" to the same descriptor; prints "sigs <count>"
 *   sleep MS | exit CODE | _exit CODE
 *
 * Exit status: 0 when every operation ran, 1 when one failed unexpectedly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int slot[64];
static int sig_fd;
static volatile sig_atomic_t sig_count;

static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    if (write(sig_fd, "sig\n", 4) == 4)
        sig_count++;
    errno = e;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    /* Not stdio: its buffer would reach the pipe at exit, out of order with fd 2. */
    if (write(1, buf, (size_t)n) != n)
        exit(1);
}

static void die(const char *op, const char *arg)
{
    fprintf(stderr, "shim_ops: %s %s: %s\n", op, arg ? arg : "", strerror(errno));
    exit(1);
}

static char *unescape(const char *s)
{
    char *r = malloc(strlen(s) + 1), *o = r;
    for (; *s; s++) {
        if (*s == '\\' && s[1] == 'n') {
            *o++ = '\n';
            s++;
        } else if (*s == '\\' && s[1] == 't') {
            *o++ = '\t';
            s++;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return r;
}

static int mode_flags(const char *m)
{
    if (!strcmp(m, "a"))
        return O_WRONLY | O_CREAT | O_APPEND;
    if (!strcmp(m, "w"))
        return O_WRONLY | O_CREAT | O_TRUNC;
    if (!strcmp(m, "c"))
        return O_WRONLY | O_CREAT;
    if (!strcmp(m, "r"))
        return O_RDONLY;
    if (!strcmp(m, "rw"))
        return O_RDWR | O_CREAT;
    if (!strcmp(m, "ra"))
        return O_RDWR | O_CREAT | O_APPEND;
    fprintf(stderr, "shim_ops: unknown mode %s\n", m);
    exit(1);
}

static void writeall(int fd, const char *p, size_t n, const char *op)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0)
            die(op, NULL);
        p += w;
        n -= (size_t)w;
    }
}

static int K(const char *s)
{
    int k = atoi(s);
    if (k < 0 || k >= 64)
        exit(1);
    return k;
}

/*
 * The kernel with nothing in between: the shim wraps syscall(2) too (a raw read of
 * a target is a barrier, as read is), so "what is on disk now" needs the
 * instruction itself. Elsewhere than x86-64, syscall(2) (then the checks that
 * need it see the barrier and fail loudly rather than pass).
 */
static long kernel3(long nr, long a, long b, long c)
{
#if defined(__x86_64__)
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
#else
    return syscall(nr, a, b, c);
#endif
}

static long raw_open(const char *path)
{
    return kernel3(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc;) {
        const char *op = argv[i++];
#define ARG(n) (i + (n) <= argc ? argv[i + (n)-1] : (fprintf(stderr, "missing arg\n"), exit(1), ""))
        if (!strcmp(op, "open")) {
            int fd = open(ARG(2), mode_flags(ARG(3)), 0644);
            if (fd < 0)
                die(op, ARG(2));
            slot[K(ARG(1))] = fd;
            i += 3;
        } else if (!strcmp(op, "openat")) {
            int d = open(ARG(2), O_RDONLY | O_DIRECTORY);
            int fd = d < 0 ? -1 : openat(d, ARG(3), mode_flags(ARG(4)), 0644);
            if (fd < 0)
                die(op, ARG(3));
            close(d);
            slot[K(ARG(1))] = fd;
            i += 4;
        } else if (!strcmp(op, "creat")) {
            int fd = creat(ARG(2), 0644);
            if (fd < 0)
                die(op, ARG(2));
            slot[K(ARG(1))] = fd;
            i += 2;
        } else if (!strcmp(op, "write")) {
            char *t = unescape(ARG(2));
            ssize_t w = write(slot[K(ARG(1))], t, strlen(t));
            if (w != (ssize_t)strlen(t))
                die(op, ARG(2));
            free(t);
            i += 2;
        } else if (!strcmp(op, "writev")) {
            char *t = unescape(ARG(2));
            struct iovec iov[64];
            int n = 0;
            size_t total = 0;
            for (char *p = strtok(t, "|"); p && n < 64; p = strtok(NULL, "|")) {
                iov[n].iov_base = p;
                iov[n].iov_len = strlen(p);
                total += iov[n++].iov_len;
            }
            if (writev(slot[K(ARG(1))], iov, n) != (ssize_t)total)
                die(op, ARG(2));
            free(t);
            i += 2;
        } else if (!strcmp(op, "big")) {
            size_t n = strtoul(ARG(2), NULL, 10);
            char *b = malloc(n);
            memset(b, ARG(3)[0], n);
            writeall(slot[K(ARG(1))], b, n, op);
            free(b);
            i += 3;
        } else if (!strcmp(op, "many")) {
            int n = atoi(ARG(2));
            for (int j = 0; j < n; j++) {
                char b[512];
                int m = snprintf(b, sizeof b, "%s %d\n", ARG(3), j);
                writeall(slot[K(ARG(1))], b, (size_t)m, op);
            }
            i += 3;
        } else if (!strcmp(op, "pwrite")) {
            char *t = unescape(ARG(3));
            if (pwrite(slot[K(ARG(1))], t, strlen(t), atol(ARG(2))) < 0)
                die(op, ARG(3));
            free(t);
            i += 3;
        } else if (!strcmp(op, "dup")) {
            int fd = dup(slot[K(ARG(1))]);
            if (fd < 0)
                die(op, NULL);
            slot[K(ARG(2))] = fd;
            i += 2;
        } else if (!strcmp(op, "dup2") || !strcmp(op, "dup3")) {
            int fd = op[3] == '2' ? dup2(slot[K(ARG(1))], atoi(ARG(3)))
                                  : dup3(slot[K(ARG(1))], atoi(ARG(3)), O_CLOEXEC);
            if (fd < 0)
                die(op, NULL);
            slot[K(ARG(2))] = fd;
            i += 3;
        } else if (!strcmp(op, "dupfd")) {
            int fd = fcntl(slot[K(ARG(1))], F_DUPFD, atoi(ARG(3)));
            if (fd < 0)
                die(op, NULL);
            slot[K(ARG(2))] = fd;
            i += 3;
        } else if (!strcmp(op, "close")) {
            if (close(slot[K(ARG(1))]) < 0)
                die(op, NULL);
            i += 1;
        } else if (!strcmp(op, "fsync") || !strcmp(op, "fdatasync")) {
            int r = op[1] == 's' ? fsync(slot[K(ARG(1))]) : fdatasync(slot[K(ARG(1))]);
            if (r < 0)
                die(op, NULL);
            i += 1;
        } else if (!strcmp(op, "ftruncate")) {
            if (ftruncate(slot[K(ARG(1))], atol(ARG(2))) < 0)
                die(op, NULL);
            i += 2;
        } else if (!strcmp(op, "truncate")) {
            if (truncate(ARG(1), atol(ARG(2))) < 0)
                die(op, ARG(1));
            i += 2;
        } else if (!strcmp(op, "tell") || !strcmp(op, "end")) {
            off_t r = lseek(slot[K(ARG(1))], 0, op[0] == 't' ? SEEK_CUR : SEEK_END);
            out("%s %lld\n", op, (long long)r);
            i += 1;
        } else if (!strcmp(op, "seek")) {
            off_t r = lseek(slot[K(ARG(1))], atol(ARG(2)), SEEK_SET);
            out("seek %lld\n", (long long)r);
            i += 2;
        } else if (!strcmp(op, "size")) {
            struct stat st;
            if (fstat(slot[K(ARG(1))], &st) < 0)
                die(op, NULL);
            out("size %lld\n", (long long)st.st_size);
            i += 1;
        } else if (!strcmp(op, "stat") || !strcmp(op, "lstat")) {
            struct stat st;
            if ((op[0] == 's' ? stat(ARG(1), &st) : lstat(ARG(1), &st)) < 0)
                die(op, ARG(1));
            out("%s %lld\n", op, (long long)st.st_size);
            i += 1;
        } else if (!strcmp(op, "statx")) {
            struct statx sx;
            if (statx(AT_FDCWD, ARG(1), 0, STATX_SIZE, &sx) < 0)
                die(op, ARG(1));
            out("statx %llu\n", (unsigned long long)sx.stx_size);
            i += 1;
        } else if (!strcmp(op, "read")) {
            size_t n = strtoul(ARG(2), NULL, 10);
            char *b = malloc(n + 1);
            ssize_t r = read(slot[K(ARG(1))], b, n);
            if (r < 0)
                die(op, NULL);
            out("read %zd [%.*s]\n", r, (int)r, b);
            free(b);
            i += 2;
        } else if (!strcmp(op, "rawsize") || !strcmp(op, "rawcat")) {
            long fd = raw_open(ARG(1));
            char b[65536];
            long total = 0, r;
            if (fd < 0) {
                out("%s missing\n", op);
            } else {
                if (op[3] == 's') {
                    while ((r = kernel3(SYS_read, fd, (long)b, sizeof b)) > 0)
                        total += r;
                    out("rawsize %ld\n", total);
                } else {
                    out("rawcat [");
                    while ((r = kernel3(SYS_read, fd, (long)b, sizeof b)) > 0)
                        out("%.*s", (int)r, b);
                    out("]\n");
                }
                kernel3(SYS_close, fd, 0, 0);
            }
            i += 1;
        } else if (!strcmp(op, "rename")) {
            if (rename(ARG(1), ARG(2)) < 0)
                die(op, ARG(1));
            i += 2;
        } else if (!strcmp(op, "unlink")) {
            if (unlink(ARG(1)) < 0)
                die(op, ARG(1));
            i += 1;
        } else if (!strcmp(op, "symlink")) {
            if (symlink(ARG(1), ARG(2)) < 0)
                die(op, ARG(2));
            i += 2;
        } else if (!strcmp(op, "link")) {
            if (link(ARG(1), ARG(2)) < 0)
                die(op, ARG(2));
            i += 2;
        } else if (!strcmp(op, "fd1") || !strcmp(op, "fd2")) {
            char *t = unescape(ARG(1));
            writeall(op[2] - '0', t, strlen(t), op);
            free(t);
            i += 1;
        } else if (!strcmp(op, "ewrite")) {
            char *t = unescape(ARG(2));
            errno = EILSEQ;
            ssize_t w = write(slot[K(ARG(1))], t, strlen(t));
            out("ewrite %zd errno %s\n", w, errno == EILSEQ ? "kept" : strerror(errno));
            free(t);
            i += 2;
        } else if (!strcmp(op, "sync")) {
            sync();
        } else if (!strcmp(op, "syncfs")) {
            if (syncfs(slot[K(ARG(1))]) < 0)
                die(op, NULL);
            i += 1;
        } else if (!strcmp(op, "closerange")) {
            if (close_range((unsigned)atoi(ARG(1)), ~0U, 0) < 0)
                die(op, NULL);
            i += 1;
        } else if (!strcmp(op, "tryclose")) {
            errno = 0;
            int r = close(atoi(ARG(1)));
            out("tryclose %d %s\n", r, r < 0 ? strerror(errno) : "ok");
            i += 1;
        } else if (!strcmp(op, "nextfd")) {
            int fd = open("/dev/null", O_RDONLY);
            out("nextfd %d\n", fd);
            close(fd);
        } else if (!strcmp(op, "sigwrite")) {
            sig_fd = slot[K(ARG(1))];
            struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
            sigaction(SIGALRM, &sa, NULL);
            struct itimerval it = {{0, 50}, {0, 50}};
            setitimer(ITIMER_REAL, &it, NULL);
            int n = atoi(ARG(2));
            for (int j = 0; j < n; j++) {
                char b[64];
                int m = snprintf(b, sizeof b, "main %d\n", j);
                writeall(sig_fd, b, (size_t)m, op);
            }
            struct itimerval off = {{0, 0}, {0, 0}};
            setitimer(ITIMER_REAL, &off, NULL);
            out("sigs %d\n", (int)sig_count);
            i += 2;
        } else if (!strcmp(op, "fillfds")) {
            while (open("/dev/null", O_RDONLY) >= 0)
                ;
            if (errno != EMFILE)
                die(op, NULL);
        } else if (!strcmp(op, "sleep")) {
            struct timespec ts = {atol(ARG(1)) / 1000, atol(ARG(1)) % 1000 * 1000000L};
            nanosleep(&ts, NULL);
            i += 1;
        } else if (!strcmp(op, "exit")) {
            exit(atoi(ARG(1)));
        } else if (!strcmp(op, "_exit")) {
            _exit(atoi(ARG(1)));
        } else {
            fprintf(stderr, "shim_ops: unknown op %s\n", op);
            return 1;
        }
    }
    return 0;
}
