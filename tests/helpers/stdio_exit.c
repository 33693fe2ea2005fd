/* stdio_exit.c - stdio data that glibc flushes at exit, some after library destructors.
 *
 * usage: stdio_exit MODE PATH      (stdout is redirected to PATH by the caller)
 * MODE return: buffered data on a FILE and stdout, return from main.
 *      exit:   the same, exit(0) from a nested function.
 *      atexit: an atexit handler writes more (it runs before the destructors).
 *      atexit_write: nothing in main; an atexit handler writes 100 lines to fd 1 with
 *              write(2), one call each (the process is leaving: the first goes
 *              straight to the file, the others are appended for the final flush).
 *      dso:    as return; the linked stdio_exit_dso prints from its destructor
 *              (set STDIO_EXIT_DSO_PATH=PATH).
 *      fclose_stdout: fclose(stdout) at the end, then printf must fail (EBADF).
 *      saved:  output through the stdout pointer saved by stdio_exit_dso's
 *              constructor (fputs, fwrite, fprintf, putc, inline putc_unlocked,
 *              fflush) mixed with printf on the current stdout and write(1):
 *              both pointers must be one stream.
 *      dso_stream: records through the stream stdio_exit_dso's constructor
 *              opened on PATH (before the shim started) mixed with direct
 *              writes: that stream must divert too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

FILE *stdio_exit_dso_saved_stdout(void);
FILE *stdio_exit_dso_stream(void);

static FILE *fp;

static void handler(void)
{
    fputs("atexit: stream\n", fp);
    printf("atexit: stdout");
}

static void handler_write(void)
{
    char line[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof line, "atexit write %d\n", i);
        if (write(1, line, (size_t)n) != n)
            _exit(3);
    }
}

static void leave(void)
{
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *mode = argv[1];
    fp = fopen(argv[2], "a");
    if (fp == NULL)
        return 1;
    if (!strcmp(mode, "atexit"))
        atexit(handler);
    if (!strcmp(mode, "atexit_write")) {
        atexit(handler_write);
        return 0;
    }
    if (!strcmp(mode, "dso_stream")) {
        FILE *early = stdio_exit_dso_stream();
        int fd = fileno(fp);
        if (early == NULL)
            return 1;
        for (int i = 0; i < 3000; i++) {
            fprintf(early, "early stream %d%s", i, i % 3 ? " " : "\n");
            if (i % 211 == 0)
                dprintf(fd, "<direct %d>\n", i);
        }
        return 0;
    }
    if (!strcmp(mode, "saved")) {
        FILE *old = stdio_exit_dso_saved_stdout();
        char line[64];
        /* Control calls on the saved pointer act on the one stdout too. */
        if (fileno(old) != 1 || ferror(old) || setvbuf(old, NULL, _IOLBF, 0) != 0)
            return 1;
        for (int i = 0; i < 3000; i++) {
            int n = snprintf(line, sizeof line, "s%d%s", i, i % 4 ? " " : "\n");
            switch (i % 6) {
            case 0:
                fputs(line, old);
                break;
            case 1:
                fwrite(line, 1, (size_t)n, old);
                break;
            case 2:
                fprintf(old, "%s", line);
                break;
            case 3:
                for (int k = 0; k < n; k++)
                    putc_unlocked(line[k], old);
                break;
            case 4:
                for (int k = 0; k < n; k++)
                    putc(line[k], old);
                break;
            default:
                printf("%s", line);
                break;
            }
            if (i % 101 == 0 && write(1, "<w>", 3) != 3)
                return 1;
            if (i % 997 == 0)
                fflush(old);
        }
        fputs("unflushed tail through the saved pointer", old);
        return 0;
    }
    /* Direct writes first: everything else stays in stdio's buffers until glibc
       flushes them at exit, after the shim's final flush, where nothing is diverted;
       these give the shimmed run calls to gather (the tests' proof of diversion). */
    for (int i = 0; i < 20; i++)
        dprintf(fileno(fp), "main: direct %d\n", i);
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
