/* wrap_barrier.c - calls that must see a target's queued bytes first (doc/behaviour.md §4):
 * flush, then call. */
#include "real_i.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/sendfile.h>

#include "engine_i.h"
#include "errno_i.h"
#include "fdtable_i.h"
#include "barrier_i.h"
#include "shim_i.h"

/*
 * Flushes fd's target and puts a diverted descriptor's kernel offset at the end
 * of the file, where the program believes it is. Returns the target or NULL.
 */
static struct bs_target *barrier_fd(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (__builtin_expect(!o, 1) || bs_in_shim)
        return NULL;
    struct bs_target *t = o->t;
    BS_KEEP_ERRNO();
    bs_target_flush(t);
    unsigned f = atomic_load(&o->flags);
    if ((f & BS_OFD_DIVERTED) && !(f & BS_OFD_STALEPOS) && t->regular) {
        int64_t pos = bs_ofd_position(o, fd);
        if (pos >= 0)
            BS_REAL(lseek)(fd, (off_t)pos, SEEK_SET);
    }
    return t;
}

/*
 * For calls that change the file under every description (positional writes,
 * kernel copies into it): all of the target's descriptors get their kernel
 * offsets first, so that they can be re-decided after.
 */
static struct bs_target *barrier_fd_all(int fd)
{
    struct bs_target *t = barrier_fd(fd);
    if (t)
        BS_SAVE_ERRNO(bs_fd_sync_offsets(t));
    return t;
}

/* After a read moved fd's own offset: re-decide that description only. */
static void after_read(int fd)
{
    bs_fd_recheck_one(fd); /* keeps errno */
}

/* After a call that changed the size (offsets synced before): re-decide them all. */
static void after_move(struct bs_target *t)
{
    if (t)
        BS_SAVE_ERRNO(bs_fd_recheck(t));
}

struct bs_target *bs_barrier_path(int dirfd, const char *path, int nofollow)
{
    if (bs_in_shim || !bs_target_any())
        return NULL;
    struct bs_target *t = bs_target_by_path(dirfd, path, nofollow);
    if (t)
        BS_SAVE_ERRNO(bs_target_flush(t));
    return t;
}

struct bs_target *bs_barrier_fd(int fd)
{
    if (__builtin_expect(!bs_target_any(), 1) || bs_in_shim)
        return NULL;
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (o) {
        barrier_fd(fd);
        atomic_fetch_add(&o->t->refs, 1);
        return o->t;
    }
    struct stat st;
    BS_KEEP_ERRNO();
    struct bs_target *t = NULL;
    if (fd >= 0 && BS_REAL(fstat)(fd, &st) == 0)
        t = bs_target_acquire(st.st_dev, st.st_ino, 0, -1, NULL, 0);
    if (t)
        bs_target_flush(t);
    return t;
}

struct bs_target *bs_barrier_fd2(int fd, int fd2)
{
    bs_barrier_end(bs_barrier_fd(fd2));
    return bs_barrier_fd(fd);
}

struct bs_target *bs_barrier_at(int dirfd, const char *path, int flags)
{
    if (!path || (!path[0] && (flags & AT_EMPTY_PATH)))
        return bs_barrier_fd(dirfd);
    return bs_barrier_path(dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) != 0);
}

void bs_barrier_end(struct bs_target *t)
{
    if (t)
        BS_SAVE_ERRNO(bs_target_release(t));
}

/* --- durability --- */

BS_EXPORT void sync(void)
{
    if (!bs_in_shim)
        bs_shim_flush_all();
    BS_REAL(sync)();
}

BS_EXPORT int syncfs(int fd)
{
    if (!bs_in_shim)
        bs_shim_flush_all();
    return BS_REAL(syncfs)(fd);
}

/* --- reads --- */

ssize_t bs_fd_read(int fd, void *buf, size_t len)
{
    struct bs_target *t = barrier_fd(fd);
    ssize_t r = BS_REAL(read)(fd, buf, len);
    if (t && r > 0)
        after_read(fd);
    return r;
}

BS_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    return bs_fd_read(fd, buf, len);
}

BS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    struct bs_target *t = barrier_fd(fd);
    ssize_t r = BS_REAL(__read_chk)(fd, buf, len, buflen);
    if (t && r > 0)
        after_read(fd);
    return r;
}

BS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    struct bs_target *t = barrier_fd(fd);
    ssize_t r = BS_REAL(readv)(fd, iov, n);
    if (t && r > 0)
        after_read(fd);
    return r;
}

/* Positional reads do not move the offset; the flush is what matters. */
BS_EXPORT ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    barrier_fd(fd);
    return BS_REAL(pread)(fd, buf, len, off);
}

BS_EXPORT ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
    barrier_fd(fd);
    return BS_REAL(pread64)(fd, buf, len, off);
}

BS_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen)
{
    barrier_fd(fd);
    return BS_REAL(__pread_chk)(fd, buf, len, off, buflen);
}

BS_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t off, size_t buflen)
{
    barrier_fd(fd);
    return BS_REAL(__pread64_chk)(fd, buf, len, off, buflen);
}

BS_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    barrier_fd(fd);
    return BS_REAL(preadv)(fd, iov, n, off);
}

BS_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
    barrier_fd(fd);
    return BS_REAL(preadv64)(fd, iov, n, off);
}

/* With offset -1 the v2 calls use and move the file offset. */
BS_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    struct bs_target *t = barrier_fd(fd);
    ssize_t r = BS_REAL(preadv2)(fd, iov, n, off, flags);
    if (t && r > 0 && off == -1)
        after_read(fd);
    return r;
}

