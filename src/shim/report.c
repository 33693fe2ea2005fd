/* report.c - what operators see of a running process: its status file in the spool folder
 * (read by `bufshim status`) and, with BUFSHIM_METRICS, its Prometheus textfile, both
 * rewritten by a writer thread at most once per period. */
#include "real_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "config_i.h"
#include "engine_i.h"
#include "errno_i.h"
#include "private_fds_i.h"
#include "report_i.h"
#include "spool_i.h"
#include "target_i.h"

/*
 * Decisions. The files are written by the leader writer thread (bs_engine_set_report):
 * no thread, signal or descriptor of the program's is involved, and nothing on the append
 * path. Each file is written whole under a temporary name and renamed, so a reader sees
 * the old one or the new one. A period with no batch, nothing held and nothing in flight
 * rewrites nothing. Both files come from one snapshot, so `bufshim status --json` and the
 * .prom file carry the same figures. The status file lives in the spool folder (the
 * user's own, mode 0700), so another user's processes are never listed.
 */

#define MIN_PERIOD_NS 250000000ull

struct row {
    struct bs_writer_status st;
    char name[BS_SPOOL_PATH_MAX];
    char mode[64];
};

static struct row *rows;
static size_t nrows, caprows;
static int rows_failed;

static atomic_int busy_pid; /* the pid of a process whose report is writing, else 0 */
static atomic_int done;     /* the final flush removed the files: no more reports */
static pid_t files_pid;     /* the pid the files were last written under */
static uint64_t files_start;
static char status_path[BS_SPOOL_PATH_MAX + 64], prom_path[BS_SPOOL_PATH_MAX + 64];
static uint64_t last_sig;

static long sys(long nr, long a, long b, long c, long d)
{
    BS_KEEP_ERRNO();
    long r = bs_syscall(nr, a, b, c, d, 0L);
    return r < 0 ? -errno : r;
}

/* A growing text buffer. */
struct text {
    char *p;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->failed ? 0 : vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (t->failed || n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 256;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
}

/* s with what JSON strings (quote 1) or Prometheus label values (quote 0) must escape. */
static void put_escaped(struct text *t, const char *s, int json)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(t, "\\%c", c);
        else if (c == '\n')
            put(t, "\\n");
        else if (c < 0x20 || c == 0x7f)
            put(t, json ? "\\u%04x" : "?", c);
        else
            put(t, "%c", c);
    }
}

/* What a non-regular target is, through the descriptor the shim holds to it. */
static void stream_of(struct bs_target *t, struct row *r)
{
    int fd = atomic_load(&t->held);
    struct stat st;
    const char *kind = "not a regular file";
    if (fd >= 0 && atomic_load(&t->held_gen) == bs_private_gen() &&
        sys(SYS_fstat, fd, (long)&st, 0, 0) == 0) {
        kind = S_ISFIFO(st.st_mode)   ? "pipe"
               : S_ISSOCK(st.st_mode) ? "socket"
               : S_ISCHR(st.st_mode)  ? "terminal"
                                      : kind;
        char link[64];
        /* thread-self: the writer threads' table is not the process's (private_fds.c). */
        snprintf(link, sizeof link, "/proc/thread-self/fd/%d", fd);
        long n = sys(SYS_readlinkat, AT_FDCWD, (long)link, (long)r->name, sizeof r->name - 1);
        if (n > 0)
            r->name[n] = 0;
    }
    snprintf(r->mode, sizeof r->mode, "diverted, in memory (%s)", kind);
}

