/* stats.c - BUFSHIM_STATS: the per-target report written once, at the final flush. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
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
    int saved = errno;
    struct bs_writer_stats st;
    memset(&st, 0, sizeof st);
    bs_writer_stats(w, &st);
    if (st.records == 0 && st.batches == 0 && st.failure_episodes == 0) {
        errno = saved;
        return;
    }
    const char *name = bs_writer_name(w);
    pthread_once(&retired_once, retired_init);
    pthread_mutex_lock(&retired_lock);
    struct retired *r = retired_find(name);
    if (!r) {
        size_t n = strlen(name) + 1;
        r = calloc(1, sizeof *r + n);
        if (!r) { /* Statistics are best effort; the bytes are unaffected. */
            pthread_mutex_unlock(&retired_lock);
            errno = saved;
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
    errno = saved;
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
    size_t done = 0;
    while (done < o->len) {
        ssize_t n = bs_sys_write(o->fd, o->buf + done, o->len - done);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            break; /* Nothing sensible to do at exit: the report is best effort. */
        done += (size_t)n;
    }
    o->len = 0;
}

static void out_char(struct out *o, char c)
{
    if (o->len == OUT_CAP)
        out_flush(o);
    o->buf[o->len++] = c;
}

static void out_str(struct out *o, const char *s)
{
    while (*s)
        out_char(o, *s++);
}

static void out_spaces(struct out *o, int n)
{
    while (n-- > 0)
        out_char(o, ' ');
}

/* Decimal digits of v into tmp (not terminated); returns their count. */
static int u64_digits(uint64_t v, char tmp[20])
{
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return n;
}

static void out_u64(struct out *o, uint64_t v)
{
    char tmp[20];
    int n = u64_digits(v, tmp);
    while (n)
        out_char(o, tmp[--n]);
}

/* A number right-aligned in width columns. */
static void out_u64_w(struct out *o, uint64_t v, int width)
{
    char tmp[20];
    int n = u64_digits(v, tmp);
    out_spaces(o, width - n);
    while (n)
        out_char(o, tmp[--n]);
}

/* "<int>.<frac>" where v is in units of 1/10^decimals, right-aligned. */
static void out_fixed_w(struct out *o, uint64_t v, int decimals, int width)
{
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    char tmp[20];
    int n = u64_digits(v / scale, tmp);
    out_spaces(o, width - n - 1 - decimals);
    while (n)
        out_char(o, tmp[--n]);
    out_char(o, '.');
    uint64_t frac = v % scale;
    for (uint64_t d = scale / 10; d; d /= 10)
        out_char(o, (char)('0' + (frac / d) % 10));
}

/* Bytes for people: "512 B", "1.5 KiB", "20.0 MiB", right-aligned in width. */
static void out_size_w(struct out *o, uint64_t v, int width)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        out_u64_w(o, v, width - 2);
        out_str(o, " B");
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
    out_fixed_w(o, tenths, 1, width - 4);
    out_char(o, ' ');
    out_str(o, units[u]);
}

/* Milliseconds with two decimals from nanoseconds, right-aligned. */
static void out_ms_w(struct out *o, uint64_t ns, int width)
{
    out_fixed_w(o, (ns + 5000) / 10000, 2, width);
}

static void out_json_string(struct out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    out_char(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            out_char(o, '\\');
            out_char(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            out_str(o, "\\u00");
            out_char(o, hex[c >> 4]);
            out_char(o, hex[c & 15]);
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

static void out_field(struct out *o, const char *key, uint64_t v)
{
    out_str(o, ",\"");
    out_str(o, key);
    out_str(o, "\":");
    out_u64(o, v);
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
        out_str(o, "{\"pid\":");
        out_u64(o, r->pid);
        out_str(o, ",\"path\":");
        out_json_string(o, name);
        out_field(o, "bytes", st->bytes);
        out_field(o, "records", st->records);
        out_field(o, "batches", st->batches);
        out_field(o, "largest_batch", st->largest_batch);
        out_field(o, "peak_buffered", st->peak_buffered);
        out_field(o, "batch_ns_p50", st->batch_ns_p50);
        out_field(o, "batch_ns_max", st->batch_ns_max);
        out_field(o, "failure_episodes", st->failure_episodes);
        out_field(o, "unwritten", pending);
        out_str(o, "}\n");
        out_flush(o); /* one write per line: lines of concurrent processes stay whole */
        return;
    }
    out_str(o, "bufshim: ");
    out_size_w(o, st->bytes, 11);
    out_u64_w(o, st->records, 9);
    out_u64_w(o, st->batches, 8);
    out_size_w(o, st->largest_batch, 11);
    out_size_w(o, st->peak_buffered, 11);
    out_ms_w(o, st->batch_ns_p50, 9);
    out_ms_w(o, st->batch_ns_max, 9);
    out_u64_w(o, st->failure_episodes, 9);
    out_str(o, "  ");
    out_printable(o, name);
    if (pending) {
        out_str(o, "  (");
        out_u64(o, pending);
        out_str(o, " bytes unwritten)");
    }
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
    int saved = errno;
    if (!dest || !*dest) {
        errno = saved;
        return;
    }
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
        errno = saved;
        return;
    }

    if (r.json) {
        o.fd = bs_sys_open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (o.fd < 0) {
            pthread_mutex_unlock(&retired_lock);
            bs_log("BUFSHIM_STATS=\"%s\": %s; no statistics written", dest, strerror(-o.fd));
            errno = saved;
            return;
        }
    } else {
        out_str(&o, "bufshim: statistics of process ");
        out_u64(&o, r.pid);
        out_str(&o, " (batch times in ms)\n");
        out_str(&o, "bufshim:       bytes  records batches    largest       peak"
                    "      p50      max failures  path\n");
    }
    bs_engine_foreach_writer(report_writer, &r);
    report_retired(&r);
    pthread_mutex_unlock(&retired_lock);
    out_flush(&o);
    if (r.json)
        bs_sys_close(o.fd);
    errno = saved;
}
