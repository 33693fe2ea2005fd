/* burst_rss.c - memory after a burst (issue 13, item 2): a program appends one 128-byte record
 * a millisecond for 3 s, then 400,000 at once (51 MB), then one a millisecond again for 3.2 s
 * (three default intervals). It prints its resident set at the end of the steady part, at the
 * burst's end and 3.2 s after it, and their ratio. Run it under the shim with its file
 * matched (bench/results/burst-rss.md has the commands and figures).
 *
 *   burst_rss FILE */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

static int put(int fd, char c)
{
    char r[128];
    memset(r, c, sizeof r - 1);
    r[sizeof r - 1] = '\n';
    return write(fd, r, sizeof r) == (ssize_t)sizeof r ? 0 : -1;
}

static int steady(int fd, double seconds)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < (int)(seconds * 1000); i++) {
        if (put(fd, 's') < 0)
            return -1;
        nanosleep(&ms, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: burst_rss FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || steady(fd, 3.0) < 0) {
        perror(argv[1]);
        return 1;
    }
    long before = rss_kb();
    for (int i = 0; i < 400000; i++)
        if (put(fd, 'b') < 0) {
            perror("write");
            return 1;
        }
    long peak = rss_kb();
    if (steady(fd, 3.2) < 0) {
        perror("write");
        return 1;
    }
    long after = rss_kb();
    printf("steady %ld kB, at the burst's end %ld kB, 3.2 s after %ld kB, ratio %.2f\n", before,
           peak, after, (double)after / (double)before);
    return close(fd) == 0 ? 0 : 1;
}
