/* wrap_truncate.c - size changes: truncate, ftruncate, fallocate, posix_fallocate. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"

/*
 * Size changes and space allocation may move the end under every description: a
 * non-O_APPEND one left behind the new end stops being diverted (its next write
 * lands at its offset, as it would have).
 */
#define RESIZE_FD(call)                                                                            \
    struct bs_target *t = bs_barrier_tracked(fd);                                                  \
    bs_barrier_sync_offsets(t);                                                                    \
    int r = call;                                                                                  \
    bs_barrier_redecide(t);                                                                        \
    return r

BS_EXPORT int ftruncate(int fd, off_t len)
{
    RESIZE_FD(BS_REAL(ftruncate)(fd, len));
}

BS_EXPORT int ftruncate64(int fd, off64_t len)
{
    RESIZE_FD(BS_REAL(ftruncate64)(fd, len));
}

BS_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
    RESIZE_FD(BS_REAL(fallocate)(fd, mode, off, len));
}

BS_EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    RESIZE_FD(BS_REAL(fallocate64)(fd, mode, off, len));
}

BS_EXPORT int posix_fallocate(int fd, off_t off, off_t len)
{
    RESIZE_FD(BS_REAL(posix_fallocate)(fd, off, len));
}

BS_EXPORT int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    RESIZE_FD(BS_REAL(posix_fallocate64)(fd, off, len));
}

BS_EXPORT int truncate(const char *path, off_t len)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 0);
    bs_barrier_sync_offsets(t);
    int r = BS_REAL(truncate)(path, len);
    bs_barrier_redecide(t);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int truncate64(const char *path, off64_t len)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 0);
    bs_barrier_sync_offsets(t);
    int r = BS_REAL(truncate64)(path, len);
    bs_barrier_redecide(t);
    bs_barrier_end(t);
    return r;
}
