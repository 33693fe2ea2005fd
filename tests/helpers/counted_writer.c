/* counted_writer.c - appends numbered records and counts, in a shared mapping, the writes that
 * have returned: what a kill -9 must not lose (test_crashsafe.py).
 *
 * counted_writer PATH COUNTER THREADS [MODE]
 *   THREADS threads (1..16) each append records "t<k> <i> <filler>\n" with write(2) to PATH
 *   (O_WRONLY|O_APPEND|O_CREAT, each thread its own descriptor), forever, a pause of 1 ms
 *   after every 50 records (bursts, at a volume a test can check). After write(2) returns, the thread stores i + 1 in slot k of
 *   COUNTER (a file of 16 longs, mapped shared): so the counter never runs ahead of what
 *   returned, and lags it by at most the one call in flight. The record's length varies
 *   with i (24 to 400 bytes) so that calls straddle chunk and page ends.
 *   Prints "ready\n" on stdout once every thread has written 1000 records.
 *   MODE:
 *     run      (default) as above
 *     fork     fork first: parent and child both write (the child's records tagged c<k>,
 *              its counters in slots 8..15); the parent prints "child <pid>\n"
 *     exec     exec itself first with MODE run (same pid, a new image)
 *     burst    as run, but records of 64 KiB to 1 MiB every 1000th call (chunk growth)
 *     hog      as run, and once ready a thread takes 1 MiB of memory every 2 ms and
 *              touches it, until something (a cgroup's OOM killer) kills the process
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *path;
static _Atomic long *counters;
static int nthreads, burst;
static char tag = 't';
static int slot_base;
static atomic_int ready;

static void *hog(void *arg)
{
    (void)arg;
    while (atomic_load(&ready) < nthreads)
        usleep(1000);
    for (;;) {
        char *p = malloc(1u << 20);
        if (p)
            memset(p, 1, 1u << 20);
        usleep(2000);
    }
    return NULL;
}

static void *run(void *arg)
{
    int k = (int)(long)arg;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    static const size_t big_max = 1u << 20;
    char *buf = malloc(big_max + 64);
    if (!buf)
        exit(1);
    for (long i = 0;; i++) {
        int n = snprintf(buf, 64, "%c%d %ld ", tag, k, i);
        size_t len = (size_t)n + 16 + (size_t)((i * 37) % 384);
        if (burst && i % 1000 == 999)
            len = (64u << 10) + (size_t)((i * 7919) % (big_max - (64u << 10)));
        memset(buf + n, 'a' + (int)(i % 26), len - (size_t)n - 1);
        buf[len - 1] = '\n';
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, buf + off, len - off);
            if (w <= 0) {
                perror("write");
                exit(1);
            }
            off += (size_t)w;
        }
        atomic_store(&counters[slot_base + k], i + 1);
        if (i == 999 && atomic_fetch_add(&ready, 1) + 1 == nthreads) {
            if (write(1, "ready\n", 6) != 6)
                exit(1);
        }
        if (i % 50 == 49)
            usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: counted_writer PATH COUNTER THREADS [MODE]\n");
        return 2;
    }
    path = argv[1];
    nthreads = atoi(argv[3]);
    const char *mode = argc > 4 ? argv[4] : "run";
    if (nthreads < 1 || nthreads > 8)
        return 2;
    if (strcmp(mode, "exec") == 0) {
        execl("/proc/self/exe", argv[0], argv[1], argv[2], argv[3], "run", (char *)NULL);
        perror("exec");
        return 1;
    }
    int cf = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (cf < 0 || ftruncate(cf, 4096) != 0)
        return 1;
    counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, cf, 0);
    if (counters == MAP_FAILED)
        return 1;
    burst = strcmp(mode, "burst") == 0;
    if (strcmp(mode, "fork") == 0) {
        pid_t p = fork();
        if (p < 0)
            return 1;
        if (p == 0) {
            tag = 'c';
            slot_base = 8;
        } else {
            printf("child %d\n", (int)p);
            fflush(stdout);
        }
    }
    pthread_t th[8], h;
    if (strcmp(mode, "hog") == 0 && pthread_create(&h, NULL, hog, NULL) != 0)
        return 1;
    for (long k = 1; k < nthreads; k++)
        if (pthread_create(&th[k], NULL, run, (void *)k) != 0)
            return 1;
    run((void *)0);
    return 0;
}
