/* sync_writes.c - O_SYNC / O_DSYNC descriptors beside an ordinary appending one (doc/behaviour.md §2).
 *
 * Usage: sync_writes FLAG SYNCPATH APPENDPATH N
 * FLAG is sync (O_SYNC) or dsync (O_DSYNC). Opens SYNCPATH with O_WRONLY|O_APPEND|O_CREAT|FLAG
 * and APPENDPATH with O_WRONLY|O_APPEND|O_CREAT, then N times: write(2) "sync K\n" to the
 * first and "append K\n" to the second. Prints "writes N" and, from fcntl(F_GETFL), whether
 * the flag is still set on the descriptor ("flags kept").
 * Exit status: 0 done, 1 failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "sync") != 0 && strcmp(argv[1], "dsync") != 0)) {
        fprintf(stderr, "usage: sync_writes sync|dsync SYNCPATH APPENDPATH N\n");
        return 1;
    }
    int flag = strcmp(argv[1], "sync") == 0 ? O_SYNC : O_DSYNC;
    long n = strtol(argv[4], NULL, 10);
    int s = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | flag, 0644);
    int a = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s < 0 || a < 0) {
        perror("sync_writes: open");
        return 1;
    }
    for (long k = 0; k < n; k++) {
        char line[64];
        int len = snprintf(line, sizeof line, "sync %ld\n", k);
        if (write(s, line, (size_t)len) != len)
            return perror("sync_writes: write"), 1;
        len = snprintf(line, sizeof line, "append %ld\n", k);
        if (write(a, line, (size_t)len) != len)
            return perror("sync_writes: write"), 1;
    }
    int fl = fcntl(s, F_GETFL);
    printf("writes %ld\nflags %s\n", n, (fl & flag) == flag ? "kept" : "lost");
    return 0;
}
