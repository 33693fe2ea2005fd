/* wrap_read.c - reads: read, readv, pread*, preadv* (doc/behaviour.md §4). A read of a target
 * flushes it first; a read that moves the offset re-decides its description. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "shim_i.h"

ssize_t bs_call_read(int fd, void *buf, size_t len)
{
    bs_fd_materialize(fd);
    struct bs_target *t = bs_barrier_tracked(fd);
    ssize_t r = BS_REAL(read)(fd, buf, len);
    if (t && r > 0)
        bs_fd_recheck_one(fd); /* keeps errno */
    return r;
}

BS_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    return bs_call_read(fd, buf, len);
}

BS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    bs_fd_materialize(fd);
    struct bs_target *t = bs_barrier_tracked(fd);
    ssize_t r = BS_REAL(__read_chk)(fd, buf, len, buflen);
    if (t && r > 0)
        bs_fd_recheck_one(fd); /* keeps errno */
    return r;
}

BS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    bs_fd_materialize(fd);
    struct bs_target *t = bs_barrier_tracked(fd);
    ssize_t r = BS_REAL(readv)(fd, iov, n);
    if (t && r > 0)
        bs_fd_recheck_one(fd); /* keeps errno */
    return r;
}

/* Positional reads do not move the offset; the flush is what matters. */
BS_EXPORT ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(pread)(fd, buf, len, off);
}

BS_EXPORT ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(pread64)(fd, buf, len, off);
}

BS_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(__pread_chk)(fd, buf, len, off, buflen);
}

BS_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t off, size_t buflen)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(__pread64_chk)(fd, buf, len, off, buflen);
}

BS_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(preadv)(fd, iov, n, off);
}

BS_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
    bs_fd_materialize(fd);
    bs_barrier_tracked(fd);
    return BS_REAL(preadv64)(fd, iov, n, off);
}

/* With offset -1 the v2 calls use and move the file offset. */
BS_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    bs_fd_materialize(fd);
    struct bs_target *t = bs_barrier_tracked(fd);
    ssize_t r = BS_REAL(preadv2)(fd, iov, n, off, flags);
    if (t && r > 0 && off == -1)
        bs_fd_recheck_one(fd); /* keeps errno */
    return r;
}

BS_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    bs_fd_materialize(fd);
    struct bs_target *t = bs_barrier_tracked(fd);
    ssize_t r = BS_REAL(preadv64v2)(fd, iov, n, off, flags);
    if (t && r > 0 && off == -1)
        bs_fd_recheck_one(fd); /* keeps errno */
    return r;
}
