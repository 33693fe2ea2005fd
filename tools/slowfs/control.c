/* control.c - latencies and fault rules: parsing control lines, applying them to calls. */
#include "slowfs_i.h"

#include <fuse_lowlevel.h>

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALL_OPS ((1u << SFS_OP_CTL) - 1)
#define MAX_RULES 256
#define MAX_WORDS 16
#define MAX_DELAY_NS (3600LL * 1000000000LL)

static const char *const op_names[SFS_OP_COUNT] = {
    [SFS_OP_GETATTR] = "getattr",     [SFS_OP_READDIR] = "readdir", [SFS_OP_OPEN] = "open",
    [SFS_OP_CREATE] = "create",       [SFS_OP_READ] = "read",       [SFS_OP_WRITE] = "write",
    [SFS_OP_FLUSH] = "flush",         [SFS_OP_RELEASE] = "release", [SFS_OP_FSYNC] = "fsync",
    [SFS_OP_TRUNCATE] = "truncate",   [SFS_OP_UNLINK] = "unlink",   [SFS_OP_RENAME] = "rename",
    [SFS_OP_MKDIR] = "mkdir",         [SFS_OP_RMDIR] = "rmdir",     [SFS_OP_SYMLINK] = "symlink",
    [SFS_OP_READLINK] = "readlink",   [SFS_OP_LINK] = "link",       [SFS_OP_CHMOD] = "chmod",
    [SFS_OP_CHOWN] = "chown",         [SFS_OP_UTIMENS] = "utimens", [SFS_OP_STATFS] = "statfs",
    [SFS_OP_FALLOCATE] = "fallocate", [SFS_OP_CTL] = "ctl",
};

static const struct {
    const char *name;
    int err;
} errnos[] = {
    {"EIO", EIO},
    {"ENOSPC", ENOSPC},
    {"EDQUOT", EDQUOT},
    {"ENOENT", ENOENT},
    {"EACCES", EACCES},
    {"EPERM", EPERM},
    {"EROFS", EROFS},
    {"EFBIG", EFBIG},
    {"ENOTCONN", ENOTCONN},
    {"ETIMEDOUT", ETIMEDOUT},
    {"EAGAIN", EAGAIN},
    {"ESTALE", ESTALE},
    {"EINTR", EINTR},
    {"EBADF", EBADF},
    {"EINVAL", EINVAL},
    {"EEXIST", EEXIST},
    {"ENOMEM", ENOMEM},
    {"EMFILE", EMFILE},
    {"ENFILE", ENFILE},
    {"EBUSY", EBUSY},
    {"EISDIR", EISDIR},
    {"ENOTDIR", ENOTDIR},
    {"ENXIO", ENXIO},
    {"ECONNRESET", ECONNRESET},
    {"EHOSTUNREACH", EHOSTUNREACH},
    {"ENETDOWN", ENETDOWN},
    {"EREMOTEIO", EREMOTEIO},
};

enum rule_kind { RULE_FAIL, RULE_HANG, RULE_DELAY, RULE_SHORT };
static const char *const kind_names[] = {"fail", "hang", "delay", "short"};

struct rule {
    enum rule_kind kind;
    unsigned ops; /* bit mask of enum sfs_op */
    char *opword; /* the op word as written, for the status */
    long count;   /* matches left; -1: until cleared */
    int err;      /* RULE_FAIL */
    int64_t ns;   /* RULE_DELAY */
    size_t bytes; /* RULE_SHORT; 0: half of the write */
    char *glob;   /* NULL: every path */
};

/* All settings live under one lock; calls copy what they need and never sleep with it
 * held, except hung calls, which wait on the condition variable. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released_cond = PTHREAD_COND_INITIALIZER;
static int64_t latency_ns[SFS_OP_COUNT];
static struct rule rules[MAX_RULES];
static size_t nrules;
static uint64_t release_gen; /* bumped by release/clear: hung calls of older generations go */
static int shutting_down;
static unsigned hung_now;
static uint64_t hung_total;

