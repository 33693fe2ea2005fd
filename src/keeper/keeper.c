/* keeper.c - bufshim-keeper: one process per user and spool folder that writes what the spools
 * of dead processes held (kill -9, the OOM killer), and `bufshim recover`'s one pass. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "spool_i.h"

/*
 * How it runs. The shim starts it at a process's first spool when no keeper holds
 * "keeper.lock" in the spool folder (it arrives holding the lock, --lock-fd), and so does the
 * launcher before it execs the program (then it takes the lock itself, or exits 0 at once
 * when another keeper has it). It finishes the spools whose owners are gone, then watches the
 * folder (a full look every second) and each live owner through a
 * pidfd; when an owner dies it finishes that owner's spools, which a clean exit has already
 * removed. It exits once no owner it knows is alive and no spool is left, after a linger
 * (BUFSHIM_KEEPER_LINGER seconds, default 10) so that a script running many short commands
 * keeps one keeper.
 *
 * Decision: the keeper keeps no descriptor of the program's. A pipe's reader would not see
 * its end of file while the keeper held the pipe's write end, a terminal held by a background
 * process keeps an ssh session or an expect script waiting, and an open file keeps a mount
 * busy. Its lines go to "keeper.log" in the spool folder. The lines of what it wrote or
 * refused also go to the stderr it was started with, reopened by path for each line, when
 * that was a terminal or a regular file opened for appending (a file written at an offset
 * would overwrite the keeper's line with the program's next write); a pipe or a socket
 * cannot be reopened and gets nothing. Its cwd is "/", its stdin and stdout /dev/null.
 */

#define DEFAULT_LINGER 10.0
#define RESCAN_MS 1000
#define LOG_MAX (1u << 20)

static const char *dir;
static int dirfd_ = -1, logfd = -1, lockfd = -1;
static double linger = DEFAULT_LINGER;

/* Where the stderr it was started with leads (kind 0: nowhere it can reach again). */
static struct {
    int kind; /* 1 a regular file opened with O_APPEND, 2 a terminal */
    char path[PATH_MAX];
    dev_t dev, rdev;
    ino_t ino;
} err_to;

struct owner {
    pid_t pid;
    uint64_t starttime; /* the process's (ticks), read by the keeper */
    int pidfd; /* -1: no pidfd (an old kernel): its start time is read each round */
};
static struct owner *owners;
static size_t nowners, capowners;

/* Spools whose failure was reported (a spool another reader holds is retried quietly). */
struct noted {
    char name[NAME_MAX + 1];
    int err;
};
static struct noted *noted;
static size_t nnoted, capnoted;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * size);
    if (!n) {
        perror("bufshim-keeper: realloc");
        exit(1);
    }
    *p = n;
    *cap = c;
}

static void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logline(const char *fmt, ...)
{
    if (logfd < 0)
        return;
    char buf[2048];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    int n = (int)strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(buf + n, sizeof buf - (size_t)n, " bufshim-keeper[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(logfd, buf, (size_t)n) < 0) {
        /* nowhere else to say it */
    }
}

/* Notes where fd 2 leads (see the decision above); the caller then drops fd 2. */
static void note_stderr(void)
{
    struct stat st;
    if (fstat(2, &st) < 0)
        return;
    if (S_ISREG(st.st_mode)) {
        int fl = fcntl(2, F_GETFL);
        if (fl < 0 || !(fl & O_APPEND))
            return;
        err_to.kind = 1;
    } else if (S_ISCHR(st.st_mode) && isatty(2)) {
        err_to.kind = 2;
    } else {
        return;
    }
    ssize_t n = readlink("/proc/self/fd/2", err_to.path, sizeof err_to.path - 1);
    if (n <= 0 || err_to.path[0] != '/') {
        err_to.kind = 0;
        return;
    }
    err_to.path[n] = 0;
    err_to.dev = st.st_dev;
    err_to.ino = st.st_ino;
    err_to.rdev = st.st_rdev;
}

