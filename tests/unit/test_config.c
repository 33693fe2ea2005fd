/* test_config.c - unit tests of the configuration parser (src/shim/config.c, doc/behaviour.md §1). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_i.h"
#include "engine_i.h"

#include "check.h"

static int interval_is(const char *s, double want)
{
    double v = -1;
    int r = bs_config_parse_interval(s, &v);
    if (r != 0 || v < want * (1 - 1e-12) || v > want * (1 + 1e-12)) {
        fprintf(stderr, "parse_interval(\"%s\") = %d, %g; want %g\n", s, r, v, want);
        return 0;
    }
    return 1;
}

static int interval_fails(const char *s, int want)
{
    double v = 42;
    int r = bs_config_parse_interval(s, &v);
    if (r != want || v != 42) {
        fprintf(stderr, "parse_interval(\"%s\") = %d, %g; want %d, untouched\n", s, r, v, want);
        return 0;
    }
    return 1;
}

static int test_parse_interval(void)
{
    CHECK(interval_is("2", 2));
    CHECK(interval_is("0.25", 0.25));
    CHECK(interval_is(".5", 0.5));
    CHECK(interval_is("5.", 5));
    CHECK(interval_is("2s", 2));
    CHECK(interval_is("500ms", 0.5));
    CHECK(interval_is("1.5ms", 0.0015));
    CHECK(interval_is("0.001", 0.001));
    /* Only plain decimals with an optional unit. */
    const char *bad[] = {"", ".", "s", "ms", "0x10", "inf", "nan", " 2", "2 ", "-1", "+1", "1e3",
                         "1.2.3", "2min", "2S", "2 s", "1,5", "ms2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(interval_fails(bad[i], -EINVAL));
    CHECK(interval_fails("0", -ERANGE));
    CHECK(interval_fails("0.000", -ERANGE));
    CHECK(interval_fails("0ms", -ERANGE));
    return 0;
}

static void free_config(void)
{
    free((char *)bs_cfg.stats);
    for (size_t i = 0; i < bs_cfg.nglobs; i++)
        free(bs_cfg.globs[i].pattern);
    free(bs_cfg.globs);
    memset(&bs_cfg, 0, sizeof bs_cfg);
}

static const char *const vars[] = {"BUFSHIM_PATHS", "BUFSHIM_INTERVAL", "BUFSHIM_FSYNC",
                                   "BUFSHIM_DEBUG", "BUFSHIM_STATS"};

static char said[4096]; /* what the last load printed */

/* Loads the configuration from the given environment (NULL values unset); returns the
 * number of lines the load printed on stderr. */
static int load(const char *paths, const char *interval, const char *fsync, const char *debug,
                const char *stats)
{
    const char *vals[] = {paths, interval, fsync, debug, stats};
    for (int i = 0; i < 5; i++) {
        if (vals[i])
            setenv(vars[i], vals[i], 1);
        else
            unsetenv(vars[i]);
    }
    free_config();
    char name[] = "/tmp/bufshim-test-config-XXXXXX";
    int tmp = mkstemp(name);
    if (tmp < 0)
        return -1;
    unlink(name);
    fflush(stderr);
    int saved = dup(2);
    dup2(tmp, 2);
    bs_config_load();
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(tmp, said, sizeof said - 1, 0);
    close(tmp);
    said[n > 0 ? n : 0] = '\0';
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += said[i] == '\n';
    return lines;
}