const char *sfs_op_name(enum sfs_op op)
{
    return (unsigned)op < SFS_OP_COUNT ? op_names[op] : NULL;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* "write" -> its bit; "open" also covers create (both open a file); "all" or "*" every op. */
static int parse_ops(const char *word, unsigned *mask)
{
    if (!strcmp(word, "all") || !strcmp(word, "*")) {
        *mask = ALL_OPS;
        return 0;
    }
    for (int i = 0; i < SFS_OP_CTL; i++) {
        if (!strcmp(word, op_names[i])) {
            *mask = 1u << i;
            if (i == SFS_OP_OPEN)
                *mask |= 1u << SFS_OP_CREATE;
            return 0;
        }
    }
    return -EINVAL;
}

/* "5ms", "2s", "0.5s", "100us", "300ns"; a bare number is milliseconds. */
static int parse_duration(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return -EINVAL;
    double scale;
    if (!*end || !strcmp(end, "ms"))
        scale = 1e6;
    else if (!strcmp(end, "s"))
        scale = 1e9;
    else if (!strcmp(end, "us"))
        scale = 1e3;
    else if (!strcmp(end, "ns"))
        scale = 1;
    else
        return -EINVAL;
    double total = v * scale;
    if (total > (double)MAX_DELAY_NS)
        return -EINVAL;
    *ns = (int64_t)llround(total);
    return 0;
}

static int parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_errno(const char *s, int *err)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
        if (!strcmp(s, errnos[i].name)) {
            *err = errnos[i].err;
            return 0;
        }
    }
    long v;
    if (parse_long(s, 1, &v) == 0 && v < 4096) {
        *err = (int)v;
        return 0;
    }
    return -EINVAL;
}

static const char *errno_name(int err)
{
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (errnos[i].err == err)
            return errnos[i].name;
    return NULL;
}

/* "open=5ms,write=2ms" into lat (only the named ops change). */
static int parse_latency(const char *spec, int64_t lat[SFS_OP_COUNT], char *err, size_t errlen)
{
    char *copy = strdup(spec);
    if (!copy)
        return fail(err, errlen, "out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        unsigned mask;
        int64_t ns;
        if (!eq) {
            rc = fail(err, errlen, "latency \"%s\": expected OP=DURATION", item);
            break;
        }
        *eq = '\0';
        if (parse_ops(item, &mask)) {
            rc = fail(err, errlen, "latency: unknown operation \"%s\"", item);
            break;
        }
        if (parse_duration(eq + 1, &ns)) {
            rc = fail(err, errlen, "latency: bad duration \"%s\"", eq + 1);
            break;
        }
        for (int i = 0; i < SFS_OP_CTL; i++)
            if (mask & (1u << i))
                lat[i] = ns;
    }
    free(copy);
    return rc;
}

int sfs_control_init(const char *latency_spec, char *err, size_t errlen)
{
    if (!latency_spec)
        return 0;
    return parse_latency(latency_spec, latency_ns, err, errlen);
}

static void rule_free(struct rule *r)
{
    free(r->opword);
    free(r->glob);
    memset(r, 0, sizeof *r);
}

/* A parsed line, applied later so that a write of several lines is all or nothing. */
struct command {
    enum { CMD_LATENCY, CMD_RULE, CMD_RELEASE, CMD_CLEAR, CMD_RESET } type;
    int64_t lat[SFS_OP_COUNT];
    struct rule rule;
};

/* Options "count=K", "path=GLOB", "bytes=N" after a rule's fixed words. */
static int parse_rule_options(struct rule *r, char **w, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        long v;
        if (!strncmp(w[i], "count=", 6)) {
            if (parse_long(w[i] + 6, 1, &v))
                return fail(err, errlen, "bad count \"%s\"", w[i] + 6);
            r->count = v;
        } else if (!strncmp(w[i], "path=", 5) && w[i][5]) {
            free(r->glob);
            r->glob = strdup(w[i] + 5);
            if (!r->glob)
                return fail(err, errlen, "out of memory");
        } else if (r->kind == RULE_SHORT && !strncmp(w[i], "bytes=", 6)) {
            if (parse_long(w[i] + 6, 1, &v))
                return fail(err, errlen, "bad bytes \"%s\"", w[i] + 6);
            r->bytes = (size_t)v;
        } else {
            return fail(err, errlen, "unknown option \"%s\"", w[i]);
        }
    }
    return 0;
}

