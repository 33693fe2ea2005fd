/* test_match.c - unit tests of path matching (src/shim/match.c, folding in src/shim/path.c): folding, globs, folder entries. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config_i.h"

#include "check.h"

static int absolute_is(const char *base, const char *path, const char *want)
{
    char out[4096];
    int r = bs_path_absolute(base, path, out, sizeof out);
    if (r != 0 || strcmp(out, want) != 0) {
        fprintf(stderr, "bs_path_absolute(\"%s\", \"%s\") = %d \"%s\", want \"%s\"\n", base,
                path, r, r == 0 ? out : "", want);
        return 0;
    }
    return 1;
}

static int test_path_absolute_folds(void)
{
    CHECK(absolute_is("/base", "a.log", "/base/a.log"));
    CHECK(absolute_is("/base/", "a.log", "/base/a.log"));
    CHECK(absolute_is("/base", "./a//b/", "/base/a/b"));
    CHECK(absolute_is("/base/sub", "../x.log", "/base/x.log"));
    CHECK(absolute_is("/base/sub", "a/../../b/./c", "/base/b/c"));
    CHECK(absolute_is("/base", "a/..", "/base"));
    CHECK(absolute_is("/base", "", "/base"));
    CHECK(absolute_is("/base", ".", "/base"));
    /* An absolute path ignores the base. */
    CHECK(absolute_is("/base", "/etc//x/./y/../z", "/etc/x/z"));
    CHECK(absolute_is("/base", "//a///b", "/a/b"));
    /* ".." above the root stays at the root. */
    CHECK(absolute_is("/", "../../..", "/"));
    CHECK(absolute_is("/base", "/../../a", "/a"));
    CHECK(absolute_is("/", "/", "/"));
    /* Names that only look like dots are names. */
    CHECK(absolute_is("/base", "...", "/base/..."));
    CHECK(absolute_is("/base", ".hidden/..x", "/base/.hidden/..x"));
    return 0;
}

static int test_path_absolute_too_long(void)
{
    char out[16];
    CHECK(bs_path_absolute("/base", "abcdefghijklmnopqrstuvwxyz", out, sizeof out) ==
          -ENAMETOOLONG);
    /* "/" and 14 characters and the NUL fill 16 bytes exactly; one more does not fit. */
    CHECK(bs_path_absolute("/", "abcdefghijklmn", out, sizeof out) == 0);
    CHECK(strcmp(out, "/abcdefghijklmn") == 0);
    CHECK(bs_path_absolute("/", "abcdefghijklmno", out, sizeof out) == -ENAMETOOLONG);
    static char huge[10000];
    memset(huge, 'a', sizeof huge - 1);
    char big[20000];
    CHECK(bs_path_absolute("/base", huge, big, sizeof big) == -ENAMETOOLONG);
    return 0;
}

static struct bs_glob globs[8];

static void configure(const char *pattern, int below)
{
    globs[0].pattern = (char *)pattern;
    globs[0].below = below;
    bs_cfg.globs = globs;
    bs_cfg.nglobs = 1;
}

static int test_glob_entries(void)
{
    configure("/d/*.log", 0);
    CHECK(bs_match_path("/d/a.log"));
    CHECK(bs_match_path("/d/.log"));
    CHECK(!bs_match_path("/d/a.txt"));
    CHECK(!bs_match_path("/d/sub/a.log")); /* '*' does not cross '/' */
    CHECK(!bs_match_path("/e/a.log"));
    configure("/*/x.log", 0);
    CHECK(bs_match_path("/d/x.log"));
    CHECK(!bs_match_path("/d/e/x.log"));
    configure("/d/log.[0-9]", 0);
    CHECK(bs_match_path("/d/log.7"));
    CHECK(!bs_match_path("/d/log.x"));
    configure("/d/?.log", 0);
    CHECK(bs_match_path("/d/a.log"));
    CHECK(!bs_match_path("/d/ab.log"));
    return 0;
}

static int test_folder_entries_match_below(void)
{
    /* Folder entries (a trailing slash, or slash, star, star) are stored as the folder,
       with below set. */
    configure("/d/logs", 1);
    CHECK(bs_match_path("/d/logs/a"));
    CHECK(bs_match_path("/d/logs/x/y/z.log"));
    CHECK(!bs_match_path("/d/logs")); /* the folder itself is not a file below it */
    CHECK(!bs_match_path("/d/logsx/a"));
    CHECK(!bs_match_path("/d/log/a"));
    CHECK(!bs_match_path("/d/a"));
    /* A glob folder: every folder it matches, and all below. */
    configure("/d/*", 1);
    CHECK(bs_match_path("/d/a/b"));
    CHECK(bs_match_path("/d/a/b/c"));
    CHECK(!bs_match_path("/d/a"));
    CHECK(!bs_match_path("/e/a/b"));
    /* The root (an entry of a slash alone, or slash, star, star): everything. */
    configure("", 1);
    CHECK(bs_match_path("/a"));
    CHECK(bs_match_path("/a/b/c"));
    return 0;
}

static int test_several_entries_and_none(void)
{
    globs[0] = (struct bs_glob){(char *)"/a/*.log", 0};
    globs[1] = (struct bs_glob){(char *)"/b", 1};
    bs_cfg.globs = globs;
    bs_cfg.nglobs = 2;
    CHECK(bs_match_path("/a/x.log"));
    CHECK(bs_match_path("/b/x.txt"));
    CHECK(!bs_match_path("/a/x.txt"));
    bs_cfg.nglobs = 0;
    CHECK(!bs_match_path("/a/x.log"));
    bs_cfg.globs = NULL;
    return 0;
}

int main(void)
{
    int fails = 0, n = 0;
#define RUN(t) (n++, fails += t())
    RUN(test_path_absolute_folds);
    RUN(test_path_absolute_too_long);
    RUN(test_glob_entries);
    RUN(test_folder_entries_match_below);
    RUN(test_several_entries_and_none);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails ? 1 : 0;
}
