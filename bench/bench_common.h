/* bench_common.h - per-call timing, records, options and JSON output shared by the benchmark
 * programs (C and C++). Header-only so that each program stays one file plus this. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_TSC 1
#else
#define BENCH_HAVE_TSC 0
#endif

/* Options common to every producer program; each program reads the ones it needs. */
struct bench_opts {
    const char *mode;        /* direct, stdio, open, spdlog */
    const char *path;        /* the file appended to */
    int threads;             /* producer threads */
    size_t size;             /* bytes per record, newline included */
    long count;              /* records per thread */
    long work;               /* busy-work iterations between two records ("paced") */
    long sleep_us;           /* sleep between two records (steady producer) */
    double max_seconds;      /* stop a thread once its producer time exceeds this (0: never) */
    const char *window_file; /* after the run: "FROM_NS TO_NS" (CLOCK_MONOTONIC) to report */
    int curve;               /* number of points of the latency curve in the output */
    size_t stdio_buf;        /* setvbuf size for mode stdio */
};

static inline uint64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A timestamp in ticks: the TSC where there is one (about 10 ns to read, no system call),
 * CLOCK_MONOTONIC nanoseconds elsewhere. The lfence keeps the read from drifting across
 * the call being measured. */
static inline uint64_t bench_ticks(void)
{
#if BENCH_HAVE_TSC
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
#else
    return bench_mono_ns();
#endif
}

/* Conversion between ticks and CLOCK_MONOTONIC nanoseconds, measured at start. */
static double bench_ns_per_tick = 1.0;
static uint64_t bench_tick0, bench_mono0;

static inline void bench_calibrate(void)
{
#if BENCH_HAVE_TSC
    uint64_t m0 = bench_mono_ns(), t0 = bench_ticks();
    struct timespec d = {0, 50 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint64_t m1 = bench_mono_ns(), t1 = bench_ticks();
    bench_ns_per_tick = (double)(m1 - m0) / (double)(t1 - t0);
    bench_tick0 = t1;
    bench_mono0 = m1;
#else
    bench_tick0 = bench_mono0 = bench_mono_ns();
#endif
}

static inline uint64_t bench_ticks_to_ns(uint64_t ticks)
{
    return (uint64_t)((double)ticks * bench_ns_per_tick + 0.5);
}

static inline uint64_t bench_tick_to_mono(uint64_t tick)
{
    if (tick >= bench_tick0)
        return bench_mono0 + bench_ticks_to_ns(tick - bench_tick0);
    return bench_mono0 - bench_ticks_to_ns(bench_tick0 - tick);
}

static inline void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static inline void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_die("out of memory (%zu bytes)", n);
    memset(p, 0, n); /* touch the pages now, not inside the timed loop */
    return p;
}

/* "Work" between two records: a fixed number of dependent integer operations. */
static inline uint64_t bench_work(long iterations, uint64_t x)
{
    for (long i = 0; i < iterations; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

#define BENCH_RING 256

/* Pre-formatted records: BENCH_RING distinct records of exactly size bytes, each ending in a
 * newline, so that every system writes the same bytes and no formatting is timed. */
static inline char *bench_make_records(int thread, size_t size)
{
    char *r = (char *)bench_xmalloc(BENCH_RING * size);
    for (int i = 0; i < BENCH_RING; i++) {
        char *p = r + (size_t)i * size;
        char head[64];
        int n = snprintf(head, sizeof head, "t%02d r%03d ", thread, i);
        for (size_t j = 0; j + 1 < size; j++)
            p[j] = j < (size_t)n ? head[j] : (char)('a' + (j + (size_t)i) % 26);
        p[size - 1] = '\n';
    }
    return r;
}

static inline void bench_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s --mode MODE --path FILE [--threads T] [--size BYTES] [--count N]\n"
            "          [--work ITERATIONS] [--sleep-us US] [--max-seconds S]\n"
            "          [--window-file F] [--curve POINTS] [--stdio-buf BYTES]\n"
            "Times every append call; prints one JSON object on stdout.\n",
            prog);
    exit(2);
}