static void collect(bufshim_writer *w, void *arg)
{
    (void)arg;
    if (nrows == caprows) {
        size_t cap = caprows ? caprows * 2 : 8;
        struct row *q = realloc(rows, cap * sizeof *q);
        if (!q) {
            rows_failed = 1;
            return;
        }
        rows = q;
        caprows = cap;
    }
    struct row *r = &rows[nrows++];
    bs_writer_status(w, &r->st);
    snprintf(r->name, sizeof r->name, "%s", bs_writer_name(w));
    /* Every writer the shim opens is a target's (target.c). */
    struct bs_target *t = bs_writer_ctx(w);
    if (atomic_load(&t->broken))
        snprintf(r->mode, sizeof r->mode, "pass-through (reader gone)");
    else if (r->st.spooled)
        snprintf(r->mode, sizeof r->mode, "diverted");
    else if (t->regular)
        snprintf(r->mode, sizeof r->mode, "diverted, in memory (%s)",
                 bs_cfg.crashsafe ? "no spool" : "BUFSHIM_CRASHSAFE=0");
    else
        stream_of(t, r);
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static const char *error_text(const struct bs_writer_status *s, char *buf, size_t n)
{
    if (s->stalled)
        snprintf(buf, n, "write hung");
    else
        snprintf(buf, n, "%s", strerror(s->error));
    return buf;
}

static void status_text(struct text *t, pid_t pid, uint64_t now)
{
    put(t, "bufshim-status 1\nmetrics %s\n", bs_cfg.metrics ? bs_cfg.metrics : "");
    put(t, "{\"pid\": %d, \"starttime\": %" PRIu64 ", \"updated\": %.3f, \"interval\": %.3f, ",
        (int)pid, files_start, secs(now), bs_cfg.interval);
    put(t, "\"metrics\": ");
    if (bs_cfg.metrics) {
        put(t, "\"");
        put_escaped(t, bs_cfg.metrics, 1);
        put(t, "\"");
    } else {
        put(t, "null");
    }
    put(t, ", \"targets\": [");
    for (size_t i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        const struct bs_writer_status *s = &r->st;
        put(t, "%s\n {\"path\": \"", i ? "," : "");
        put_escaped(t, r->name, 1);
        put(t, "\", \"mode\": \"%s\", \"held\": %" PRIu64 ", ", r->mode, s->held);
        if (s->oldest_real)
            put(t, "\"oldest\": %.3f, \"oldest_held_seconds\": %.3f, ", secs(s->oldest_real),
                now > s->oldest_real ? secs(now - s->oldest_real) : 0.0);
        else
            put(t, "\"oldest\": null, \"oldest_held_seconds\": 0, ");
        put(t, "\"batches\": %" PRIu64 ", \"written\": %" PRIu64 ", ", s->batches, s->written);
        if (s->last_end_real)
            put(t, "\"last_batch\": {\"end\": %.3f, \"seconds\": %.6f, \"bytes\": %" PRIu64 "}, ",
                secs(s->last_end_real), secs(s->last_ns), s->last_bytes);
        else
            put(t, "\"last_batch\": null, ");
        if (s->inflight_real)
            put(t, "\"in_flight_since\": %.3f, ", secs(s->inflight_real));
        else
            put(t, "\"in_flight_since\": null, ");
        if (s->failing) {
            char e[128];
            put(t,
                "\"failure\": {\"error\": \"%s\", \"errno\": %d, \"since\": %.3f, \"held\": "
                "%" PRIu64 "}, ",
                error_text(s, e, sizeof e), s->error, secs(s->failing_since_real), s->held);
        } else {
            put(t, "\"failure\": null, ");
        }
        put(t, "\"failure_episodes\": %" PRIu64 ", \"batch_seconds\": {\"le\": [", s->episodes);
        for (unsigned b = 0; b < BS_BATCH_BUCKETS; b++)
            put(t, "%s%g", b ? ", " : "", secs(bs_batch_bucket_ns[b]));
        put(t, "], \"counts\": [");
        for (unsigned b = 0; b <= BS_BATCH_BUCKETS; b++)
            put(t, "%s%" PRIu64, b ? ", " : "", s->bucket[b]);
        put(t, "], \"sum\": %.6f, \"count\": %" PRIu64 "}}", secs(s->batch_sum_ns), s->batch_count);
    }
    put(t, "]}\n");
}

/* One metric's header and a sample per target. */
static void prom_family(struct text *t, pid_t pid, const char *name, const char *type,
                        const char *help, int which, uint64_t now)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < nrows; i++) {
        const struct bs_writer_status *s = &rows[i].st;
        put(t, "%s{pid=\"%d\",path=\"", name, (int)pid);
        put_escaped(t, rows[i].name, 0);
        put(t, "\"");
        switch (which) {
        case 0:
            put(t, ",mode=\"%s\"} 1\n", rows[i].mode);
            break;
        case 1:
            put(t, "} %" PRIu64 "\n", s->held);
            break;
        case 2:
            put(t, "} %.3f\n",
                s->oldest_real && now > s->oldest_real ? secs(now - s->oldest_real) : 0.0);
            break;
        case 3:
            put(t, "} %" PRIu64 "\n", s->batches);
            break;
        case 4:
            put(t, "} %" PRIu64 "\n", s->written);
            break;
        case 5:
            put(t, "} %d\n", s->failing);
            break;
        case 6:
            put(t, "} %" PRIu64 "\n", s->episodes);
            break;
        case 7:
            put(t, "} %.3f\n", secs(s->last_end_real));
            break;
        }
    }
}

