/* wrap_pwrite.c - positional writes, pwrite*: not diverted; the target's queued bytes first,
 * then the kernel. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"

BS_EXPORT ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwrite)(fd, buf, len, off);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwrite64)(fd, buf, len, off);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwritev)(fd, iov, n, off);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwritev64)(fd, iov, n, off);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwritev2)(fd, iov, n, off, flags);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    struct bs_target *t = bs_barrier_tracked_all(fd);
    ssize_t r = BS_REAL(pwritev64v2)(fd, iov, n, off, flags);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}