static inline void bench_parse(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"path", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"work", required_argument, NULL, 'w'},
        {"sleep-us", required_argument, NULL, 'u'},
        {"max-seconds", required_argument, NULL, 'x'},
        {"window-file", required_argument, NULL, 'f'},
        {"curve", required_argument, NULL, 'c'},
        {"stdio-buf", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->mode = "direct";
    o->path = NULL;
    o->threads = 1;
    o->size = 128;
    o->count = 100000;
    o->work = 0;
    o->sleep_us = 0;
    o->max_seconds = 0;
    o->window_file = NULL;
    o->curve = 0;
    o->stdio_buf = 65536;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->mode = optarg;
            break;
        case 'p':
            o->path = optarg;
            break;
        case 't':
            o->threads = atoi(optarg);
            break;
        case 's':
            o->size = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            o->count = atol(optarg);
            break;
        case 'w':
            o->work = atol(optarg);
            break;
        case 'u':
            o->sleep_us = atol(optarg);
            break;
        case 'x':
            o->max_seconds = atof(optarg);
            break;
        case 'f':
            o->window_file = optarg;
            break;
        case 'c':
            o->curve = atoi(optarg);
            break;
        case 'b':
            o->stdio_buf = (size_t)strtoul(optarg, NULL, 10);
            break;
        default:
            bench_usage(argv[0]);
        }
    }
    if (!o->path || o->threads < 1 || o->size < 1 || o->count < 1)
        bench_usage(argv[0]);
}

/* One producer thread's measurements: start tick and duration (ticks) of every call. */
struct bench_thread {
    int index;
    long done;
    uint64_t *start;
    uint64_t *lat;
    uint64_t first, last; /* ticks: start of the first call, end of the last */
    char *records;
    void *arg; /* the program's own per-run state */
};

static inline void bench_thread_init(struct bench_thread *t, int index, const struct bench_opts *o)
{
    t->index = index;
    t->done = 0;
    t->start = (uint64_t *)bench_xmalloc((size_t)o->count * sizeof(uint64_t));
    t->lat = (uint64_t *)bench_xmalloc((size_t)o->count * sizeof(uint64_t));
    t->records = bench_make_records(index, o->size);
    t->first = t->last = 0;
}

