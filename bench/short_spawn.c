/* short_spawn.c - per-process cost of the shim, measured with as little around it as C allows.
 *
 * usage: short_spawn N LIB FILE PROG [ARG]
 *
 * Spawns PROG [ARG] 2N times with posix_spawn, its fd 1 opened O_APPEND on FILE as a shell's
 * `>>` would, alternating process by process with and without LD_PRELOAD=LIB (the rest of the
 * environment as given, so BUFSHIM_PATHS must match FILE), waits for each, and prints the
 * median time from spawn to reaped of each kind and their difference. tools/bench's (h) does
 * the same from Python; this one leaves out the interpreter's own noise.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 5 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: short_spawn N LIB FILE PROG [ARG]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    size_t ne = 0;
    for (char **e = environ; *e; e++)
        ne++;
    char **env[2] = {calloc(ne + 2, sizeof(char *)), calloc(ne + 2, sizeof(char *))};
    double *t[2] = {calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double))};
    char preload[4096];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", argv[2]);
    if (!env[0] || !env[1] || !t[0] || !t[1])
        return 1;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) {
            env[0][k] = env[1][k] = *e;
            k++;
        }
    env[1][k] = preload;
    char *av[] = {argv[4], argc > 5 ? argv[5] : NULL, NULL};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            int s = (i & 1) ? 1 - j : j;
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, 1, argv[3], O_WRONLY | O_APPEND | O_CREAT, 0644);
            pid_t pid;
            int status;
            double t0 = now_ms();
            if (posix_spawn(&pid, argv[4], &fa, NULL, av, env[s]) != 0 ||
                waitpid(pid, &status, 0) != pid || status != 0) {
                fprintf(stderr, "short_spawn: %s failed\n", argv[4]);
                return 1;
            }
            t[s][i] = now_ms() - t0;
            posix_spawn_file_actions_destroy(&fa);
        }
    qsort(t[0], (size_t)n, sizeof(double), cmp);
    qsort(t[1], (size_t)n, sizeof(double), cmp);
    printf("without %.3f ms  with %.3f ms  difference %+.3f ms (medians of %d each)\n",
           t[0][n / 2], t[1][n / 2], t[1][n / 2] - t[0][n / 2], n);
    return 0;
}
