/* match.c - decides whether a path is one BUFSHIM_PATHS names (doc/behaviour.md §1). */
#include "real_i.h"

#include <errno.h>
#include <fnmatch.h>
#include <string.h>

#include "config_i.h"

/* 1 when some prefix of abs that ends at a '/' matches the folder pattern. */
static int below(const char *folder, const char *abs)
{
    char buf[4096];
    size_t n = strlen(abs);
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, abs, n + 1);
    if (folder[0] == '\0')
        return abs[0] == '/'; /* the root folder */
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        int m = fnmatch(folder, buf, FNM_PATHNAME) == 0;
        buf[i] = '/';
        if (m)
            return 1;
    }
    return 0;
}

int bs_match_path(const char *abs)
{
    for (size_t i = 0; i < bs_cfg.nglobs; i++) {
        const struct bs_glob *g = &bs_cfg.globs[i];
        if (g->below ? below(g->pattern, abs) : fnmatch(g->pattern, abs, FNM_PATHNAME) == 0)
            return 1;
    }
    return 0;
}

int bs_path_absolute(const char *base, const char *path, char *out, size_t outsize)
{
    char tmp[8192];
    size_t bl = 0;
    if (path[0] != '/') {
        bl = strlen(base);
        if (bl + 1 >= sizeof tmp)
            return -ENAMETOOLONG;
        memcpy(tmp, base, bl);
        tmp[bl++] = '/';
    }
    size_t pl = strlen(path);
    if (bl + pl + 1 > sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp + bl, path, pl + 1);

    /* Fold component by component: out always holds a clean absolute prefix. */
    size_t o = 0;
    const char *p = tmp;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* drop the '/' too; "/.." stays "/" */
            continue;
        }
        if (o + 1 + n + 1 > outsize)
            return -ENAMETOOLONG;
        out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return 0;
}