/* Sleeps us microseconds (steady producers); 0: no sleep. */
static inline void bench_sleep_us(long us)
{
    if (us > 0) {
        struct timespec d = {us / 1000000, (us % 1000000) * 1000};
        nanosleep(&d, NULL);
    }
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, q in [0, 1]. */
static inline uint64_t bench_pct(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n + 0.999999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* The cost of the two timer reads themselves (median of back-to-back pairs), in ns. */
static inline uint64_t bench_timer_floor_ns(void)
{
    enum { N = 20001 };
    static uint64_t d[N];
    for (int i = 0; i < N; i++) {
        uint64_t a = bench_ticks();
        uint64_t b = bench_ticks();
        d[i] = b - a;
    }
    qsort(d, N, sizeof d[0], bench_cmp_u64);
    return bench_ticks_to_ns(d[N / 2]);
}

/* Appends the JSON summary of latencies v[0..n) (ns, sorted in place) under key to out. */
static inline void bench_json_lat(FILE *out, const char *key, uint64_t *v, size_t n, int curve)
{
    qsort(v, n, sizeof v[0], bench_cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    fprintf(
        out,
        "\"%s\": {\"n\": %zu, \"mean\": %.1f, \"p50\": %" PRIu64 ", \"p90\": %" PRIu64
        ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64 ", \"p9999\": %" PRIu64 ", \"max\": %" PRIu64,
        key, n, n ? sum / (double)n : 0.0, bench_pct(v, n, 0.5), bench_pct(v, n, 0.9),
        bench_pct(v, n, 0.99), bench_pct(v, n, 0.999), bench_pct(v, n, 0.9999), n ? v[n - 1] : 0);
    if (curve > 1 && n > 0) {
        /* Points evenly spaced in log10(1 / (1 - q)), from the median to the maximum. */
        double top = 0;
        for (double m = (double)n; m > 1.0; m /= 10.0)
            top += 1.0;
        fputs(", \"curve\": [", out);
        for (int i = 0; i < curve; i++) {
            double x = 0.30103 + (top - 0.30103) * i / (curve - 1);
            double q = 1.0 - 1.0 / pow(10.0, x);
            fprintf(out, "%s[%.7f, %" PRIu64 "]", i ? ", " : "", q, bench_pct(v, n, q));
        }
        fputc(']', out);
    }
    fputc('}', out);
}

/* The process's peak resident set since exec, in KiB (VmHWM), or 0. getrusage's ru_maxrss
 * would also count the memory of the process that forked us before the exec. */
static inline long bench_peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Reads "FROM_NS TO_NS" from path; 0 when absent or unreadable. */
static inline int bench_read_window(const char *path, uint64_t *from, uint64_t *to)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    unsigned long long a, b;
    int ok = fscanf(f, "%llu %llu", &a, &b) == 2;
    fclose(f);
    *from = a;
    *to = b;
    return ok;
}

/*
 * Prints the run's summary as one JSON object on stdout: records, bytes, producer wall time
 * (first call of any thread to last return of any thread), latency percentiles of every call
 * and, with a window file, of the calls that started inside the window.
 */
static inline void bench_report(const struct bench_opts *o, struct bench_thread *ts,
                                uint64_t wall_ns)
{
    size_t n = 0;
    for (int i = 0; i < o->threads; i++)
        n += (size_t)ts[i].done;
    uint64_t *all = (uint64_t *)bench_xmalloc(n * sizeof(uint64_t));
    uint64_t from = 0, to = 0;
    int windowed = bench_read_window(o->window_file, &from, &to);
    uint64_t *win = windowed ? (uint64_t *)bench_xmalloc(n * sizeof(uint64_t)) : NULL;
    size_t k = 0, w = 0;
    for (int i = 0; i < o->threads; i++) {
        for (long j = 0; j < ts[i].done; j++) {
            uint64_t ns = bench_ticks_to_ns(ts[i].lat[j]);
            all[k++] = ns;
            if (windowed) {
                uint64_t s = bench_tick_to_mono(ts[i].start[j]);
                if (s >= from && s < to)
                    win[w++] = ns;
            }
        }
    }
    uint64_t floor_ns = bench_timer_floor_ns();
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    fprintf(out,
            "{\"mode\": \"%s\", \"threads\": %d, \"size\": %zu, \"records\": %zu, "
            "\"bytes\": %zu, \"wall_ns\": %" PRIu64 ", \"timer_floor_ns\": %" PRIu64
            ", \"ns_per_tick\": %.6f, \"peak_rss_kb\": %ld, ",
            o->mode, o->threads, o->size, n, n * o->size, wall_ns, floor_ns, bench_ns_per_tick,
            bench_peak_rss_kb());
    bench_json_lat(out, "lat", all, n, o->curve);
    if (windowed) {
        fputs(", ", out);
        bench_json_lat(out, "window", win, w, 0);
    }
    fputs("}\n", out);
    fclose(out);
    /* One write(2) so that the output costs one write in the /proc/PID/io counters. */
    for (size_t off = 0; off < len;) {
        ssize_t r = write(1, buf + off, len - off);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    free(buf);
    free(all);
    free(win);
}

/* Wall time of the producers: first call start to last call end over all threads, in ns. */
static inline uint64_t bench_wall_ns(const struct bench_opts *o, const struct bench_thread *ts)
{
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < o->threads; i++) {
        if (ts[i].done == 0)
            continue;
        if (ts[i].first < first)
            first = ts[i].first;
        if (ts[i].last > last)
            last = ts[i].last;
    }
    return last > first ? bench_ticks_to_ns(last - first) : 0;
}

#endif /* BENCH_COMMON_H */