BS_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    struct bs_target *t = barrier_fd(fd);
    ssize_t r = BS_REAL(preadv64v2)(fd, iov, n, off, flags);
    if (t && r > 0 && off == -1)
        after_read(fd);
    return r;
}

/* --- positional writes: not diverted; queued bytes first, then the kernel --- */

BS_EXPORT ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwrite)(fd, buf, len, off);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwrite64)(fd, buf, len, off);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwritev)(fd, iov, n, off);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwritev64)(fd, iov, n, off);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwritev2)(fd, iov, n, off, flags);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    struct bs_target *t = barrier_fd_all(fd);
    ssize_t r = BS_REAL(pwritev64v2)(fd, iov, n, off, flags);
    if (t && r > 0)
        after_move(t);
    return r;
}

/* --- size changes --- */

static void before_resize(struct bs_target *t)
{
    if (t)
        BS_SAVE_ERRNO(bs_fd_sync_offsets(t));
}

/*
 * Size changes and space allocation may move the end under every description: a
 * non-O_APPEND one left behind the new end stops being diverted (its next write
 * lands at its offset, as it would have).
 */
#define RESIZE_FD(call)                                                                            \
    struct bs_target *t = barrier_fd(fd);                                                          \
    before_resize(t);                                                                              \
    int r = call;                                                                                  \
    after_move(t);                                                                                 \
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
    before_resize(t);
    int r = BS_REAL(truncate)(path, len);
    after_move(t);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int truncate64(const char *path, off64_t len)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 0);
    before_resize(t);
    int r = BS_REAL(truncate64)(path, len);
    after_move(t);
    bs_barrier_end(t);
    return r;
}

/* --- names: the bytes written so far belong to the file under its old name --- */

BS_EXPORT int rename(const char *from, const char *to)
{
    struct bs_target *a = bs_barrier_path(AT_FDCWD, from, 1);
    struct bs_target *b = bs_barrier_path(AT_FDCWD, to, 1);
    int r = BS_REAL(rename)(from, to);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int renameat(int fromdir, const char *from, int todir, const char *to)
{
    struct bs_target *a = bs_barrier_path(fromdir, from, 1);
    struct bs_target *b = bs_barrier_path(todir, to, 1);
    int r = BS_REAL(renameat)(fromdir, from, todir, to);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int renameat2(int fromdir, const char *from, int todir, const char *to,
                        unsigned int flags)
{
    struct bs_target *a = bs_barrier_path(fromdir, from, 1);
    struct bs_target *b = bs_barrier_path(todir, to, 1);
    int r = BS_REAL(renameat2)(fromdir, from, todir, to, flags);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int unlink(const char *path)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 1);
    int r = BS_REAL(unlink)(path);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
    struct bs_target *t = bs_barrier_path(dirfd, path, 1);
    int r = BS_REAL(unlinkat)(dirfd, path, flags);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int remove(const char *path)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 1);
    int r = BS_REAL(remove)(path);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int link(const char *from, const char *to)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, from, 1);
    int r = BS_REAL(link)(from, to);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int linkat(int fromdir, const char *from, int todir, const char *to, int flags)
{
    struct bs_target *t = bs_barrier_path(fromdir, from, !(flags & AT_SYMLINK_FOLLOW));
    int r = BS_REAL(linkat)(fromdir, from, todir, to, flags);
    bs_barrier_end(t);
    return r;
}

/* --- kernel-side copies and mappings --- */

BS_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    barrier_fd(in);
    struct bs_target *t = barrier_fd_all(out);
    ssize_t r = BS_REAL(sendfile)(out, in, off, n);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    barrier_fd(in);
    struct bs_target *t = barrier_fd_all(out);
    ssize_t r = BS_REAL(sendfile64)(out, in, off, n);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t splice(int in, off64_t *inoff, int out, off64_t *outoff, size_t n,
                         unsigned int flags)
{
    barrier_fd(in);
    struct bs_target *t = barrier_fd_all(out);
    ssize_t r = BS_REAL(splice)(in, inoff, out, outoff, n, flags);
    if (t && r > 0)
        after_move(t);
    return r;
}

BS_EXPORT ssize_t copy_file_range(int in, off64_t *inoff, int out, off64_t *outoff, size_t n,
                                  unsigned int flags)
{
    barrier_fd(in);
    struct bs_target *t = barrier_fd_all(out);
    ssize_t r = BS_REAL(copy_file_range)(in, inoff, out, outoff, n, flags);
    if (t && r > 0)
        after_move(t);
    return r;
}

/* Decision: any mapping of a target flushes it, read-only ones too (they must see the bytes). */
BS_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        barrier_fd(fd);
    return BS_REAL(mmap)(addr, len, prot, flags, fd, off);
}

BS_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        barrier_fd(fd);
    return BS_REAL(mmap64)(addr, len, prot, flags, fd, off);
}

/*
 * ioctl: the shim cannot know what a request does (FIONREAD reads the size,
 * FICLONE copies the data, a terminal request waits for output), so on a
 * target it is a barrier whatever the request. The third argument, when there
 * is one, is a single word (an int or a pointer) by the ioctl convention.
 */
BS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct bs_target *t = barrier_fd_all(fd);
    int r = BS_REAL(ioctl)(fd, req, arg);
    if (t && r >= 0)
        after_move(t);
    return r;
}
