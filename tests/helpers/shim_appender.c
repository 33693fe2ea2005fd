/* shim_appender.c - appends COUNT records to PATH over about SECONDS, one write(2) each.
 *
 * Usage: shim_appender PATH COUNT SECONDS [OTHER]
 * With OTHER, every record is also written to that file (a path the shim does
 * not match, whose writes must reach the kernel unchanged). Exit 0, or 1 on error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: shim_appender PATH COUNT SECONDS [OTHER]\n");
        return 1;
    }
    int fd = open_append(argv[1]);
    int other = argc > 4 ? open_append(argv[4]) : -1;
    long count = atol(argv[2]);
    double secs = atof(argv[3]);
    const long steps = 100;
    struct timespec pause = {(time_t)(secs / steps),
                             (long)((secs / steps - (long)(secs / steps)) * 1e9)};
    for (long i = 0; i < count; i++) {
        char rec[128];
        int n = snprintf(rec, sizeof rec, "record %ld of %ld\n", i, count);
        if (write(fd, rec, (size_t)n) != n || (other >= 0 && write(other, rec, (size_t)n) != n)) {
            perror("write");
            return 1;
        }
        if ((i + 1) % (count / steps > 0 ? count / steps : 1) == 0)
            nanosleep(&pause, NULL);
    }
    return close(fd) == 0 && (other < 0 || close(other) == 0) ? 0 : 1;
}
