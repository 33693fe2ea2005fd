/* api_only.c - a program written against <bufshim.h> alone, linked with -lbufshim:
 * 4 threads append to a custom sink and a file sink; it checks that every byte
 * arrives exactly once, in per-thread order, and that batches are never closer
 * than the interval. Usage: api_only FILE. Exit 0 pass, 1 fail. */
#include <bufshim.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 4
#define RECORDS 20000
#define INTERVAL 0.2

static char *seen;
static size_t seen_len, seen_cap;
static double last_end = -1, min_gap = 1e9;
static int calls;
/* The engine calls collect from one writer thread at a time, but main reads
   the timing figures while batches may still run: the lock orders the two. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Called by one thread at a time per writer (the engine's promise). */
static ssize_t collect(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&stats_lock);
    double start = now();
    if (last_end >= 0 && start - last_end < min_gap)
        min_gap = start - last_end;
    if (seen_len + len > seen_cap) {
        seen_cap = (seen_len + len) * 2;
        seen = realloc(seen, seen_cap);
    }
    memcpy(seen + seen_len, data, len);
    seen_len += len;
    calls++;
    last_end = now();
    pthread_mutex_unlock(&stats_lock);
    return (ssize_t)len;
}

struct arg {
    int id;
    bufshim_writer *a, *b;
};

static void *produce(void *p)
{
    struct arg *arg = p;
    char line[64];
    for (int i = 0; i < RECORDS; i++) {
        int n = snprintf(line, sizeof line, "%d %d\n", arg->id, i);
        bufshim_append(arg->a, line, (size_t)n);
        bufshim_append(arg->b, line, (size_t)n);
        if (i % 2000 == 0) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static int verify(const char *buf, size_t len, const char *what)
{
    int next[THREADS] = {0};
    const char *p = buf, *end = buf + len;
    while (p < end) {
        int t, i, used = 0;
        if (sscanf(p, "%d %d\n%n", &t, &i, &used) != 2 || used == 0 || t < 0 || t >= THREADS ||
            i != next[t]) {
            fprintf(stderr, "%s: bad record at offset %td\n", what, p - buf);
            return 1;
        }
        next[t]++;
        p = memchr(p, '\n', (size_t)(end - p)) + 1;
    }
    for (int t = 0; t < THREADS; t++)
        if (next[t] != RECORDS) {
            fprintf(stderr, "%s: thread %d has %d records\n", what, t, next[t]);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    struct bufshim_options o = {.interval = INTERVAL, .fsync = 0};
    bufshim_writer *a = bufshim_open(collect, NULL, &o);
    bufshim_writer *b = bufshim_open_file(argv[1], &o);
    if (!a || !b)
        return 1;
    pthread_t t[THREADS];
    struct arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct arg){i, a, b};
        pthread_create(&t[i], NULL, produce, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* The final batch from close may come sooner than the interval: check the
       gaps of the timed batches before closing. */
    pthread_mutex_lock(&stats_lock);
    double timed_min_gap = min_gap;
    int timed_calls = calls;
    pthread_mutex_unlock(&stats_lock);
    if (bufshim_close(a) != 0 || bufshim_close(b) != 0)
        return 1;
    int fail = verify(seen, seen_len, "custom sink");
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return 1;
    char *file = malloc(seen_len + 1);
    size_t flen = fread(file, 1, seen_len + 1, f);
    fclose(f);
    fail |= flen != seen_len || verify(file, flen, "file sink");
    if (timed_calls >= 2 && timed_min_gap < INTERVAL - 0.005) {
        fprintf(stderr, "batches %.3fs apart, interval %.3fs\n", timed_min_gap, INTERVAL);
        fail = 1;
    }
    printf("calls=%d min_gap=%.3f bytes=%zu\n", calls, timed_min_gap, seen_len);
    free(seen);
    free(file);
    return fail;
}
