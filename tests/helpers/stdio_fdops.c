/* stdio_fdops.c - what a program can ask of a stream's descriptor, reported as text.
 *
 * usage: stdio_fdops PATH OUT
 * Appends to PATH through FILE streams and writes one line per observation
 * (fileno, isatty, fstat, flock, fsync then read back, ftell, errno kept,
 * fdopen, freopen, setvbuf, ferror) to OUT. Run with and without the shim,
 * the two OUT files must be identical. Exit 0, or 1 when a call failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static FILE *out;
static int failed;

static void note(const char *what, long value)
{
    fprintf(out, "%s: %ld\n", what, value);
}

/* The bytes of path, counted through a descriptor of its own. */
static long file_size_read(const char *path)
{
    char b[65536];
    long total = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) > 0)
        total += n;
    close(fd);
    return total;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *path = argv[1];
    out = fopen(argv[2], "w");
    if (out == NULL)
        return 1;
    errno = 1234;
    FILE *fp = fopen(path, "a");
    note("errno kept by fopen", errno);
    if (fp == NULL)
        return 1;
    int fd = fileno(fp);
    note("fileno valid", fd > 2 && fcntl(fd, F_GETFD) != -1);
    note("O_APPEND on fileno", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    struct stat a, b;
    note("fstat ok", fstat(fd, &a) == 0 && stat(path, &b) == 0);
    note("fstat same inode", a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    note("isatty", isatty(fd));
    note("flock", flock(fd, LOCK_EX | LOCK_NB));
    note("flock unlock", flock(fd, LOCK_UN));
    for (int i = 0; i < 50; i++)
        fprintf(fp, "line %d\n", i);
    note("ftell with buffered data", ftell(fp));
    note("file size seen before fflush", file_size_read(path));
    note("fflush", fflush(fp));
    note("fsync", fsync(fd));
    note("file size read back after fsync", file_size_read(path));
    errno = 4321;
    fputs("more\n", fp);
    note("errno kept by fputs", errno);
    note("ftell", ftell(fp));
    note("ferror", ferror(fp));
    note("setvbuf line", setvbuf(fp, NULL, _IOLBF, 0));
    fputs("line buffered\n", fp);
    note("size after line-buffered line", file_size_read(path));

    int fd2 = open(path, O_WRONLY);
    FILE *g = fdopen(fd2, "a");
    note("fdopen keeps fd", g != NULL && fileno(g) == fd2);
    note("fdopen a sets O_APPEND", (fcntl(fd2, F_GETFL) & O_APPEND) != 0);
    fputs("via fdopen\n", g);
    note("fdopen r on O_WRONLY fails", fdopen(fd2, "r") == NULL ? errno : 0);
    note("fclose fdopen", fclose(g));
    note("fd closed by fclose", fcntl(fd2, F_GETFD) == -1 && errno == EBADF);

    FILE *h = freopen(path, "a", fp);
    note("freopen returns same FILE", h == fp);
    note("freopen keeps fd", h != NULL && fileno(h) == fd);
    fputs("after freopen\n", h);
    FILE *victim = fopen(path, "a");
    note("freopen bad mode", freopen(path, "q", victim) == NULL ? errno : 0);
    fclose(victim); /* glibc leaves a failed freopen's FILE closed but allocated */
    FILE *none = fopen(path, "z");
    note("fopen bad mode", none == NULL ? errno : 0);
    none = fopen("/nonexistent/dir/x", "a");
    note("fopen missing dir", none == NULL ? errno : 0);
    note("fclose", fclose(h));
    note("final size", file_size_read(path));
    note("stdout fileno", fileno(stdout));
    note("stderr fileno", fileno(stderr));
    note("stdout isatty", isatty(fileno(stdout)));
    fclose(out);
    return failed;
}
