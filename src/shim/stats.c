/* stats.c - BUFSHIM_STATS: the per-target report written once, at the final flush. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
#include "shim_i.h"

/*
 * Writes one report on every engine writer (one per target): to fd 2 as a short
 * human table when dest is "stderr", otherwise appended to the file dest as one
 * JSON object a line. Runs at exit, so it uses raw system calls only (never stdio
 * or the shim's own wrappers), allocates nothing, and leaves errno as it was.
 * A dest that cannot be opened gives one line on stderr.
 */
void bs_stats_report(const char *dest);

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

static void count_writer(bufshim_writer *w, void *arg)
{
    (void)w;
    ((struct report *)arg)->count++;
}

static void report_writer(bufshim_writer *w, void *arg)
{
    struct report *r = arg;
    struct out *o = r->out;
    struct bs_writer_stats st;
    memset(&st, 0, sizeof st);
    bs_writer_stats(w, &st);
    uint64_t pending = bs_writer_pending(w);

    if (r->json) {
        out_str(o, "{\"pid\":");
        out_u64(o, r->pid);
        out_str(o, ",\"path\":");
        out_json_string(o, bs_writer_name(w));
        out_field(o, "bytes", st.bytes);
        out_field(o, "records", st.records);
        out_field(o, "batches", st.batches);
        out_field(o, "largest_batch", st.largest_batch);
        out_field(o, "peak_buffered", st.peak_buffered);
        out_field(o, "batch_ns_p50", st.batch_ns_p50);
        out_field(o, "batch_ns_max", st.batch_ns_max);
        out_field(o, "failure_episodes", st.failure_episodes);
        out_field(o, "unwritten", pending);
        out_str(o, "}\n");
        out_flush(o); /* one write per line: lines of concurrent processes stay whole */
        return;
    }
    out_str(o, "bufshim: ");
    out_size_w(o, st.bytes, 11);
    out_u64_w(o, st.records, 9);
    out_u64_w(o, st.batches, 8);
    out_size_w(o, st.largest_batch, 11);
    out_size_w(o, st.peak_buffered, 11);
    out_ms_w(o, st.batch_ns_p50, 9);
    out_ms_w(o, st.batch_ns_max, 9);
    out_u64_w(o, st.failure_episodes, 9);
    out_str(o, "  ");
    out_printable(o, bs_writer_name(w));
    if (pending) {
        out_str(o, "  (");
        out_u64(o, pending);
        out_str(o, " bytes unwritten)");
    }
    out_char(o, '\n');
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
    struct report r = {.out = &o, .json = strcmp(dest, "stderr") != 0,
                       .pid = (uint64_t)getpid()};
    if (r.json) {
        o.fd = bs_sys_open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (o.fd < 0) {
            bs_log("BUFSHIM_STATS=\"%s\": %s; no statistics written", dest, strerror(-o.fd));
            errno = saved;
            return;
        }
        bs_engine_foreach_writer(report_writer, &r);
        out_flush(&o);
        bs_sys_close(o.fd);
        errno = saved;
        return;
    }

    o.fd = 2;
    bs_engine_foreach_writer(count_writer, &r);
    if (r.count == 0) {
        out_str(&o, "bufshim: statistics: no target was written\n");
    } else {
        out_str(&o, "bufshim: statistics of process ");
        out_u64(&o, r.pid);
        out_str(&o, " (batch times in ms)\n");
        out_str(&o, "bufshim:       bytes  records batches    largest       peak"
                    "      p50      max failures  path\n");
        bs_engine_foreach_writer(report_writer, &r);
    }
    out_flush(&o);
    errno = saved;
}
