/* engine_driver.c - drives the public engine API for the behaviour tests (pytest).
 *
 * engine_driver file PATH [options]      batches go to PATH through bufshim_open_file
 * engine_driver record OUT [options]     a recording sink appends to OUT and logs each call
 *
 * options:
 *   -i SECONDS  interval (default 0.5)        -n N   records per thread (default 1000)
 *   -t T        threads (default 1)           -d S   spread each thread's records over S s
 *   -s BYTES    record size; 0 = random 12..200 (default 64)
 *   -f          fsync (file sink)
 *   -e FILE     record: one JSON line per sink call {"w":id,"start_ns","end_ns","len","ret"}
 *   -S SECONDS  record: the sink sleeps this long in every call
 *   -F K        record: the first K sink calls fail with -EIO
 *   -I SECONDS  stay idle this long after open before appending
 *   -B SECONDS  record: open a second writer (id 1) whose first sink call blocks this
 *               long; both writers get the same records, writer 1 to OUT.1
 *
 * Each record is one line "T<thread> <seq> <padding>\n". Exit 0 when every
 * bufshim_close returned 0, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bufshim.h>

static double interval = 0.5, duration = 0, sink_sleep = 0, idle_first = 0, block_second = 0;
static long records = 1000, threads = 1, rec_size = 64, fail_first = 0;
static int do_fsync = 0;
static FILE *events;
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;

struct rec_sink {
    int id;
    int fd;
    atomic_long calls;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static ssize_t recording_sink(void *ctx, const void *data, size_t len)
{
    struct rec_sink *rs = ctx;
    long long start = now_ns();
    long call = atomic_fetch_add(&rs->calls, 1);
    ssize_t ret;
    if (rs->id == 1 && call == 0 && block_second > 0)
        sleep_s(block_second);
    else if (sink_sleep > 0)
        sleep_s(sink_sleep);
    if (rs->id == 0 && call < fail_first) {
        ret = -EIO;
    } else {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(rs->fd, (const char *)data + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        ret = done == len ? (ssize_t)len : -EIO;
    }
    long long end = now_ns();
    if (events) {
        pthread_mutex_lock(&events_lock);
        fprintf(events, "{\"w\":%d,\"start_ns\":%lld,\"end_ns\":%lld,\"len\":%zu,\"ret\":%zd}\n",
                rs->id, start, end, len, ret);
        fflush(events);
        pthread_mutex_unlock(&events_lock);
    }
    return ret;
}

struct worker {
    int id;
    bufshim_writer *w[2];
    int nw;
    int failed;
};

static void *produce(void *arg)
{
    struct worker *wk = arg;
    unsigned seed = (unsigned)wk->id * 7919u + 1u;
    char line[512];
    double gap = records > 0 && duration > 0 ? duration / (double)records : 0;
    long long t0 = now_ns();
    for (long i = 0; i < records; i++) {
        int n = snprintf(line, sizeof line, "T%d %ld ", wk->id, i);
        long size = rec_size > 0 ? rec_size : 12 + (long)(rand_r(&seed) % 189);
        if (size > (long)sizeof line - 1)
            size = sizeof line - 1;
        while (n < size - 1) {
            line[n] = (char)('a' + (i + n) % 26);
            n++;
        }
        line[n++] = '\n';
        for (int k = 0; k < wk->nw; k++)
            if (bufshim_append(wk->w[k], line, (size_t)n) != 0)
                wk->failed = 1;
        if (gap > 0) {
            long long due = t0 + (long long)(gap * 1e9 * (double)(i + 1));
            long long now = now_ns();
            if (due > now)
                sleep_s((double)(due - now) / 1e9);
        }
    }
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: engine_driver file|record PATH [-i s] [-n n] [-t t] [-d s] [-s b] "
                    "[-f] [-e file] [-S s] [-F k] [-I s] [-B s]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *mode = argv[1], *path = argv[2];
    const char *events_path = NULL;
    int opt;
    optind = 3;
    while ((opt = getopt(argc, argv, "i:n:t:d:s:fe:S:F:I:B:")) != -1) {
        switch (opt) {
        case 'i': interval = atof(optarg); break;
        case 'n': records = atol(optarg); break;
        case 't': threads = atol(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 's': rec_size = atol(optarg); break;
        case 'f': do_fsync = 1; break;
        case 'e': events_path = optarg; break;
        case 'S': sink_sleep = atof(optarg); break;
        case 'F': fail_first = atol(optarg); break;
        case 'I': idle_first = atof(optarg); break;
        case 'B': block_second = atof(optarg); break;
        default: return usage();
        }
    }
    if (threads < 1 || threads > 64)
        return usage();
    struct bufshim_options o = {.interval = interval, .fsync = do_fsync};
    bufshim_writer *w[2] = {NULL, NULL};
    struct rec_sink rs[2] = {{.id = 0}, {.id = 1}};
    int nw = 1;
    if (strcmp(mode, "file") == 0) {
        w[0] = bufshim_open_file(path, &o);
    } else if (strcmp(mode, "record") == 0) {
        if (events_path && !(events = fopen(events_path, "w"))) {
            perror(events_path);
            return 1;
        }
        char second[4096];
        snprintf(second, sizeof second, "%s.1", path);
        rs[0].fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        rs[1].fd = open(second, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (rs[0].fd < 0 || rs[1].fd < 0) {
            perror(path);
            return 1;
        }
        w[0] = bufshim_open(recording_sink, &rs[0], &o);
        if (block_second > 0) {
            w[1] = bufshim_open(recording_sink, &rs[1], &o);
            nw = 2;
        }
    } else {
        return usage();
    }
    if (!w[0] || (nw == 2 && !w[1])) {
        perror("bufshim_open");
        return 1;
    }
    if (idle_first > 0)
        sleep_s(idle_first);

    struct worker *wk = calloc((size_t)threads, sizeof *wk);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    for (long t = 0; t < threads; t++) {
        wk[t] = (struct worker){.id = (int)t, .w = {w[0], w[1]}, .nw = nw};
        pthread_create(&tid[t], NULL, produce, &wk[t]);
    }
    int failed = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        failed |= wk[t].failed;
    }
    for (int k = 0; k < nw; k++)
        if (bufshim_close(w[k]) != 0)
            failed = 1;
    free(wk);
    free(tid);
    if (events)
        fclose(events);
    return failed ? 1 : 0;
}
