/* stdio_exit_dso.c - a shared object whose constructor and destructor use stdio.
 *
 * When STDIO_EXIT_DSO_PATH is set, its constructor (which runs before the
 * shim's) prints to stdout and opens that path with fopen "a"; its destructor
 * (which runs after the shim's) prints to stdout and to that stream again and
 * leaves both unflushed: glibc flushes them at exit, after every destructor.
 * It also keeps the value stdout had when it started (before the shim's
 * constructor replaced it), as libstdc++'s std::cout may.
 */
#include <stdio.h>
#include <stdlib.h>

static FILE *dso_fp;
static FILE *saved_stdout;

__attribute__((constructor)) static void dso_init(void)
{
    /* Like libstdc++'s std::cout: keep the stdout of before the shim's start. */
    saved_stdout = stdout;
    const char *p = getenv("STDIO_EXIT_DSO_PATH");
    if (p == NULL)
        return;
    printf("dso constructor: buffered stdout\n");
    dso_fp = fopen(p, "a");
    if (dso_fp != NULL)
        fputs("dso constructor: buffered stream\n", dso_fp);
}

__attribute__((destructor)) static void dso_fini(void)
{
    if (getenv("STDIO_EXIT_DSO_PATH") == NULL)
        return;
    printf("dso destructor: stdout after the shim's destructor\n");
    if (dso_fp != NULL)
        fputs("dso destructor: stream after the shim's destructor\n", dso_fp);
    FILE *late = fopen(getenv("STDIO_EXIT_DSO_PATH"), "a");
    if (late != NULL)
        fputs("dso destructor: a stream opened after the shim's destructor\n", late);
}

/* The stream this library's constructor opened (a logging library's handle). */
FILE *stdio_exit_dso_stream(void);
FILE *stdio_exit_dso_stream(void)
{
    return dso_fp;
}

/* The value of stdout when this library's constructor ran. */
FILE *stdio_exit_dso_saved_stdout(void);
FILE *stdio_exit_dso_saved_stdout(void)
{
    return saved_stdout;
}
