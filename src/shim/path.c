/* path.c - making a path absolute and folding "." and ".." (config.c and the descriptor layer use
 * it). */
#include "real_i.h"

#include <errno.h>
#include <string.h>

#include "config_i.h"

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