static int parse_rule(struct command *cmd, char **w, int n, char *err, size_t errlen)
{
    struct rule *r = &cmd->rule;
    cmd->type = CMD_RULE;
    r->count = -1;
    if (!strcmp(w[0], "fail"))
        r->kind = RULE_FAIL;
    else if (!strcmp(w[0], "hang"))
        r->kind = RULE_HANG;
    else if (!strcmp(w[0], "delay"))
        r->kind = RULE_DELAY;
    else
        r->kind = RULE_SHORT;
    /* "fail OP ERRNO", "delay OP DURATION", "hang OP", "short OP", then options. */
    int fixed = r->kind == RULE_FAIL || r->kind == RULE_DELAY ? 3 : 2;
    if (n < fixed)
        return fail(err, errlen, "%s: too few words", w[0]);
    if (parse_ops(w[1], &r->ops))
        return fail(err, errlen, "%s: unknown operation \"%s\"", w[0], w[1]);
    if (r->kind == RULE_SHORT && r->ops != 1u << SFS_OP_WRITE)
        return fail(err, errlen, "short: only writes can be short");
    r->opword = strdup(w[1]);
    if (!r->opword)
        return fail(err, errlen, "out of memory");
    if (r->kind == RULE_FAIL && parse_errno(w[2], &r->err))
        return fail(err, errlen, "fail: unknown error \"%s\"", w[2]);
    if (r->kind == RULE_DELAY && parse_duration(w[2], &r->ns))
        return fail(err, errlen, "delay: bad duration \"%s\"", w[2]);
    return parse_rule_options(r, w + fixed, n - fixed, err, errlen);
}

/* Parses one line (modified in place). Returns 1 for a command, 0 for a blank or
 * comment line, -EINVAL for an invalid one. */
static int parse_line(char *line, struct command *cmd, char *err, size_t errlen)
{
    char *w[MAX_WORDS];
    int n = 0;
    char *save = NULL;
    memset(cmd, 0, sizeof *cmd);
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (n == 0 && t[0] == '#')
            return 0;
        if (n == MAX_WORDS)
            return fail(err, errlen, "too many words");
        w[n++] = t;
    }
    if (n == 0)
        return 0;
    if (!strcmp(w[0], "latency")) {
        if (n != 2)
            return fail(err, errlen, "usage: latency OP=DURATION[,OP=DURATION...]");
        cmd->type = CMD_LATENCY;
        for (int i = 0; i < SFS_OP_COUNT; i++)
            cmd->lat[i] = -1; /* unchanged */
        int rc = parse_latency(w[1], cmd->lat, err, errlen);
        return rc ? rc : 1;
    }
    if (!strcmp(w[0], "release") || !strcmp(w[0], "clear") || !strcmp(w[0], "reset")) {
        if (n != 1)
            return fail(err, errlen, "%s takes no arguments", w[0]);
        if (!strcmp(w[0], "release"))
            cmd->type = CMD_RELEASE;
        else if (!strcmp(w[0], "clear"))
            cmd->type = CMD_CLEAR;
        else
            cmd->type = CMD_RESET;
        return 1;
    }
    if (!strcmp(w[0], "fail") || !strcmp(w[0], "hang") || !strcmp(w[0], "delay") ||
        !strcmp(w[0], "short")) {
        int rc = parse_rule(cmd, w, n, err, errlen);
        if (rc) {
            rule_free(&cmd->rule);
            return rc;
        }
        return 1;
    }
    return fail(err, errlen, "unknown command \"%s\"", w[0]);
}

