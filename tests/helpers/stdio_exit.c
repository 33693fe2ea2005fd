/* stdio_exit.c - stdio data that glibc flushes at exit, some after library destructors.
 *
 * usage: stdio_exit MODE PATH      (stdout is redirected to PATH by the caller)
 * MODE return: buffered data on a FILE and stdout, return from main.
 *      exit:   the same, exit(0) from a nested function.
 *      atexit: an atexit handler writes more (it runs before the destructors).
 *      dso:    as return; the linked stdio_exit_dso prints from its destructor
 *              (set STDIO_EXIT_DSO_PATH=PATH).
 *      fclose_stdout: fclose(stdout) at the end, then printf must fail (EBADF).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int stdio_exit_dso_linked(void);

static FILE *fp;

static void handler(void)
{
    fputs("atexit: stream\n", fp);
    printf("atexit: stdout");
}

static void leave(void)
{
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 3 || !stdio_exit_dso_linked())
        return 2;
    const char *mode = argv[1];
    fp = fopen(argv[2], "a");
    if (fp == NULL)
        return 1;
    if (!strcmp(mode, "atexit"))
        atexit(handler);
    for (int i = 0; i < 100; i++) {
        fprintf(fp, "main: stream %d\n", i);
        printf("main: stdout %d\n", i);
    }
    fputs("main: unterminated stream line ", fp);
    printf("main: unterminated stdout line ");
    if (!strcmp(mode, "exit"))
        leave();
    if (!strcmp(mode, "fclose_stdout")) {
        if (fclose(stdout) != 0)
            return 1;
        errno = 0;
        int r = printf("after fclose\n");
        int r2 = fflush(stdout);
        fprintf(fp, "printf after fclose(stdout): %d %d %s\n", r, r2, strerror(errno));
    }
    return 0;
}
