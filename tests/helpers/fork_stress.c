/* fork_stress.c - threads appending while the main thread forks (and execs) children.
 *
 * fork_stress DIR THREADS CHILDREN MODE
 *   THREADS threads append records "t<k> <i>\n" with write(2) to DIR/a.log, b.log and
 *   c.log in turn (one shared O_APPEND descriptor per file) until the main thread is
 *   done. The main thread starts CHILDREN children one after another and waits
 *   for each:
 *     fork   the child writes "c<j> <f>\n" to each file and leaves with _exit(0)
 *     exec   the child execs /bin/sh -c 'echo "x<j> <f>" >> FILE' for each file
 *   Exit 0 when every child exited 0; prints the number of records per thread to
 *   stdout as "t<k> <count>".
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[3];
static atomic_int stop;
static const char *names[3] = {"a.log", "b.log", "c.log"};

static void *produce(void *arg)
{
    long k = (long)arg, i = 0;
    char line[64];
    while (!atomic_load(&stop)) {
        int n = snprintf(line, sizeof line, "t%ld %ld\n", k, i);
        if (write(fds[i % 3], line, (size_t)n) != n)
            _exit(3);
        /* Pause now and then: the main thread needs CPU to fork on 2 cores. */
        if (++i % 64 == 0)
            usleep(200);
    }
    return (void *)i;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    const char *dir = argv[1];
    int threads = atoi(argv[2]), children = atoi(argv[3]);
    int do_exec = strcmp(argv[4], "exec") == 0;
    char paths[3][4096];
    for (int f = 0; f < 3; f++) {
        snprintf(paths[f], sizeof paths[f], "%s/%s", dir, names[f]);
        fds[f] = open(paths[f], O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fds[f] < 0)
            return 2;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (long k = 0; k < threads; k++)
        pthread_create(&t[k], NULL, produce, (void *)k);

    int bad = 0;
    for (int j = 0; j < children; j++) {
        pid_t pid = fork();
        if (pid < 0)
            return 4;
        if (pid == 0) {
            if (do_exec) {
                char cmd[16384];
                snprintf(cmd, sizeof cmd,
                         "echo \"x%d 0\" >> '%s'; echo \"x%d 1\" >> '%s'; echo \"x%d 2\" >> '%s'",
                         j, paths[0], j, paths[1], j, paths[2]);
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
                _exit(127);
            }
            char line[64];
            for (int f = 0; f < 3; f++) {
                int n = snprintf(line, sizeof line, "c%d %d\n", j, f);
                if (write(fds[f], line, (size_t)n) != n)
                    _exit(3);
            }
            _exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    atomic_store(&stop, 1);
    for (long k = 0; k < threads; k++) {
        void *count;
        pthread_join(t[k], &count);
        printf("t%ld %ld\n", k, (long)count);
    }
    free(t);
    return bad ? 1 : 0;
}
