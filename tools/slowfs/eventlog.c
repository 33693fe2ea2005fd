/* eventlog.c - one JSON line per operation: who, what, where, how big, when, result. */
#include "slowfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* A growable line buffer; on allocation failure it marks itself failed and the line
 * is dropped rather than written half. */
struct line {
    char *buf;
    size_t len, cap;
    int failed;
};

static void line_reserve(struct line *l, size_t more)
{
    if (l->failed || l->len + more + 1 <= l->cap)
        return;
    size_t cap = l->cap ? l->cap : 512;
    while (cap < l->len + more + 1)
        cap *= 2;
    char *nb = realloc(l->buf, cap);
    if (!nb) {
        l->failed = 1;
        return;
    }
    l->buf = nb;
    l->cap = cap;
}

static void line_add(struct line *l, const char *s, size_t n)
{
    line_reserve(l, n);
    if (l->failed)
        return;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void line_printf(struct line *l, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        l->failed = 1;
        return;
    }
    line_add(l, tmp, (size_t)n);
}

/* A JSON string. Bytes >= 0x80 pass through unchanged (UTF-8 names stay readable);
 * readers of names that are not UTF-8 should decode with errors="surrogateescape". */
static void line_string(struct line *l, const char *s, size_t n)
{
    line_add(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            line_add(l, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            line_printf(l, "\\u%04x", ch);
        } else {
            line_add(l, (const char *)&ch, 1);
        }
    }
    line_add(l, "\"", 1);
}

static void line_key(struct line *l, const char *key)
{
    line_printf(l, ",\"%s\":", key);
}

static void line_path(struct line *l, const char *key, const char *path)
{
    line_key(l, key);
    if (path)
        line_string(l, path, strlen(path));
    else
        line_add(l, "null", 4);
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void line_wall(struct line *l, const char *key, const struct timespec *ts)
{
    line_key(l, key);
    line_printf(l, "%lld.%09ld", (long long)ts->tv_sec, (long)ts->tv_nsec);
}

/* The process a thread id belongs to, from /proc; -1 when it cannot be told. */
static pid_t tgid_of(pid_t tid)
{
    if (tid <= 0)
        return -1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nTgid:");
    return p ? (pid_t)strtol(p + 6, NULL, 10) : -1;
}

int sfs_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    log_fd = fd;
    return 0;
}

void sfs_call_begin(struct sfs_call *c, enum sfs_op op, const char *path)
{
    memset(c, 0, sizeof *c);
    c->op = op;
    c->path = path;
    struct fuse_context *ctx = fuse_get_context();
    c->pid = ctx ? ctx->pid : 0;
    c->tgid = log_fd >= 0 ? tgid_of(c->pid) : -1;
    clock_gettime(CLOCK_MONOTONIC, &c->start_mono);
    clock_gettime(CLOCK_REALTIME, &c->start_wall);
}

int64_t sfs_call_end(struct sfs_call *c, int64_t result)
{
    if (log_fd < 0)
        return result;
    struct line l = {0};
    line_printf(&l, "{\"op\":\"%s\"", sfs_op_name(c->op));
    line_path(&l, "path", c->path);
    if (c->path2)
        line_path(&l, "to", c->path2);
    if (c->cmd) {
        line_key(&l, "cmd");
        line_string(&l, c->cmd, c->cmd_len);
    }
    line_printf(&l, ",\"pid\":%d,\"tgid\":%d", (int)c->pid, (int)c->tgid);
    line_key(&l, "fh");
    if (c->has_fh)
        line_printf(&l, "%" PRIu64, c->fh);
    else
        line_add(&l, "null", 4);
    line_key(&l, "off");
    if (c->has_off)
        line_printf(&l, "%" PRId64, c->off);
    else
        line_add(&l, "null", 4);
    line_key(&l, "size");
    if (c->has_size)
        line_printf(&l, "%" PRIu64, c->size);
    else
        line_add(&l, "null", 4);
    if (c->has_flags)
        line_printf(&l, ",\"flags\":%d", c->flags);
    line_printf(&l, ",\"result\":%" PRId64, result);
    line_printf(&l, ",\"start_ns\":%" PRId64, ts_ns(&c->start_mono));

    /* The end is stamped under the lock so that lines appear in end-time order. */
    pthread_mutex_lock(&log_lock);
    struct timespec end_mono, end_wall;
    clock_gettime(CLOCK_MONOTONIC, &end_mono);
    clock_gettime(CLOCK_REALTIME, &end_wall);
    line_printf(&l, ",\"end_ns\":%" PRId64, ts_ns(&end_mono));
    line_wall(&l, "start_wall", &c->start_wall);
    line_wall(&l, "end_wall", &end_wall);
    line_add(&l, "}\n", 2);
    if (!l.failed) {
        size_t done = 0;
        while (done < l.len) {
            ssize_t n = write(log_fd, l.buf + done, l.len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            done += (size_t)n;
        }
    }
    pthread_mutex_unlock(&log_lock);
    free(l.buf);
    return result;
}
