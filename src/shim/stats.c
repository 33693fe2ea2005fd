/* stats.c - BUFSHIM_STATS: the per-target report written once, at the final flush. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
#include "errno_i.h"
#include "stats_i.h"

/* Per-incarnation medians kept for one name; older ones are overwritten. */
#define RETIRED_SAMPLES 128

struct retired {
    struct retired *next;
    struct bs_writer_stats sum; /* sums, except largest/peak/max: maxima */
    uint64_t p50[RETIRED_SAMPLES];
    uint64_t weight[RETIRED_SAMPLES]; /* that incarnation's batches */
    unsigned nsamples, next_sample;
    int matched; /* a live writer of this name exists (set during a report) */
    char name[];
};

static struct retired *retired_head;
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t retired_once = PTHREAD_ONCE_INIT;

static void retired_prepare(void)
{
    pthread_mutex_lock(&retired_lock);
}

static void retired_parent(void)
{
    pthread_mutex_unlock(&retired_lock);
}

static void retired_child(void)
{
    pthread_mutex_init(&retired_lock, NULL);
}

static void retired_init(void)
{
    pthread_atfork(retired_prepare, retired_parent, retired_child);
}

static struct retired *retired_find(const char *name)
{
    for (struct retired *r = retired_head; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

void bs_stats_retire(bufshim_writer *w)
{
    BS_KEEP_ERRNO();
    struct bs_writer_stats st;
    memset(&st, 0, sizeof st);
    bs_writer_stats(w, &st);
    if (st.records == 0 && st.batches == 0 && st.failure_episodes == 0)
        return;
    const char *name = bs_writer_name(w);
    pthread_once(&retired_once, retired_init);
    pthread_mutex_lock(&retired_lock);
    struct retired *r = retired_find(name);
    if (!r) {
        size_t n = strlen(name) + 1;
        r = calloc(1, sizeof *r + n);
        if (!r) { /* Statistics are best effort; the bytes are unaffected. */
            pthread_mutex_unlock(&retired_lock);
            return;
        }
        memcpy(r->name, name, n);
        r->next = retired_head;
        retired_head = r;
    }
    r->sum.bytes += st.bytes;
    r->sum.records += st.records;
    r->sum.batches += st.batches;
    r->sum.failure_episodes += st.failure_episodes;
    r->sum.largest_batch = max_u64(r->sum.largest_batch, st.largest_batch);
    r->sum.peak_buffered = max_u64(r->sum.peak_buffered, st.peak_buffered);
    r->sum.batch_ns_max = max_u64(r->sum.batch_ns_max, st.batch_ns_max);
    if (st.batches) {
        r->p50[r->next_sample] = st.batch_ns_p50;
        r->weight[r->next_sample] = st.batches;
        r->next_sample = (r->next_sample + 1) % RETIRED_SAMPLES;
        if (r->nsamples < RETIRED_SAMPLES)
            r->nsamples++;
    }
    pthread_mutex_unlock(&retired_lock);
}

/*
 * Adds the retired counters of r (may be NULL) to *st. The median of the union is
 * the batch-weighted median of the incarnations' medians: exact when each
 * incarnation wrote one batch, as when a file is reopened for every batch.
 */
static void merge_retired(struct bs_writer_stats *st, const struct retired *r)
{
    if (!r)
        return;
    uint64_t val[RETIRED_SAMPLES + 1], wt[RETIRED_SAMPLES + 1], total = 0;
    unsigned n = 0;
    for (unsigned i = 0; i < r->nsamples; i++, n++) {
        val[n] = r->p50[i];
        wt[n] = r->weight[i];
    }
    if (st->batches) {
        val[n] = st->batch_ns_p50;
        wt[n++] = st->batches;
    }
    for (unsigned i = 1; i < n; i++) { /* insertion sort: n is small */
        uint64_t v = val[i], w = wt[i];
        unsigned j = i;
        for (; j > 0 && val[j - 1] > v; j--) {
            val[j] = val[j - 1];
            wt[j] = wt[j - 1];
        }
        val[j] = v;
        wt[j] = w;
    }
    for (unsigned i = 0; i < n; i++)
        total += wt[i];
    uint64_t acc = 0, p50 = 0;
    for (unsigned i = 0; i < n; i++) {
        acc += wt[i];
        if (2 * acc > total) {
            p50 = val[i];
            break;
        }
    }
    st->bytes += r->sum.bytes;
    st->records += r->sum.records;
    st->batches += r->sum.batches;
    st->failure_episodes += r->sum.failure_episodes;
    st->largest_batch = max_u64(st->largest_batch, r->sum.largest_batch);
    st->peak_buffered = max_u64(st->peak_buffered, r->sum.peak_buffered);
    st->batch_ns_max = max_u64(st->batch_ns_max, r->sum.batch_ns_max);
    st->batch_ns_p50 = p50;
}

/*
 * The report is formatted with snprintf into a fixed buffer, as bs_log formats its
 * lines. Decision on async-signal-safety: the report runs at the final flush, which
 * also runs in the shim's handler of a terminating signal (signals.c, die_of). POSIX
 * does not list snprintf as async-signal-safe, but the conversions used here
 * (integers, with widths below 20, and short literal %s) make glibc's snprintf into a
 * caller's buffer take no lock, allocate nothing and read no locale data that could
 * change under it (no floating point, no ' flag, no wide strings); bs_log on the same
 * path already relies on that. Paths, the only text of unbounded length, are copied
 * character by character (escaped) into the buffer, never through a format.
 */

/* Big enough for any line but a pathological path; longer lines are written in
 * pieces (the file is O_APPEND, so a piece never lands inside another process's). */
#define OUT_CAP 8192

struct out {
    int fd;
    size_t len;
    char buf[OUT_CAP];
};

static void out_flush(struct out *o)
{
    /* An error is ignored: nothing sensible to do at exit, the report is best effort. */
    bs_sys_write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

static void out_char(struct out *o, char c)
{
    if (o->len == OUT_CAP)
        out_flush(o);
    o->buf[o->len++] = c;
}

/* Appends the formatted text; when it does not fit after what is buffered, that goes
 * out first. Every format of this file is far shorter than OUT_CAP. */
__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
    for (int pass = 0; pass < 2; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, OUT_CAP - o->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < OUT_CAP - o->len) {
            o->len += (size_t)n;
            return;
        }
        out_flush(o);
    }
}

/* Bytes for people: "512 B", "1.5 KiB", "20.0 MiB", right-aligned in width. */
static void out_size_w(struct out *o, uint64_t v, int width)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        out_printf(o, "%*" PRIu64 " B", width - 2, v);
        return;
    }
    int u = 0;
    uint64_t div = 1024;
    while (u < 3 && v / div >= 1024) {
        div *= 1024;
        u++;
    }
    /* Tenths, rounded to nearest. */
    uint64_t tenths = (v * 10 + div / 2) / div;
    if (v > UINT64_MAX / 10)
        tenths = v / div * 10;
    /* "<int>.<tenth> <unit>": the integer part takes what the rest leaves of width. */
    out_printf(o, "%*" PRIu64 ".%" PRIu64 " %s", width - 6, tenths / 10, tenths % 10, units[u]);
}

