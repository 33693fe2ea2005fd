/* match.c - decides whether a path is one BUFSHIM_PATHS names (doc/behaviour.md §1). */
#include "real_i.h"

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
        /* fnmatch only for a path that begins with the pattern's literal part (for a
           folder, each prefix below() tries begins with it too) */
        if (strncmp(abs, g->pattern, g->lit) != 0)
            continue;
        if (g->below ? below(g->pattern, abs) : fnmatch(g->pattern, abs, FNM_PATHNAME) == 0)
            return 1;
    }
    return 0;
}
