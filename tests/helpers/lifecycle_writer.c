/* lifecycle_writer.c - appends records with write(2), then leaves the process in a chosen way.
 *
 * lifecycle_writer PATH MODE [N]
 *   Writes N records "p<pid-tag> <i>\n" (default 1000) to PATH (O_WRONLY|O_APPEND|O_CREAT),
 *   then by MODE:
 *     return | exit | _exit | _Exit | quick_exit   leave that way (status 0)
 *     exec            execv("/bin/true")
 *     exec-fail       execv of a missing program, then N more records, return
 *     execvpe | fexecve                            other exec entry points (run /bin/true)
 *     fork            fork; the child writes N records tagged c, _exit; the parent waits,
 *                     then writes N more tagged q
 *     vfork-exec | posix_spawn | system | popen   start /bin/true that way, then N more (q)
 *     loop            keep writing (one record per 100 us), printing "ready\n" to stdout
 *                     after the first N records; for signal tests
 *     handler-sigaction | handler-signal           as loop, with a SIGTERM handler
 *                     (installed with sigaction or signal) that writes "handled\n" and
 *                     calls exit(3)
 *     dfl-query       as loop, after checking that sigaction(SIGTERM) reports SIG_DFL
 *                     and that re-setting SIG_DFL keeps the flush-on-signal behaviour
 *     fsync           after the N records, wait 0.5 s, print "ready\n", then fsync(PATH)
 *                     (a barrier: it waits for a batch in flight)
 *     assert          after the N records, a line to stderr (stdio), then a failing assert()
 *     segv            after the N records, a line to stderr, then a write through NULL
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int fd;

static void records(char tag, int n)
{
    char line[64];
    for (int i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "%c %d\n", tag, i);
        if (write(fd, line, (size_t)len) != len)
            _exit(2);
    }
}

static void on_term(int sig)
{
    (void)sig;
    static const char msg[] = "handled\n";
    if (write(fd, msg, sizeof msg - 1) < 0)
        _exit(2);
    exit(3);
}

static void run_loop(void)
{
    char line[64];
    for (long i = 0;; i++) {
        int len = snprintf(line, sizeof line, "l %ld\n", i);
        if (write(fd, line, (size_t)len) != len)
            _exit(2);
        if (i == 999) {
            printf("ready\n");
            fflush(stdout);
        }
        usleep(100);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 1000;
    fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return 2;
    char *const true_argv[] = {(char *)"true", NULL};

    if (!strcmp(mode, "loop"))
        run_loop();
    if (!strcmp(mode, "handler-sigaction")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        run_loop();
    }
    if (!strcmp(mode, "handler-signal")) {
        signal(SIGTERM, on_term);
        run_loop();
    }
    if (!strcmp(mode, "dfl-query")) {
        struct sigaction old;
        if (sigaction(SIGTERM, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO))
            return 4;
        if (signal(SIGTERM, SIG_DFL) != SIG_DFL)
            return 5;
        run_loop();
    }

    records('p', n);
    if (!strcmp(mode, "assert")) {
        fprintf(stderr, "about to fail after %d records\n", n);
        assert(n < 0);
    }
    if (!strcmp(mode, "segv")) {
        fprintf(stderr, "about to fault after %d records\n", n);
        *(volatile int *)(intptr_t)(n - n) = 1;
    }
    if (!strcmp(mode, "return"))
        return 0;
    if (!strcmp(mode, "exit"))
        exit(0);
    if (!strcmp(mode, "_exit"))
        _exit(0);
    if (!strcmp(mode, "_Exit"))
        _Exit(0);
    if (!strcmp(mode, "quick_exit"))
        quick_exit(0);
    if (!strcmp(mode, "fsync")) {
        usleep(500000);
        printf("ready\n");
        fflush(stdout);
        return fsync(fd) == 0 ? 0 : 9;
    }
    if (!strcmp(mode, "exec")) {
        execv("/bin/true", true_argv);
        return 6;
    }
    if (!strcmp(mode, "execvpe")) {
        execvpe("true", true_argv, environ);
        return 6;
    }
    if (!strcmp(mode, "fexecve")) {
        int tfd = open("/bin/true", O_RDONLY | O_CLOEXEC);
        fexecve(tfd, true_argv, environ);
        return 6;
    }
    if (!strcmp(mode, "exec-fail")) {
        execv("/nonexistent/program", true_argv);
        records('q', n);
        return 0;
    }
    if (!strcmp(mode, "fork")) {
        pid_t pid = fork();
        if (pid == 0) {
            records('c', n);
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        records('q', n);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 7;
    }
    if (!strcmp(mode, "vfork-exec")) {
        pid_t pid = vfork();
        if (pid == 0) {
            execv("/bin/true", true_argv);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        records('q', n);
        return 0;
    }
    if (!strcmp(mode, "posix_spawn")) {
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ) != 0)
            return 8;
        int st;
        waitpid(pid, &st, 0);
        records('q', n);
        return 0;
    }
    if (!strcmp(mode, "system")) {
        if (system("true") != 0)
            return 8;
        records('q', n);
        return 0;
    }
    if (!strcmp(mode, "popen")) {
        FILE *p = popen("true", "r");
        if (!p || pclose(p) != 0)
            return 8;
        records('q', n);
        return 0;
    }
    return 2;
}