/* One "bufshim: ..." line to the program's stderr, when it can be reached again. */
static void tell_program(const char *msg)
{
    if (!err_to.kind)
        return;
    int fd = open(err_to.path, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 &&
        (err_to.kind == 1
             ? S_ISREG(st.st_mode) && st.st_dev == err_to.dev && st.st_ino == err_to.ino
             : S_ISCHR(st.st_mode) && st.st_rdev == err_to.rdev)) {
        char line[2048];
        int n = snprintf(line, sizeof line, "bufshim: %s\n", msg);
        if (n > (int)sizeof line - 1)
            n = (int)sizeof line - 1;
        if (write(fd, line, (size_t)n) < 0) {
            /* the terminal is gone or full: keeper.log has the line */
        }
    }
    close(fd);
}

static long pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* 1 when the process pid that made a spool at created (spool_i.h: its start time is at or
 * before it) still runs (a zombie does not); *start gets its start time. */
static int owner_alive(pid_t pid, uint64_t created, int *pidfd_out, uint64_t *start)
{
    *pidfd_out = -1;
    if (!bs_spool_owner_may_run(pid, created, start))
        return 0;
    uint64_t starttime = *start;
    int fd = (int)pidfd_open_(pid);
    if (fd < 0)
        return errno != ESRCH; /* no pidfds: trust the start time */
    /* The start time again, now that the pidfd pins the process: the pid was not reused
       between the two looks. A pidfd is readable once the process has exited. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (bs_proc_starttime(pid) != starttime || poll(&p, 1, 0) != 0) {
        close(fd);
        return 0;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    *pidfd_out = fd;
    return 1;
}

/* The watched owner of a spool made by pid at created, or NULL. */
static struct owner *find_owner(pid_t pid, uint64_t created)
{
    for (size_t i = 0; i < nowners; i++)
        if (owners[i].pid == pid && bs_spool_started_by(owners[i].starttime, created))
            return &owners[i];
    return NULL;
}

static struct noted *find_noted(const char *name)
{
    for (size_t i = 0; i < nnoted; i++)
        if (strcmp(noted[i].name, name) == 0)
            return &noted[i];
    return NULL;
}

static int spool_exists(const char *name)
{
    struct stat st;
    return fstatat(dirfd_, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Finishes a dead owner's spool; what it did goes to keeper.log and, for what was written or
   refused, to the program's stderr. */
static void finish(const char *name)
{
    char msg[1024] = "";
    ssize_t r = bs_spool_finish(dirfd_, name, msg, sizeof msg);
    if (!msg[0])
        snprintf(msg, sizeof msg, "%s: %s", name, r < 0 ? strerror((int)-r) : "finished");
    if (r >= 0) {
        logline("%s", msg);
        if (r > 0)
            tell_program(msg);
        return;
    }
    if (spool_exists(name)) { /* not refused, e.g. another reader has it: retried quietly */
        struct noted *n = find_noted(name);
        if (n && n->err == (int)r)
            return;
        if (!n && strlen(name) < sizeof noted->name) {
            grow((void **)&noted, &capnoted, nnoted + 1, sizeof *noted);
            n = &noted[nnoted++];
            strcpy(n->name, name);
        }
        if (n)
            n->err = (int)r;
        logline("%s (retried)", msg);
        return;
    }
    logline("%s", msg);
    tell_program(msg);
}

/*
 * A status file (src/shim/report_i.h) whose process is gone: its Prometheus textfile, when it
 * has one that is still that process's, is rewritten to say bufshim_up 0 (the figures are
 * not live any more), and the status file is removed. Decision: the keeper does it because
 * it is the one process that learns of a death within a second; `bufshim status` does the
 * same when it meets one.
 */
static void bury_status(const char *name)
{
    int pid;
    unsigned long long start;
    char tail[16];
    if (sscanf(name, "%d-%llu.%15s", &pid, &start, tail) != 3 || strcmp(tail, "status") != 0 ||
        bs_proc_starttime(pid) == start)
        return;
    char buf[8192], metrics[4096] = "";
    int fd = openat(dirfd_, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && st.st_uid == getuid() ? read(fd, buf, sizeof buf - 1) : -1;
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *l2 = strchr(buf, '\n');
    char *end = l2 ? strchr(l2 + 1, '\n') : NULL;
    if (strncmp(buf, "bufshim-status 1\n", 17) != 0 || !end || strncmp(l2 + 1, "metrics ", 8) != 0)
        return;
    snprintf(metrics, sizeof metrics, "%.*s", (int)(end - (l2 + 9)), l2 + 9);
    if (metrics[0] == '/') {
        char prom[4200], tmp[4200], old[65536], label[64];
        snprintf(prom, sizeof prom, "%s/%d.prom", metrics, pid);
        snprintf(tmp, sizeof tmp, "%s/.%d.prom.tmp", metrics, pid);
        snprintf(label, sizeof label, "starttime=\"%llu\"}", start);
        int pf = open(prom, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t m = pf >= 0 ? read(pf, old, sizeof old - 1) : -1;
        if (pf >= 0)
            close(pf);
        if (m > 0) {
            old[m] = 0;
            char *at = strstr(old, label);
            if (at && strncmp(at + strlen(label), " 1", 2) == 0) {
                FILE *f = fopen(tmp, "w");
                if (f) {
                    fprintf(f,
                            "# HELP bufshim_up 1 while the process runs; 0 once it has ended "
                            "without removing this file (its figures are gone with it)\n"
                            "# TYPE bufshim_up gauge\nbufshim_up{pid=\"%d\",%s 0\n",
                            pid, label);
                    if (fclose(f) == 0 && rename(tmp, prom) == 0)
                        logline("%d.prom: process %d is gone: bufshim_up 0", pid, pid);
                    else
                        unlink(tmp);
                }
            }
        }
    }
    unlinkat(dirfd_, name, 0);
}

/*
 * One look at the folder: spools of owners that are gone are finished, live owners not yet
 * watched are. Returns the spools left (of live owners, or being finished by another reader).
 */
static size_t scan(void)
{
    int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        logline("cannot read %s: %s", dir, strerror(errno));
        return 1; /* cannot tell: do not take it for empty */
    }
    size_t left = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t pid;
        uint64_t st;
        size_t len = strlen(e->d_name);
        if (len > 7 && strcmp(e->d_name + len - 7, ".status") == 0) {
            bury_status(e->d_name);
            continue;
        }
        if (!bs_spool_parse_name(e->d_name, &pid, &st))
            continue;
        if (!find_owner(pid, st)) {
            int pidfd;
            uint64_t start;
            if (!owner_alive(pid, st, &pidfd, &start)) {
                finish(e->d_name);
                if (spool_exists(e->d_name))
                    left++;
                continue;
            }
            grow((void **)&owners, &capowners, nowners + 1, sizeof *owners);
            owners[nowners++] = (struct owner){pid, start, pidfd};
        }
        left++;
    }
    closedir(d);
    /* Names noted as failing that are gone now are forgotten. */
    for (size_t i = 0; i < nnoted;)
        if (!spool_exists(noted[i].name))
            noted[i] = noted[--nnoted];
        else
            i++;
    return left;
}

static void drop_owner(size_t i)
{
    if (owners[i].pidfd >= 0)
        close(owners[i].pidfd);
    owners[i] = owners[--nowners];
}

/* Owners without a pidfd: their start time, each round. */
static void check_unwatched(void)
{
    for (size_t i = 0; i < nowners;)
        if (owners[i].pidfd < 0 && bs_proc_starttime(owners[i].pid) != owners[i].starttime)
            drop_owner(i);
        else
            i++;
}

static int take_lock(int tries)
{
    for (int i = 0; i < tries; i++) {
        if (flock(lockfd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        /* A process testing whether a keeper runs holds the lock for microseconds. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -EWOULDBLOCK;
}

static void note_pid_in_lock(void)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(lockfd, 0) < 0 || pwrite(lockfd, buf, (size_t)n, 0) < 0) {
        /* only informative */
    }
}

/*
 * Nothing is left: 1 when the keeper may exit. A process that created its first spool after
 * the last look may have tested the lock while it was still held and counted on this keeper:
 * the lock is released first, the folder looked at again, and the lock taken back when
 * something arrived (or left to the keeper that took it meanwhile).
 */
static int may_exit(void)
{
    flock(lockfd, LOCK_UN);
    size_t left = scan();
    if (left == 0 && nowners == 0)
        return 1;
    if (take_lock(50) == 0) {
        note_pid_in_lock();
        return 0;
    }
    logline("another keeper took over");
    return 1;
}

static int open_dir(const char *d)
{
    bs_spool_configure(d, 1);
    dir = bs_spool_dir();
    if (!dir)
        return -1;
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dirfd_ < 0 ? -1 : 0;
}

static int recover(void)
{
    size_t finished = 0, refused = 0, alive = 0, old_refused = 0;
    DIR *d = fdopendir(dup(dirfd_));
    if (!d) {
        printf("bufshim: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t pid;
        uint64_t st;
        size_t len = strlen(e->d_name);
        if (len > 8 && strcmp(e->d_name + len - 8, ".refused") == 0) {
            old_refused++;
            continue;
        }
        if (!bs_spool_parse_name(e->d_name, &pid, &st))
            continue;
        int pidfd;
        uint64_t start;
        if (owner_alive(pid, st, &pidfd, &start)) {
            if (pidfd >= 0)
                close(pidfd);
            printf("%s/%s: left: its process %d still runs\n", dir, e->d_name, (int)pid);
            alive++;
            continue;
        }
        char msg[1024] = "";
        ssize_t r = bs_spool_finish(dirfd_, e->d_name, msg, sizeof msg);
        if (!msg[0])
            snprintf(msg, sizeof msg, "%s: %s", e->d_name, r < 0 ? strerror((int)-r) : "finished");
        printf("%s\n", msg);
        if (r < 0)
            refused++;
        else
            finished++;
    }
    closedir(d);
    if (!finished && !refused && !alive)
        printf("bufshim: nothing to recover in %s\n", dir);
    if (old_refused)
        printf("bufshim: %zu spool%s refused before %s left in %s (*.refused)\n", old_refused,
               old_refused == 1 ? "" : "s", old_refused == 1 ? "is" : "are", dir);
    fflush(stdout);
    return refused ? 1 : 0;
}

/* The program's signal settings are not the keeper's: defaults, every signal unblocked. */
static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void detach(int keep_fd)
{
    if (setsid() < 0) {
        /* already a session leader */
    }
    if (chdir("/") < 0) {
        /* stays where it was */
    }
    note_stderr();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        for (int fd = 0; fd < 3; fd++)
            if (fd != null)
                dup2(null, fd);
        if (null > 2)
            close(null);
    }
    /* Whatever else it inherited (the launcher's shell may pass descriptors on). */
    int lo = keep_fd == 3 ? 4 : 3;
    if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
        for (int fd = lo; fd < 1024; fd++)
            if (fd != keep_fd)
                close(fd);
}

static void open_log(void)
{
    struct stat st;
    if (fstatat(dirfd_, "keeper.log", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size > LOG_MAX)
        renameat(dirfd_, "keeper.log", dirfd_, "keeper.log.old");
    logfd =
        openat(dirfd_, "keeper.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

/*
 * Spools belong on a tmpfs. Measured on ext4 (bench/results/crashsafe-ab.md): a spool file whose
 * size reaches a later chunk's region (2 TiB and more) makes its first page faults and its
 * removal cost milliseconds. One line in keeper.log per keeper start says so (not to the
 * program's stderr: a test suite's folders under /tmp would print it in every test).
 */
static void warn_not_tmpfs(void)
{
    struct statfs fs;
    if (fstatfs(dirfd_, &fs) != 0 || fs.f_type == 0x01021994 /* TMPFS_MAGIC */ ||
        fs.f_type == (typeof(fs.f_type))0x858458f6 /* RAMFS_MAGIC */)
        return;
    char msg[PATH_MAX + 160];
    snprintf(msg, sizeof msg,
             "spool folder %s is not a tmpfs: a process with more than one chunk pays "
             "milliseconds for its spool there (use /dev/shm or $XDG_RUNTIME_DIR)", dir);
    logline("%s", msg);
}

static int usage(void)
{
    fprintf(stderr, "Usage: bufshim-keeper [--dir DIR]      (keeps spools; normally started by "
                    "libbufshim.so or bufshim)\n"
                    "       bufshim-keeper --recover [--dir DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL;
    int recover_mode = 0, given_lock = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--recover") == 0)
            recover_mode = 1;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir_arg = argv[++i];
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            dir_arg = argv[i] + 6;
        else if (strcmp(argv[i], "--lock-fd") == 0 && i + 1 < argc)
            given_lock = atoi(argv[++i]);
        else
            return usage();
    }
    if (!dir_arg)
        dir_arg = getenv("BUFSHIM_SPOOL_DIR");
    const char *lg = getenv("BUFSHIM_KEEPER_LINGER");
    if (lg && lg[0]) {
        char *end;
        double v = strtod(lg, &end);
        if (*end == 0 && v >= 0)
            linger = v;
    }

    if (recover_mode) {
        if (open_dir(dir_arg) < 0) {
            printf("bufshim: no spool folder: %s\n", strerror(errno));
            return 1;
        }
        return recover();
    }

    reset_signals();
    detach(given_lock);
    if (open_dir(dir_arg) < 0)
        return 1; /* the shim said why when it could not use the folder either */
    open_log();
    if (given_lock >= 0) {
        struct stat a, b;
        if (fstat(given_lock, &a) < 0 ||
            fstatat(dirfd_, "keeper.lock", &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_dev != b.st_dev ||
            a.st_ino != b.st_ino) {
            logline("--lock-fd %d is not %s/keeper.lock", given_lock, dir);
            return 1;
        }
        lockfd = given_lock;
        fcntl(lockfd, F_SETFD, FD_CLOEXEC);
        /* The starter took the lock for it; taking it again on the same description is a
           no-op that confirms it. */
        if (take_lock(1) < 0)
            return 0;
    } else {
        lockfd = openat(dirfd_, "keeper.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lockfd < 0) {
            logline("cannot open %s/keeper.lock: %s", dir, strerror(errno));
            return 1;
        }
        if (take_lock(20) < 0)
            return 0; /* another keeper runs */
    }
    note_pid_in_lock();
    logline("started (lingers %.3g s once nothing is left)", linger);
    warn_not_tmpfs();

    /* Decision: no inotify. A look at the folder every RESCAN_MS finds new owners soon
       enough (a dead one's spool is finished within about a second either way), and a
       keeper woken by every spool a short process makes and removes competed with those
       processes for the CPUs: +0.15 to 0.2 ms per `echo >> log` on two cores. */
    int ino = -1;

    struct pollfd *pfds = NULL;
    size_t cappfds = 0;
    uint64_t idle_since = 0, last_scan = 0;
    int rescan = 1;
    size_t left = 1;
    for (;;) {
        uint64_t t = now_ms();
        if (rescan || t - last_scan >= RESCAN_MS) {
            check_unwatched();
            left = scan();
            last_scan = t;
            rescan = 0;
        }
        if (left == 0 && nowners == 0) {
            if (!idle_since)
                idle_since = t;
            if ((double)(t - idle_since) >= linger * 1000.0) {
                if (may_exit())
                    break;
                idle_since = 0;
                continue;
            }
        } else {
            idle_since = 0;
        }
        int timeout = RESCAN_MS;
        if (idle_since) {
            double rest = linger * 1000.0 - (double)(t - idle_since);
            if (rest < timeout)
                timeout = rest < 0 ? 0 : (int)rest + 1;
        }
        grow((void **)&pfds, &cappfds, nowners + 1, sizeof *pfds);
        size_t n = 0;
        if (ino >= 0)
            pfds[n++] = (struct pollfd){.fd = ino, .events = POLLIN};
        size_t first_owner = n;
        for (size_t i = 0; i < nowners; i++)
            pfds[n++] = (struct pollfd){.fd = owners[i].pidfd, .events = POLLIN};
        int r = poll(pfds, n, timeout);
        if (r <= 0)
            continue;
        if (ino >= 0 && pfds[0].revents) {
            char buf[4096];
            while (read(ino, buf, sizeof buf) > 0)
                ;
            rescan = 1;
        }
        /* Owners that died, from the last index down (drop_owner moves the last one). */
        for (size_t i = nowners; i-- > 0;) {
            if (pfds[first_owner + i].revents) {
                drop_owner(i);
                rescan = 1; /* its spools, if any, are finished by the scan */
            }
        }
    }
    logline("exits: no process with a spool is alive and no spool is left");
    return 0;
}
