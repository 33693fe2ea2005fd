/* check.h - the assertion of the C unit tests: report the failed condition, fail the test. */
#ifndef BUFSHIM_TEST_CHECK_H
#define BUFSHIM_TEST_CHECK_H

#include <stdio.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/*
 * Runs one test in a child process of its own and returns 0 when it passed. A test that
 * fails returns early, leaving what it made (writers, their threads, the engine's global
 * state) behind it: run in the same process, the next tests would start from that and fail
 * in a cascade, or crash. A child that dies of a signal is a failure that says which.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static inline int check_run_isolated(int (*test)(void), const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        exit(test() ? 1 : 0);
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return 1;
        }
    }
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "%s: killed by signal %d\n", name, WTERMSIG(st));
        return 1;
    }
    return WEXITSTATUS(st) != 0;
}

#endif /* BUFSHIM_TEST_CHECK_H */
