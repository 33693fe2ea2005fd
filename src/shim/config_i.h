/* config_i.h - the shim's configuration (doc/behaviour.md §1) and path matching. */
#ifndef BUFSHIM_CONFIG_I_H
#define BUFSHIM_CONFIG_I_H

#include <stddef.h>

/* Errno: bs_config_load may change errno (the constructor keeps the program's); the
   parsing and matching functions do not touch it. */

struct bs_glob {
    char *pattern; /* absolute fnmatch pattern; for a folder entry, the folder without '/' */
    int below;     /* 1: the entry ended in a slash (or slash, star, star): all below */
    size_t lit;    /* length of the pattern's leading part without *, ?, [ or \: every
                      path it matches begins with those characters */
};

struct bs_config {
    int active;        /* valid and something to divert: the shim does its work */
    double interval;   /* seconds */
    int fsync;         /* fdatasync each batch */
    int debug;         /* one stderr line per batch and per decision */
    const char *stats; /* BUFSHIM_STATS path, or NULL */
    int crashsafe;     /* BUFSHIM_CRASHSAFE (default 1): buffers in spools */
    const char *spool_dir; /* BUFSHIM_SPOOL_DIR, or NULL for the default folder */
    const char *metrics;   /* BUFSHIM_METRICS: folder of <pid>.prom files, or NULL */
    int word_stdout;   /* "stdout" listed: fd 1 is a target whatever it is */
    int word_stderr;   /* "stderr" listed: fd 2 */
    size_t nglobs;
    struct bs_glob *globs;
};

/* Filled once by bs_config_load(); all zero (inert) until then or when invalid. */
extern struct bs_config bs_cfg;

/*
 * Reads the BUFSHIM_* environment. On any bad value prints exactly one line on
 * stderr and leaves bs_cfg inert (active == 0). Called once, by the constructor.
 */
void bs_config_load(void);

/*
 * Parses a duration ("2", "0.25", "500ms", "2s") into seconds. Returns 0 and
 * stores it, -EINVAL when it is not a duration, -ERANGE when it is not > 0.
 */
int bs_config_parse_interval(const char *s, double *out);

/* 1 when the absolute, folded path matches a glob entry of the configuration (match.c). */
int bs_match_path(const char *abs);

/*
 * Makes path absolute against base (a folder, absolute) unless it already is,
 * and folds "." and ".." and repeated slashes. Returns 0, or -ENAMETOOLONG (path.c,
 * which uses nothing of the configuration).
 */
int bs_path_absolute(const char *base, const char *path, char *out, size_t outsize);

#endif /* BUFSHIM_CONFIG_I_H */
