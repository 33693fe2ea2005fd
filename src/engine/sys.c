/* sys.c - raw system calls, the monotonic clock and the engine's stderr lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine_i.h"
#include "errno_i.h"

/*
 * The engine's own I/O goes through syscall(2), never through the libc entry
 * points: when the engine runs inside the LD_PRELOAD shim, write/open/close are
 * the shim's wrappers, and calling them from the writer would divert the
 * engine's output into itself. errno is left as it was.
 */
long (*bs_syscall)(long nr, ...) = syscall;

static long raw4(long nr, long a, long b, long c, long d)
{
    BS_KEEP_ERRNO();
    long r = bs_syscall(nr, a, b, c, d);
    return r < 0 ? -errno : r;
}

ssize_t bs_sys_write(int fd, const void *buf, size_t len)
{
    return raw4(SYS_write, fd, (long)buf, (long)len, 0);
}

int bs_sys_open(const char *path, int flags, int mode)
{
    return (int)raw4(SYS_openat, AT_FDCWD, (long)path, flags, mode);
}

int bs_sys_close(int fd)
{
    return (int)raw4(SYS_close, fd, 0, 0, 0);
}

int bs_sys_fdatasync(int fd)
{
    return (int)raw4(SYS_fdatasync, fd, 0, 0, 0);
}

uint64_t bs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bs_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void (*log_output)(const char *line, size_t len);

void bs_log_set_output(void (*out)(const char *line, size_t len))
{
    log_output = out;
}

static ssize_t sys_write_once(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    return bs_sys_write(fd, buf, len);
}

ssize_t bs_write_all_with(bs_write_once_fn write_once, void *ctx, int fd, const void *buf,
                          size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write_once(ctx, fd, (const char *)buf + off, len - off);
        if (w == -EINTR)
            continue;
        if (w <= 0)
            return off > 0 ? (ssize_t)off : (w < 0 ? w : -EIO);
        off += (size_t)w;
    }
    return (ssize_t)off;
}

ssize_t bs_sys_write_all(int fd, const void *buf, size_t len)
{
    return bs_write_all_with(sys_write_once, NULL, fd, buf, len);
}

void bs_sleep_ns(uint64_t ns)
{
    BS_KEEP_ERRNO();
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void bs_log(const char *fmt, ...)
{
    BS_KEEP_ERRNO();
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof line, "bufshim: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    line[n++] = '\n';
    if (log_output)
        log_output(line, n);
    else
        bs_sys_write_all(2, line, n);
}
