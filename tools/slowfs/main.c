/* main.c - slowfs command line: a slow, faulty, recording pass-through FUSE filesystem. */
#include "slowfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage[] =
    "usage: slowfs BACKING MOUNTPOINT [--latency OP=DUR[,OP=DUR...]] [--log FILE] [-f] [-d]\n"
    "              [--page-cache] [--intr]\n"
    "              [--exit-with-parent] [-o FUSE_OPTION[,...]]...\n"
    "Mounts a pass-through view of BACKING at MOUNTPOINT that delays, fails and hangs\n"
    "operations on command (write lines to MOUNTPOINT/.slowfs/ctl) and logs each\n"
    "operation as one JSON line to FILE. See tools/slowfs/README.md.\n"
    "  --latency LIST  initial latencies, e.g. open=5ms,write=2ms,release=5ms,fsync=20ms\n"
    "  --log FILE      append the event log to FILE\n"
    "  --page-cache    go through the kernel's page cache (shared mmap works, but writes\n"
    "                  arrive split at page boundaries); default: direct I/O, one write(2)\n"
    "                  up to 1 MiB is one logged write\n"
    "  --intr          signals interrupt hung calls (EINTR), as on an NFS intr mount;\n"
    "                  default: a hung caller waits even through SIGKILL (hard mount)\n"
    "  --exit-with-parent  unmount and exit when the parent process dies\n"
    "  -f              stay in the foreground\n"
    "  -d              FUSE debug output (implies -f)\n"
    "  -o OPTIONS      passed to FUSE (allow_other, max_threads=N, ...)\n";

/* libfuse 3.14's fuse_main passes its "unset" idle-thread count (UINT_MAX) on and then
 * warns "Ignoring invalid max threads value 4294967295" at every start; that one line is
 * noise, everything else goes to stderr as libfuse would print it. */
static void log_filter(enum fuse_log_level level, const char *fmt, va_list ap)
{
    (void)level;
    if (strstr(fmt, "Ignoring invalid max threads value") != NULL)
        return;
    vfprintf(stderr, fmt, ap);
}

/* libfuse interrupts a worker with SIGUSR1 when the caller got a signal (--intr); the
 * handler only has to exist so the signal does not kill the daemon. libfuse installs it
 * itself only when intr is set before fuse_new, which fuse_main does not allow. */
static void on_intr_signal(int sig)
{
    (void)sig;
}

/* The value of "--name VALUE" or "--name=VALUE" at argv[*i], advancing *i; NULL when
 * argv[*i] is not that option. Exits on a missing value. */
static const char *option_value(char **argv, int argc, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "slowfs: %s needs a value\n%s", name, usage);
        exit(2);
    }
    return argv[++*i];
}

int main(int argc, char **argv)
{
    const char *positional[2] = {NULL, NULL};
    int npositional = 0;
    const char *latency = NULL, *logpath = NULL;
    struct sfs_options options = {.backing_fd = -1};
    int exit_with_parent = 0;
    /* The arguments handed to FUSE: program, mount point, our defaults, the user's. */
    char **fargv = calloc((size_t)argc + 8, sizeof *fargv);
    int fargc = 0;
    if (!fargv)
        return 1;
    fargv[fargc++] = argv[0];
    fargv[fargc++] = NULL; /* the mount point, filled in below */

    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if ((v = option_value(argv, argc, &i, "--latency")) != NULL) {
            latency = v;
        } else if ((v = option_value(argv, argc, &i, "--log")) != NULL) {
            logpath = v;
        } else if (!strcmp(argv[i], "--page-cache")) {
            options.page_cache = 1;
        } else if (!strcmp(argv[i], "--intr")) {
            options.intr = 1;
        } else if (!strcmp(argv[i], "--exit-with-parent")) {
            exit_with_parent = 1;
        } else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "-d") || !strcmp(argv[i], "-s")) {
            fargv[fargc++] = argv[i];
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            fargv[fargc++] = argv[i];
            fargv[fargc++] = argv[++i];
        } else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
            fargv[fargc++] = argv[i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "slowfs: unknown option %s\n%s", argv[i], usage);
            return 2;
        } else if (npositional < 2) {
            positional[npositional++] = argv[i];
        } else {
            fprintf(stderr, "slowfs: too many arguments\n%s", usage);
            return 2;
        }
    }
    if (npositional != 2) {
        fputs(usage, stderr);
        return 2;
    }

    char err[256];
    if (sfs_control_init(latency, err, sizeof err) < 0) {
        fprintf(stderr, "slowfs: --latency %s: %s\n", latency, err);
        return 2;
    }
    /* The backing directory is held open from before the mount, so that it stays
     * reachable even when the mount point hides it (BACKING == MOUNTPOINT works). */
    int backing_fd = open(positional[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    options.backing_fd = backing_fd;
    if (backing_fd < 0) {
        fprintf(stderr, "slowfs: %s: %s\n", positional[0], strerror(errno));
        return 1;
    }
    if (logpath) {
        int rc = sfs_log_open(logpath);
        if (rc < 0) {
            fprintf(stderr, "slowfs: --log %s: %s\n", logpath, strerror(-rc));
            return 1;
        }
    }
    /* A test runner that dies without unmounting must not leave the daemon behind: the
     * SIGTERM makes libfuse leave its loop and unmount. */
    if (exit_with_parent) {
        pid_t parent = getppid();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            return 1;
    }
    if (options.intr) {
        struct sigaction sa = {.sa_handler = on_intr_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
    }
    fuse_set_log_func(log_filter);
    fargv[1] = (char *)positional[1];
    /* Many threads: a hung request holds one, and must not stall the others. */
    fargv[fargc++] = (char *)"-o";
    fargv[fargc++] = (char *)"fsname=slowfs,subtype=slowfs,max_threads=64";
    fargv[fargc] = NULL;
    int rc = fuse_main(fargc, fargv, sfs_ops(&options), NULL);
    free(fargv);
    close(backing_fd);
    return rc;
}
