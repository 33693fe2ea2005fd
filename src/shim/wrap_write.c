/* wrap_write.c - write and writev: diverted descriptors append through the engine (SPEC §3). */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_i.h"
#include "engine_i.h"
#include "fdtable_i.h"
#include "shim_i.h"

int bs_shim_active(void)
{
    return bs_cfg.active && !bs_engine_is_shut_down();
}

/*
 * Writes straight to the kernel for a diverted descriptor (no memory, or after
 * the final flush). A diverted non-O_APPEND descriptor is at the end of the
 * file by definition, but its kernel offset was not moved by the batches.
 */
static ssize_t through(struct bs_target *t, uintptr_t s, int fd, const void *buf, size_t n)
{
    if (t->regular && !(s & BS_FD_APPEND)) {
        int saved = errno;
        BS_REAL(lseek)(fd, 0, SEEK_END);
        errno = saved;
    }
    return BS_REAL(write)(fd, buf, n);
}

/* Appends to a diverted descriptor's target; returns n as write(2) would. */
static ssize_t divert(int fd, uintptr_t s, const void *buf, size_t n)
{
    struct bs_target *t = bs_slot_target(s);
    bufshim_writer *w = t->w;
    int saved = errno;
    int r = w ? bufshim_append(w, buf, n) : -ESHUTDOWN;
    if (r == 0) {
        bs_target_accepted(t, n);
        /* The offset of an O_APPEND descriptor is now the end, like after a real write. */
        if (s & BS_FD_STALEPOS)
            bs_fdtab_cas(fd, s, s & ~(uintptr_t)BS_FD_STALEPOS);
        errno = saved;
        return (ssize_t)n;
    }
    /* Never drop: without memory, write what is queued, then this, synchronously. */
    if (r == -ENOMEM)
        bs_target_flush(t);
    errno = saved;
    return through(t, s, fd, buf, n);
}

/*
 * A writable descriptor of a target that is not diverted (moved offset): the
 * target's queued bytes go first, then the call. An O_APPEND descriptor is at
 * the end after its write, so it is diverted again.
 */
static ssize_t slow_write(int fd, uintptr_t s, const void *buf, size_t n)
{
    struct bs_target *t = bs_slot_target(s);
    if (!t || (s & BS_FD_SHIM) || bs_engine_is_shut_down())
        return BS_REAL(write)(fd, buf, n);
    bs_target_flush(t);
    ssize_t r = BS_REAL(write)(fd, buf, n);
    if (r >= 0 && (s & BS_FD_APPEND) && (s & BS_FD_WRITABLE))
        bs_fdtab_cas(fd, s, (s | BS_FD_DIVERTED) & ~(uintptr_t)BS_FD_STALEPOS);
    return r;
}

ssize_t bs_fd_write(int fd, const void *buf, size_t len)
{
    uintptr_t s = bs_fd_slot(fd);
    if (__builtin_expect(!s, 1) || bs_in_shim)
        return BS_REAL(write)(fd, buf, len);
    if ((s & BS_FD_DIVERTED) && len > 0)
        return divert(fd, s, buf, len);
    return slow_write(fd, s, buf, len);
}

BS_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    return bs_fd_write(fd, buf, len);
}

/*
 * writev: the pieces are gathered into one append so that the call's bytes stay
 * contiguous. Decision: up to 4 KiB on the stack; more is the one place the
 * append path allocates (failing that, it writes through after a flush).
 */
BS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    uintptr_t s = bs_fd_slot(fd);
    if (__builtin_expect(!s, 1) || bs_in_shim)
        return BS_REAL(writev)(fd, iov, iovcnt);
    struct bs_target *t = bs_slot_target(s);
    if (!(s & BS_FD_DIVERTED) || iovcnt <= 0 || iovcnt > IOV_MAX) {
        if (t && !(s & BS_FD_SHIM) && !bs_engine_is_shut_down()) {
            bs_target_flush(t);
            ssize_t r = BS_REAL(writev)(fd, iov, iovcnt);
            if (r >= 0 && (s & BS_FD_APPEND) && (s & BS_FD_WRITABLE))
                bs_fdtab_cas(fd, s, (s | BS_FD_DIVERTED) & ~(uintptr_t)BS_FD_STALEPOS);
            return r;
        }
        return BS_REAL(writev)(fd, iov, iovcnt);
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SSIZE_MAX - total) /* let the kernel give EINVAL */
            return BS_REAL(writev)(fd, iov, iovcnt);
        total += iov[i].iov_len;
    }
    if (total == 0)
        return BS_REAL(writev)(fd, iov, iovcnt);
    char small[4096];
    int saved = errno;
    char *buf = total <= sizeof small ? small : malloc(total);
    errno = saved;
    if (!buf) {
        bs_target_flush(t);
        if (t->regular && !(s & BS_FD_APPEND))
            BS_REAL(lseek)(fd, 0, SEEK_END);
        errno = saved;
        return BS_REAL(writev)(fd, iov, iovcnt);
    }
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len) {
            memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
    }
    ssize_t r = divert(fd, s, buf, total);
    if (buf != small) {
        int e = errno;
        free(buf);
        errno = e;
    }
    return r;
}
