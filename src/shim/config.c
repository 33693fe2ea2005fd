/* config.c - reads the BUFSHIM_* environment once (doc/behaviour.md §1); a bad value makes the
 * shim inert. */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_i.h"
#include "engine_i.h"

struct bs_config bs_cfg;

#define INERT "buffering is off, writes go straight to their files"

/*
 * Decision: an empty value counts as unset (as with PATH-like variables), so
 * BUFSHIM_INTERVAL= keeps the default rather than disabling the shim.
 */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int bs_config_parse_interval(const char *s, double *out)
{
    /* Only plain decimals: strtod alone would also take "0x10", "inf", "nan", " 2". */
    const char *p = s;
    int digits = 0, dot = 0;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && !dot)
            dot = 1;
        else
            break;
    }
    double scale;
    if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
        scale = 1.0;
    else if (strcmp(p, "ms") == 0)
        scale = 1e-3;
    else
        return -EINVAL;
    if (!digits)
        return -EINVAL;
    double v = strtod(s, NULL) * scale;
    if (!(v > 0))
        return -ERANGE;
    *out = v;
    return 0;
}

static int parse_flag(const char *name, int *out)
{
    const char *v = env(name);
    if (!v)
        return 0;
    if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
        *out = v[0] == '1';
        return 0;
    }
    bs_log("%s=\"%s\": not 0 or 1; " INERT, name, v);
    return -1;
}

/* Adds one ':'-separated entry of BUFSHIM_PATHS; logs and returns -1 when it is bad. */
static int add_entry(struct bs_config *c, const char *all, const char *e, size_t n)
{
    if (n == 0)
        return 0; /* "a::b" or a trailing ':': an empty entry means nothing */
    if (n == 6 && memcmp(e, "stdout", 6) == 0) {
        c->word_stdout = 1;
        return 0;
    }
    if (n == 6 && memcmp(e, "stderr", 6) == 0) {
        c->word_stderr = 1;
        return 0;
    }
    if (e[0] != '/') {
        bs_log("BUFSHIM_PATHS=\"%s\": entry \"%.*s\" is neither an absolute glob nor "
               "stdout/stderr; " INERT,
               all, (int)n, e);
        return -1;
    }
    struct bs_glob *g = realloc(c->globs, (c->nglobs + 1) * sizeof *g);
    if (!g)
        return -1;
    c->globs = g;
    g = &c->globs[c->nglobs];
    g->below = 0;
    if (n >= 3 && memcmp(e + n - 3, "/**", 3) == 0) {
        g->below = 1;
        n -= 3;
    } else if (e[n - 1] == '/') {
        g->below = 1;
        n -= 1;
    }
    /* An entry of just a slash (or slash, star, star) is the root: everything. */
    g->pattern = strndup(e, n);
    if (!g->pattern)
        return -1;
    g->lit = strcspn(g->pattern, "*?[\\");
    c->nglobs++;
    return 0;
}

static int parse_paths(struct bs_config *c)
{
    const char *v = env("BUFSHIM_PATHS");
    if (!v)
        return 0;
    for (const char *e = v;;) {
        const char *colon = strchr(e, ':');
        size_t n = colon ? (size_t)(colon - e) : strlen(e);
        if (add_entry(c, v, e, n) < 0)
            return -1;
        if (!colon)
            break;
        e = colon + 1;
    }
    return 0;
}

void bs_config_load(void)
{
#ifdef BS_INERT
    /* -Dinert=true: a library that diverts nothing, for CI to prove that the
       behaviour tests fail without the shim's work (tools/test). */
    memset(&bs_cfg, 0, sizeof bs_cfg);
    return;
#endif
    struct bs_config c = {0};
    c.interval = BS_DEFAULT_INTERVAL;

    const char *iv = env("BUFSHIM_INTERVAL");
    if (iv) {
        int r = bs_config_parse_interval(iv, &c.interval);
        if (r == -EINVAL) {
            bs_log("BUFSHIM_INTERVAL=\"%s\": not a duration; " INERT, iv);
            goto inert;
        }
        if (r < 0) {
            bs_log("BUFSHIM_INTERVAL=\"%s\": must be more than zero; " INERT, iv);
            goto inert;
        }
    }
    c.crashsafe = 1;
    if (parse_flag("BUFSHIM_FSYNC", &c.fsync) < 0 || parse_flag("BUFSHIM_DEBUG", &c.debug) < 0 ||
        parse_flag("BUFSHIM_CRASHSAFE", &c.crashsafe) < 0)
        goto inert;
    const char *sd = env("BUFSHIM_SPOOL_DIR");
    if (sd && sd[0] != '/') {
        bs_log("BUFSHIM_SPOOL_DIR=\"%s\": not an absolute path; " INERT, sd);
        goto inert;
    }
    c.spool_dir = sd ? strdup(sd) : NULL;
    const char *md = env("BUFSHIM_METRICS");
    if (md && md[0] != '/') {
        bs_log("BUFSHIM_METRICS=\"%s\": not an absolute path; " INERT, md);
        goto inert;
    }
    c.metrics = md ? strdup(md) : NULL;
    /* A copy, made absolute now: the program may change its environment or its
       working directory before the report is written at exit. */
    const char *st = env("BUFSHIM_STATS");
    if (st) {
        char cwd[PATH_MAX], abs[PATH_MAX];
        if (strcmp(st, "stderr") == 0 || st[0] == '/')
            c.stats = strdup(st);
        else if (getcwd(cwd, sizeof cwd) && bs_path_absolute(cwd, st, abs, sizeof abs) == 0)
            c.stats = strdup(abs);
    }
    if (parse_paths(&c) < 0)
        goto inert;

    c.active = c.nglobs > 0 || c.word_stdout || c.word_stderr;
    bs_cfg = c;
    return;

inert:
    free((char *)c.stats);
    free((char *)c.spool_dir);
    free((char *)c.metrics);
    for (size_t i = 0; i < c.nglobs; i++)
        free(c.globs[i].pattern);
    free(c.globs);
    memset(&bs_cfg, 0, sizeof bs_cfg);
}