static void prom_text(struct text *t, pid_t pid, uint64_t now)
{
    put(t, "# HELP bufshim_up 1 while the process runs; 0 once it has ended without removing "
           "this file (its figures are gone with it)\n# TYPE bufshim_up gauge\n");
    put(t, "bufshim_up{pid=\"%d\",starttime=\"%" PRIu64 "\"} 1\n", (int)pid, files_start);
    prom_family(
        t, pid, "bufshim_target_info", "gauge",
        "A target of the process, with its mode (diverted, in memory and why, pass-through)", 0,
        now);
    prom_family(t, pid, "bufshim_held_bytes", "gauge", "Bytes held in memory, not yet in the file",
                1, now);
    prom_family(t, pid, "bufshim_oldest_held_seconds", "gauge",
                "Age of the oldest held byte (0 when nothing is held)", 2, now);
    prom_family(t, pid, "bufshim_batches_total", "counter", "Batches that wrote bytes", 3, now);
    prom_family(t, pid, "bufshim_written_bytes_total", "counter",
                "Bytes the batches wrote to the file", 4, now);
    prom_family(t, pid, "bufshim_failure_active", "gauge",
                "1 during a failure episode: writes failing, or one in flight for longer than "
                "the interval (at least 1 s)",
                5, now);
    prom_family(t, pid, "bufshim_failure_episodes_total", "counter",
                "Failure episodes (failing writes, stalled writes), the one in progress included",
                6, now);
    prom_family(t, pid, "bufshim_last_batch_timestamp_seconds", "gauge",
                "When the last batch ended (Unix time; 0: none yet)", 7, now);
    put(t, "# HELP bufshim_batch_seconds How long batches took to write\n"
           "# TYPE bufshim_batch_seconds histogram\n");
    for (size_t i = 0; i < nrows; i++) {
        const struct bs_writer_status *s = &rows[i].st;
        uint64_t cum = 0;
        for (unsigned b = 0; b <= BS_BATCH_BUCKETS; b++) {
            cum += s->bucket[b];
            put(t, "bufshim_batch_seconds_bucket{pid=\"%d\",path=\"", (int)pid);
            put_escaped(t, rows[i].name, 0);
            if (b < BS_BATCH_BUCKETS)
                put(t, "\",le=\"%g\"} %" PRIu64 "\n", secs(bs_batch_bucket_ns[b]), cum);
            else
                put(t, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        put(t, "bufshim_batch_seconds_sum{pid=\"%d\",path=\"", (int)pid);
        put_escaped(t, rows[i].name, 0);
        put(t, "\"} %.6f\n", secs(s->batch_sum_ns));
        put(t, "bufshim_batch_seconds_count{pid=\"%d\",path=\"", (int)pid);
        put_escaped(t, rows[i].name, 0);
        put(t, "\"} %" PRIu64 "\n", s->batch_count);
    }
}

/* Writes text to path through a temporary name in the same folder, then renames it. */
static void replace_file(const char *path, const struct text *t)
{
    if (t->failed || !t->p)
        return;
    char tmp[sizeof status_path + 16];
    const char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
    int fd =
        (int)sys(SYS_openat, AT_FDCWD, (long)tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w = bs_sys_write_all(fd, t->p, t->len);
    bs_sys_close(fd);
    if (w != (ssize_t)t->len || sys(SYS_renameat, AT_FDCWD, (long)tmp, AT_FDCWD, (long)path) < 0)
        sys(SYS_unlinkat, AT_FDCWD, (long)tmp, 0, 0);
}

static void remove_files(void)
{
    if (!files_pid || files_pid != (pid_t)sys(SYS_getpid, 0, 0, 0, 0))
        return;
    if (status_path[0])
        sys(SYS_unlinkat, AT_FDCWD, (long)status_path, 0, 0);
    if (prom_path[0])
        sys(SYS_unlinkat, AT_FDCWD, (long)prom_path, 0, 0);
    files_pid = 0;
    last_sig = 0;
}

static int report(void)
{
    pid_t pid = (pid_t)sys(SYS_getpid, 0, 0, 0, 0);
    atomic_store(&busy_pid, pid);
    if (atomic_load(&done)) {
        atomic_store(&busy_pid, 0);
        return 0;
    }
    if (files_pid != pid) { /* the first report of this process, or of a forked child */
        const char *dir = bs_spool_dir();
        files_pid = pid;
        files_start = bs_proc_starttime(pid);
        last_sig = 0;
        status_path[0] = prom_path[0] = 0;
        if (dir)
            snprintf(status_path, sizeof status_path, "%s/%d-%" PRIu64 ".status", dir, (int)pid,
                     files_start);
        if (bs_cfg.metrics)
            snprintf(prom_path, sizeof prom_path, "%s/%d.prom", bs_cfg.metrics, (int)pid);
    }
    nrows = 0;
    rows_failed = 0;
    bs_engine_foreach_writer(collect, NULL);
    int again = 0;
    uint64_t sig = nrows + 1;
    for (size_t i = 0; i < nrows; i++) {
        const struct bs_writer_status *s = &rows[i].st;
        if (s->held || s->inflight_real || s->failing)
            again = 1;
        sig = sig * 1000003u ^ (s->batches * 31 + s->written + s->episodes);
    }
    /* Nothing moved since the last report and nothing waits: the files say it already. */
    if (!rows_failed && (again || sig != last_sig)) {
        last_sig = sig;
        uint64_t now = bs_real_ns();
        struct text t = {0};
        if (status_path[0]) {
            status_text(&t, pid, now);
            replace_file(status_path, &t);
        }
        if (prom_path[0]) {
            t.len = 0;
            prom_text(&t, pid, now);
            replace_file(prom_path, &t);
        }
        free(t.p);
    }
    atomic_store(&busy_pid, 0);
    return again;
}

void bs_report_init(void)
{
    uint64_t period = (uint64_t)(bs_cfg.interval * 1e9);
    bs_engine_set_report(report, period > MIN_PERIOD_NS ? period : MIN_PERIOD_NS);
}

/* Waits (briefly: the report writes local files) for a report of this process in progress. */
static void wait_report(void)
{
    pid_t pid = (pid_t)sys(SYS_getpid, 0, 0, 0, 0);
    for (int i = 0; i < 2000 && atomic_load(&busy_pid) == pid; i++)
        bs_sleep_ns(1000000);
}

void bs_report_final(void)
{
    BS_KEEP_ERRNO();
    atomic_store(&done, 1);
    wait_report();
    remove_files();
}