/* Milliseconds with two decimals from nanoseconds, right-aligned. */
static void out_ms_w(struct out *o, uint64_t ns, int width)
{
    uint64_t hundredths = (ns + 5000) / 10000;
    out_printf(o, "%*" PRIu64 ".%02" PRIu64, width - 3, hundredths / 100, hundredths % 100);
}

static void out_json_string(struct out *o, const char *s)
{
    out_char(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            out_char(o, '\\');
            out_char(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            out_printf(o, "\\u%04x", c);
        } else {
            out_char(o, (char)c);
        }
    }
    out_char(o, '"');
}

/* A path in the human table: control characters shown as '?' so that one
 * target stays on one line. */
static void out_printable(struct out *o, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        out_char(o, (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p);
}

struct report {
    struct out *out;
    int json;
    uint64_t pid;
    size_t count;
};

static void print_target(struct report *r, const char *name, const struct bs_writer_stats *st,
                         uint64_t pending)
{
    struct out *o = r->out;
    if (r->json) {
        out_printf(o, "{\"pid\":%" PRIu64 ",\"path\":", r->pid);
        out_json_string(o, name);
        out_printf(o,
                   ",\"bytes\":%" PRIu64 ",\"records\":%" PRIu64 ",\"batches\":%" PRIu64
                   ",\"largest_batch\":%" PRIu64 ",\"peak_buffered\":%" PRIu64
                   ",\"batch_ns_p50\":%" PRIu64 ",\"batch_ns_max\":%" PRIu64
                   ",\"failure_episodes\":%" PRIu64 ",\"unwritten\":%" PRIu64 "}\n",
                   st->bytes, st->records, st->batches, st->largest_batch, st->peak_buffered,
                   st->batch_ns_p50, st->batch_ns_max, st->failure_episodes, pending);
        out_flush(o); /* one write per line: lines of concurrent processes stay whole */
        return;
    }
    out_printf(o, "bufshim: ");
    out_size_w(o, st->bytes, 11);
    out_printf(o, "%9" PRIu64 "%8" PRIu64, st->records, st->batches);
    out_size_w(o, st->largest_batch, 11);
    out_size_w(o, st->peak_buffered, 11);
    out_ms_w(o, st->batch_ns_p50, 9);
    out_ms_w(o, st->batch_ns_max, 9);
    out_printf(o, "%9" PRIu64 "  ", st->failure_episodes);
    out_printable(o, name);
    if (pending)
        out_printf(o, "  (%" PRIu64 " bytes unwritten)", pending);
    out_char(o, '\n');
}

/* A writer that never took a byte nor failed (a target opened, or inherited by a
 * child process, and not written): left out of the report. */
static int idle_writer(bufshim_writer *w, struct bs_writer_stats *st)
{
    memset(st, 0, sizeof *st);
    bs_writer_stats(w, st);
    return st->records == 0 && st->failure_episodes == 0 && bs_writer_pending(w) == 0;
}

/* First pass: counts live writers and marks the retired names they continue. */
static void count_writer(bufshim_writer *w, void *arg)
{
    struct report *r = arg;
    struct retired *ret = retired_find(bs_writer_name(w));
    struct bs_writer_stats st;
    if (ret)
        ret->matched = 1;
    else if (idle_writer(w, &st))
        return;
    r->count++;
}

static void report_writer(bufshim_writer *w, void *arg)
{
    struct report *r = arg;
    struct bs_writer_stats st;
    struct retired *ret = retired_find(bs_writer_name(w));
    if (idle_writer(w, &st) && !ret)
        return;
    merge_retired(&st, ret);
    print_target(r, bs_writer_name(w), &st, bs_writer_pending(w));
}

/* Targets whose writers were all retired before the report. */
static void report_retired(struct report *r)
{
    for (struct retired *ret = retired_head; ret; ret = ret->next) {
        if (ret->matched)
            continue;
        struct bs_writer_stats st;
        memset(&st, 0, sizeof st);
        merge_retired(&st, ret);
        print_target(r, ret->name, &st, 0);
    }
}

void bs_stats_report(const char *dest)
{
    BS_KEEP_ERRNO();
    if (!dest || !*dest)
        return;
    struct out o;
    o.len = 0;
    o.fd = 2;
    struct report r = {.out = &o, .json = strcmp(dest, "stderr") != 0, .pid = (uint64_t)getpid()};

    pthread_once(&retired_once, retired_init);
    pthread_mutex_lock(&retired_lock);
    for (struct retired *ret = retired_head; ret; ret = ret->next)
        ret->matched = 0;
    bs_engine_foreach_writer(count_writer, &r);
    for (struct retired *ret = retired_head; ret; ret = ret->next)
        r.count += !ret->matched;
    /* A process that wrote no target says nothing: every child of a shell script
       inherits BUFSHIM_STATS. */
    if (r.count == 0) {
        pthread_mutex_unlock(&retired_lock);
        return;
    }

    if (r.json) {
        o.fd = bs_sys_open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (o.fd < 0) {
            pthread_mutex_unlock(&retired_lock);
            bs_log("BUFSHIM_STATS=\"%s\": %s; no statistics written", dest, strerror(-o.fd));
            return;
        }
    } else {
        out_printf(&o,
                   "bufshim: statistics of process %" PRIu64 " (batch times in ms)\n"
                   "bufshim:       bytes  records batches    largest       peak"
                   "      p50      max failures  path\n",
                   r.pid);
    }
    bs_engine_foreach_writer(report_writer, &r);
    report_retired(&r);
    pthread_mutex_unlock(&retired_lock);
    out_flush(&o);
    if (r.json)
        bs_sys_close(o.fd);
}