/* Removes the rules for which drop() is true. Called with the lock held. */
static void remove_rules(int (*drop)(const struct rule *))
{
    size_t j = 0;
    for (size_t i = 0; i < nrules; i++) {
        if (drop(&rules[i]))
            rule_free(&rules[i]);
        else
            rules[j++] = rules[i];
    }
    for (size_t i = j; i < nrules; i++)
        memset(&rules[i], 0, sizeof rules[i]);
    nrules = j;
}

static int is_hang(const struct rule *r)
{
    return r->kind == RULE_HANG;
}

static int is_any(const struct rule *r)
{
    (void)r;
    return 1;
}

static void release_hung(void)
{
    release_gen++;
    pthread_cond_broadcast(&released_cond);
}

int sfs_control_apply(const char *text, size_t len, char *err, size_t errlen)
{
    char *copy = strndup(text, len);
    if (!copy)
        return fail(err, errlen, "out of memory");
    if (strlen(copy) != len) {
        free(copy);
        return fail(err, errlen, "NUL byte in command");
    }
    struct command *cmds = NULL;
    size_t ncmds = 0, cap = 0, new_rules = 0;
    int rc = 0;

    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (ncmds == cap) {
            cap = cap ? cap * 2 : 4;
            struct command *nc = realloc(cmds, cap * sizeof *cmds);
            if (!nc) {
                rc = fail(err, errlen, "out of memory");
                break;
            }
            cmds = nc;
        }
        int r = parse_line(line, &cmds[ncmds], err, errlen);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r > 0) {
            new_rules += cmds[ncmds].type == CMD_RULE;
            ncmds++;
        }
    }
    pthread_mutex_lock(&lock);
    if (rc == 0 && nrules + new_rules > MAX_RULES)
        rc = fail(err, errlen, "more than %d rules", MAX_RULES);
    for (size_t i = 0; i < ncmds; i++) {
        struct command *c = &cmds[i];
        if (rc) {
            if (c->type == CMD_RULE)
                rule_free(&c->rule);
            continue;
        }
        switch (c->type) {
        case CMD_LATENCY:
            for (int j = 0; j < SFS_OP_COUNT; j++)
                if (c->lat[j] >= 0)
                    latency_ns[j] = c->lat[j];
            break;
        case CMD_RULE:
            rules[nrules++] = c->rule;
            break;
        case CMD_RELEASE:
            remove_rules(is_hang);
            release_hung();
            break;
        case CMD_RESET:
            memset(latency_ns, 0, sizeof latency_ns);
            /* fall through */
        case CMD_CLEAR:
            remove_rules(is_any);
            release_hung();
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    free(cmds);
    free(copy);
    return rc;
}

__attribute__((format(printf, 4, 5))) static void status_add(char *buf, size_t cap, size_t *len,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

size_t sfs_control_status(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    pthread_mutex_lock(&lock);
    status_add(buf, cap, &len, "latency");
    const char *sep = " ";
    for (int i = 0; i < SFS_OP_CTL; i++) {
        if (latency_ns[i]) {
            status_add(buf, cap, &len, "%s%s=%.3fms", sep, op_names[i], latency_ns[i] / 1e6);
            sep = ",";
        }
    }
    status_add(buf, cap, &len, "%s\n", *sep == ' ' ? " none" : "");
    for (size_t i = 0; i < nrules; i++) {
        const struct rule *r = &rules[i];
        status_add(buf, cap, &len, "%s %s", kind_names[r->kind], r->opword);
        if (r->kind == RULE_FAIL) {
            const char *name = errno_name(r->err);
            if (name)
                status_add(buf, cap, &len, " %s", name);
            else
                status_add(buf, cap, &len, " %d", r->err);
        }
        if (r->kind == RULE_DELAY)
            status_add(buf, cap, &len, " %.3fms", r->ns / 1e6);
        if (r->kind == RULE_SHORT && r->bytes)
            status_add(buf, cap, &len, " bytes=%zu", r->bytes);
        if (r->count >= 0)
            status_add(buf, cap, &len, " count=%ld", r->count);
        if (r->glob)
            status_add(buf, cap, &len, " path=%s", r->glob);
        status_add(buf, cap, &len, "\n");
    }
    status_add(buf, cap, &len, "hung %u\nhung_total %" PRIu64 "\nreleased %" PRIu64 "\n", hung_now,
               hung_total, release_gen);
    pthread_mutex_unlock(&lock);
    return len;
}

/* A glob without '/' matches the file name; one with '/' matches the whole path from the
 * mount root ("/dir/x*.log" or "dir/x*.log"), with '*' not crossing '/'. */
static int glob_matches(const char *glob, const char *path)
{
    if (!glob)
        return 1;
    if (!path)
        return 0;
    if (strchr(glob, '/'))
        return fnmatch(glob, glob[0] == '/' ? path : path + 1, FNM_PATHNAME) == 0;
    const char *base = strrchr(path, '/');
    return fnmatch(glob, base ? base + 1 : path, 0) == 0;
}

/* The first rule of a kind that matches the call, with one use consumed (a rule whose
 * count reaches zero is removed). Returns 1 and copies the rule into *out when found.
 * Called with the lock held. */
static int take_rule(enum rule_kind kind, const struct sfs_call *c, struct rule *out)
{
    for (size_t i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (r->kind != kind || !(r->ops & (1u << c->op)) || !glob_matches(r->glob, c->path))
            continue;
        *out = *r;
        out->opword = NULL;
        out->glob = NULL;
        if (r->count > 0 && --r->count == 0) {
            rule_free(r);
            memmove(r, r + 1, (nrules - i - 1) * sizeof *r);
            memset(&rules[--nrules], 0, sizeof *r);
        }
        return 1;
    }
    return 0;
}

static int session_exited(void)
{
    struct fuse_context *ctx = fuse_get_context();
    return ctx && ctx->fuse && fuse_session_exited(fuse_get_session(ctx->fuse));
}

static void sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR)
        ;
}

