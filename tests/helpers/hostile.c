/* hostile.c - programs that are hard on a shim: they close every descriptor, run out of
 * descriptors or memory. Each writes records "h <i>\n" to PATH around the hostile act.
 *
 * hostile PATH MODE
 *   close_range   write 500, close_range(3, ~0U, 0), reopen PATH, write 500 more
 *   close_loop    the same with close() of 3..65535
 *   closefrom     the same with closefrom(3)
 *   nofile        open PATH, then /dev/null until EMFILE, then write 2000 records
 *                 (the shim's batch open cannot get a descriptor)
 *   nomem         write 200, then cap the address space (RLIMIT_AS) just above what is
 *                 mapped, then write records of 64 KiB for 256 MiB in all (the shim's
 *                 buffer cannot grow): records must still arrive, in order
 * Exit 0, or 1 when a call the program relies on failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int open_target(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    return fd;
}

static void records(int fd, int from, int to)
{
    char line[64];
    for (int i = from; i < to; i++) {
        int n = snprintf(line, sizeof line, "h %d\n", i);
        if (write(fd, line, (size_t)n) != n) {
            perror("write");
            exit(1);
        }
    }
}

/* Bytes of address space mapped now, from /proc/self/statm (pages). */
static unsigned long mapped_bytes(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (unsigned long)sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *path = argv[1], *mode = argv[2];
    int fd = open_target(path);

    if (!strcmp(mode, "close_range") || !strcmp(mode, "close_loop") ||
        !strcmp(mode, "closefrom")) {
        records(fd, 0, 500);
        if (!strcmp(mode, "close_range")) {
            if (syscall(SYS_close_range, 3, ~0U, 0) != 0 && close_range(3, ~0U, 0) != 0)
                return 1;
        } else if (!strcmp(mode, "close_loop")) {
            for (int i = 3; i < 65536; i++)
                close(i);
        } else {
            closefrom(3);
        }
        fd = open_target(path);
        records(fd, 500, 1000);
        return 0;
    }
    if (!strcmp(mode, "nofile")) {
        struct rlimit rl = {256, 256};
        setrlimit(RLIMIT_NOFILE, &rl);
        int n = 0;
        while (open("/dev/null", O_RDONLY) >= 0)
            n++;
        if (errno != EMFILE || n == 0)
            return 1;
        records(fd, 0, 2000);
        return 0;
    }
    if (!strcmp(mode, "nomem")) {
        records(fd, 0, 200);
        static char big[65536];
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = mapped_bytes() + (48u << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            return 1;
        for (int i = 0; i < 4096; i++) {
            int n = snprintf(big, sizeof big, "h %d ", 200 + i);
            memset(big + n, 'm', sizeof big - (size_t)n - 1);
            big[sizeof big - 1] = '\n';
            if (write(fd, big, sizeof big) != (ssize_t)sizeof big) {
                perror("write");
                return 1;
            }
        }
        return 0;
    }
    return 2;
}