static int test_defaults_and_values(void)
{
    CHECK(load(NULL, NULL, NULL, NULL, NULL) == 0);
    CHECK(!bs_cfg.active); /* nothing named: nothing to do */
    CHECK(load("/d/*.log", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_cfg.active);
    CHECK(bs_cfg.interval == BS_DEFAULT_INTERVAL && !bs_cfg.fsync && !bs_cfg.debug);
    CHECK(bs_cfg.stats == NULL);
    CHECK(bs_cfg.nglobs == 1 && strcmp(bs_cfg.globs[0].pattern, "/d/*.log") == 0);
    CHECK(!bs_cfg.globs[0].below);
    CHECK(load("/d/*.log", "250ms", "1", "1", "/tmp/s.json") == 0);
    CHECK(bs_cfg.active && bs_cfg.interval == 0.25 && bs_cfg.fsync && bs_cfg.debug);
    CHECK(strcmp(bs_cfg.stats, "/tmp/s.json") == 0);
    CHECK(load("/d/*.log", NULL, "0", "0", "stderr") == 0);
    CHECK(bs_cfg.active && !bs_cfg.fsync && !bs_cfg.debug && strcmp(bs_cfg.stats, "stderr") == 0);
    /* An empty value counts as unset. */
    CHECK(load("/d/*.log", "", "", "", "") == 0);
    CHECK(bs_cfg.active && bs_cfg.interval == BS_DEFAULT_INTERVAL && bs_cfg.stats == NULL);
    CHECK(load("", NULL, NULL, NULL, NULL) == 0);
    CHECK(!bs_cfg.active);
    return 0;
}

static int test_relative_stats_is_made_absolute(void)
{
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(load("/d/*.log", NULL, NULL, NULL, "sub/../s.json") == 0);
    char want[4200];
    snprintf(want, sizeof want, "%s/s.json", strcmp(cwd, "/") == 0 ? "" : cwd);
    CHECK(bs_cfg.stats && strcmp(bs_cfg.stats, want) == 0);
    return 0;
}

static int test_path_entries(void)
{
    CHECK(load("/a/*.log::/b/:/c/**:stdout:stderr:/:", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_cfg.active && bs_cfg.word_stdout && bs_cfg.word_stderr);
    CHECK(bs_cfg.nglobs == 4); /* empty entries mean nothing */
    CHECK(strcmp(bs_cfg.globs[0].pattern, "/a/*.log") == 0 && !bs_cfg.globs[0].below);
    CHECK(strcmp(bs_cfg.globs[1].pattern, "/b") == 0 && bs_cfg.globs[1].below);
    CHECK(strcmp(bs_cfg.globs[2].pattern, "/c") == 0 && bs_cfg.globs[2].below);
    CHECK(strcmp(bs_cfg.globs[3].pattern, "") == 0 && bs_cfg.globs[3].below);
    /* Only the words: active, no globs. */
    CHECK(load("stdout", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_cfg.active && bs_cfg.word_stdout && !bs_cfg.word_stderr && bs_cfg.nglobs == 0);
    return 0;
}

static int test_loaded_globs_match(void)
{
    CHECK(load("/d/*.log:/e/logs/:/f/**", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_match_path("/d/a.log"));
    CHECK(!bs_match_path("/d/sub/a.log")); /* '*' does not cross '/' */
    CHECK(!bs_match_path("/d/a.txt"));
    CHECK(bs_match_path("/e/logs/a"));      /* a folder entry: everything below */
    CHECK(bs_match_path("/e/logs/x/y/z"));
    CHECK(!bs_match_path("/e/logs"));
    CHECK(!bs_match_path("/e/logsx/a"));
    CHECK(bs_match_path("/f/a"));
    CHECK(bs_match_path("/f/a/b/c.txt"));
    CHECK(!bs_match_path("/f"));
    CHECK(!bs_match_path("/g/a.log"));
    CHECK(load("/", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_match_path("/anything/at/all"));
    CHECK(load("/**", NULL, NULL, NULL, NULL) == 0);
    CHECK(bs_match_path("/anything"));
    return 0;
}

/* A bad value: exactly one line on stderr, and an inactive configuration. */
static int bad(const char *paths, const char *interval, const char *fsync, const char *debug)
{
    int lines = load(paths, interval, fsync, debug, "/tmp/s.json");
    if (lines != 1 || bs_cfg.active || bs_cfg.nglobs != 0 || bs_cfg.stats != NULL ||
        bs_cfg.word_stdout) {
        fprintf(stderr, "bad(%s, %s, %s, %s): %d lines, active %d:\n%s", paths, interval, fsync,
                debug, lines, bs_cfg.active, said);
        return 0;
    }
    return 1;
}

static int test_bad_values_make_it_inactive_with_one_line(void)
{
    CHECK(bad("relative/*.log", NULL, NULL, NULL));
    CHECK(bad("/d/*.log:stdout:rel", NULL, NULL, NULL)); /* one bad entry spoils all */
    CHECK(bad("stdout:STDERR", NULL, NULL, NULL));
    CHECK(bad("~/x.log", NULL, NULL, NULL));
    CHECK(bad("/d/*.log", "abc", NULL, NULL));
    CHECK(bad("/d/*.log", "0", NULL, NULL));
    CHECK(bad("/d/*.log", "-1", NULL, NULL));
    CHECK(bad("/d/*.log", NULL, "2", NULL));
    CHECK(bad("/d/*.log", NULL, "yes", NULL));
    CHECK(bad("/d/*.log", NULL, NULL, "true"));
    /* Several bad values still give one line. */
    CHECK(bad("rel", "abc", "2", "x"));
    /* And a good load after a bad one is active again. */
    CHECK(load("/d/*.log", NULL, NULL, NULL, NULL) == 0 && bs_cfg.active);
    return 0;
}

int main(void)
{
    int fails = 0, n = 0;
#define RUN(t) (n++, fails += t())
    RUN(test_parse_interval);
    RUN(test_defaults_and_values);
    RUN(test_relative_stats_is_made_absolute);
    RUN(test_path_entries);
    RUN(test_loaded_globs_match);
    RUN(test_bad_values_make_it_inactive_with_one_line);
    free_config();
    for (int i = 0; i < 5; i++)
        unsetenv(vars[i]);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails ? 1 : 0;
}