int sfs_control_inject(struct sfs_call *c, size_t *size)
{
    struct rule r;
    int64_t delay;
    int err = 0;
    struct timespec base = c->start_mono;

    pthread_mutex_lock(&lock);
    if (take_rule(RULE_HANG, c, &r)) {
        /* A dead server: wait for "release"/"clear". The wait wakes now and then so that
         * a daemon told to exit is not held up by it, and, when mounted with -o intr, a
         * caller that got a signal gets EINTR (as on an NFS "intr" mount); without it,
         * the caller waits even through SIGKILL, as on a hard mount. */
        uint64_t gen = release_gen;
        hung_now++;
        hung_total++;
        while (gen == release_gen && !shutting_down) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_nsec += 100000000;
            if (t.tv_nsec >= 1000000000) {
                t.tv_sec++;
                t.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&released_cond, &lock, &t);
            if (session_exited())
                break;
            if (fuse_interrupted()) {
                err = EINTR;
                break;
            }
        }
        hung_now--;
        clock_gettime(CLOCK_MONOTONIC, &base);
    }
    if (err) {
        pthread_mutex_unlock(&lock);
        return -err;
    }
    delay = latency_ns[c->op];
    if (take_rule(RULE_DELAY, c, &r))
        delay += r.ns;
    if (take_rule(RULE_FAIL, c, &r))
        err = r.err;
    if (!err && size && take_rule(RULE_SHORT, c, &r)) {
        size_t want = r.bytes ? r.bytes : *size / 2;
        if (want == 0)
            want = 1;
        if (want < *size)
            *size = want;
    }
    pthread_mutex_unlock(&lock);

    if (delay > 0) {
        /* Latency counts from the start of the call (or the end of its hang), as a
         * round trip would. */
        struct timespec t = base;
        t.tv_sec += (time_t)(delay / 1000000000);
        t.tv_nsec += (long)(delay % 1000000000);
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000;
        }
        sleep_until(&t);
    }
    return -err;
}

void sfs_control_shutdown(void)
{
    pthread_mutex_lock(&lock);
    shutting_down = 1;
    release_hung();
    pthread_mutex_unlock(&lock);
}
