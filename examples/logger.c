/* logger.c - example: a multi-threaded logger whose lines reach their file in batches.
 *
 * usage: logger PATH [THREADS [LINES [INTERVAL]]]
 *
 * THREADS threads (default 4) each log LINES lines (default 10000) to PATH through
 * one bufshim writer; the file is opened, appended to and closed once per batch,
 * at most once every INTERVAL seconds (default 0.5), however fast the threads log.
 * Each line is "thread <t> line <n>: <text>". Exits 0 when every byte reached PATH.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bufshim.h>

static bufshim_writer *log_writer;
static long lines_per_thread = 10000;

/*
 * Formats one line and appends it. bufshim_append copies the bytes under a lock
 * held only for that copy, so a logging thread never waits for the disk, and
 * the line stays whole however many threads log at once.
 */
static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (bufshim_append(log_writer, line, (size_t)n) != 0)
        fprintf(stderr, "logger: a line was dropped (out of memory)\n");
}

static void *worker(void *arg)
{
    long t = (long)arg;
    for (long i = 0; i < lines_per_thread; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        log_line("thread %ld line %ld: request served at %lld.%09ld", t, i, (long long)ts.tv_sec,
                 ts.tv_nsec);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s PATH [THREADS [LINES [INTERVAL]]]\n", argv[0]);
        return 2;
    }
    long threads = argc > 2 ? atol(argv[2]) : 4;
    if (argc > 3)
        lines_per_thread = atol(argv[3]);
    struct bufshim_options options = {.interval = argc > 4 ? atof(argv[4]) : 0.5};
    if (threads < 1 || threads > 1024 || lines_per_thread < 0) {
        fprintf(stderr, "logger: bad THREADS or LINES\n");
        return 2;
    }

    log_writer = bufshim_open_file(argv[1], &options);
    if (!log_writer) {
        perror("bufshim_open_file");
        return 1;
    }
    pthread_t tid[1024];
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)t) != 0) {
            fprintf(stderr, "logger: pthread_create failed\n");
            return 1;
        }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);

    /* The final batch: everything logged is in the file when this returns 0. */
    int r = bufshim_close(log_writer);
    if (r != 0) {
        fprintf(stderr, "logger: bufshim_close: %s\n", strerror(-r));
        return 1;
    }
    return 0;
}
