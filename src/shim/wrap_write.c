/* wrap_write.c - write and writev: diverted descriptors append through the engine
 * (doc/behaviour.md §2). */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "errno_i.h"
#include "config_i.h"
#include "engine_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "process_i.h"
#include "shim_i.h"
#include "signals_i.h"
#include "target_i.h"

/*
 * Writes straight to the kernel for a diverted description (no memory, or
 * after the final flush): its kernel offset first goes where the program's is,
 * since the batches did not move it.
 */
static void seek_to_position(struct bs_ofd *o, int fd)
{
    if (o->t->regular && !(atomic_load(&o->flags) & BS_OFD_APPEND)) {
        BS_KEEP_ERRNO();
        int64_t pos = bs_ofd_position(o, fd);
        if (pos >= 0)
            BS_REAL(lseek)(fd, (off_t)pos, SEEK_SET);
    }
}

static ssize_t through(struct bs_ofd *o, int fd, const void *buf, size_t n)
{
    bs_fd_materialize_path(fd);
    seek_to_position(o, fd);
    return BS_REAL(write)(fd, buf, n);
}

/* A write that goes to the kernel while the shim is running on this thread (a signal
 * handler that interrupted it): a stand-in O_PATH descriptor cannot be made real here,
 * so the bytes go through a description of their own. */
static ssize_t in_shim_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (bs_fd_is_path(fd))
        return bs_path_write(fd, iov, iovcnt);
    return BS_REAL(writev)(fd, iov, iovcnt);
}

static ssize_t in_shim_write(int fd, const void *buf, size_t len)
{
    if (bs_fd_is_path(fd)) {
        struct iovec one = {(void *)buf, len};
        return bs_path_write(fd, &one, 1);
    }
    return BS_REAL(write)(fd, buf, len);
}

/* Before a write that goes to the kernel through fd: a stand-in O_PATH descriptor becomes a
 * real open, and o's flags are what it decided then (f unchanged otherwise). */
static unsigned made_real(int fd, struct bs_ofd *o, unsigned f)
{
    if (!bs_fd_is_path(fd))
        return f;
    bs_fd_materialize(fd);
    return atomic_load(&o->flags);
}

/* Appends to a diverted description's target; returns n as write(2) would. */
static ssize_t divert(int fd, struct bs_ofd *o, unsigned f, const void *buf, size_t n)
{
    struct bs_target *t = o->t;
    bufshim_writer *w = t->w;
    if (__builtin_expect(atomic_load_explicit(&bs_exiting, memory_order_relaxed), 0) &&
        bs_target_exit_through(t))
        return through(o, fd, buf, n);
    int saved = errno;
    /* Before the first byte is buffered: from then on a fatal signal flushes. */
    if (__builtin_expect(!atomic_load_explicit(&bs_signals_armed, memory_order_relaxed), 0))
        bs_signals_arm();
    /*
     * The guard makes a write from a signal handler that interrupted this very
     * append (the engine's lock is held) pass straight through instead of
     * deadlocking. Known limit: a handler that interrupts the program's own
     * malloc and then writes to a diverted descriptor appends, and an append
     * may allocate; write(2) itself is async-signal-safe, a diverted one only
     * as far as the allocator is.
     */
    bs_in_shim++;
    int r = w ? bufshim_append(w, buf, n) : -ESHUTDOWN;
    bs_in_shim--;
    if (r == 0) {
        /* The description's offset is now the end, as after a real write. */
        atomic_store(&o->mark, bs_target_accepted(t, n));
        if (f & BS_OFD_STALEPOS)
            atomic_fetch_and(&o->flags, ~BS_OFD_STALEPOS);
        errno = saved;
        return (ssize_t)n;
    }
    /* Never drop: without memory, write what is queued, then this, synchronously. */
    if (r == -ENOMEM)
        bs_target_flush(t);
    errno = saved;
    return through(o, fd, buf, n);
}

/*
 * Whether a write on o goes to the engine. A non-O_APPEND description is
 * diverted only while nothing was appended behind its offset; otherwise it
 * turns into a pass-through one that overwrites there, as the kernel would.
 */
static int diverts(int fd, struct bs_ofd *o, unsigned f)
{
    if (!(f & BS_OFD_DIVERTED) || atomic_load_explicit(&o->t->broken, memory_order_relaxed))
        return 0;
    if (!(f & BS_OFD_APPEND) && atomic_load(&o->t->acc) != atomic_load(&o->mark)) {
        bs_ofd_lost_end(o, fd);
        return 0;
    }
    return 1;
}

/*
 * A writable description of a target that is not diverted (its offset is not
 * at the end): the target's queued bytes go first and every description's
 * kernel offset is put right, then the call; after it, which descriptions are
 * at the end is decided afresh (an O_APPEND one is, and is diverted again).
 */
static void before_pass(struct bs_ofd *o)
{
    BS_SAVE_ERRNO(bs_target_flush(o->t), bs_fd_sync_offsets(o->t));
}

static void after_pass(struct bs_ofd *o, ssize_t r)
{
    if (r >= 0)
        BS_SAVE_ERRNO(bs_fd_recheck(o->t));
}

ssize_t bs_call_write(int fd, const void *buf, size_t len)
{
    uintptr_t s = bs_fd_slot(fd);
    struct bs_ofd *o = bs_slot_ofd(s);
    if (__builtin_expect(!o, 1))
        return BS_REAL(write)(fd, buf, len);
    if (bs_in_shim)
        return in_shim_write(fd, buf, len);
    unsigned f = atomic_load_explicit(&o->flags, memory_order_relaxed);
    if (len > 0 && diverts(fd, o, f))
        return divert(fd, o, f, buf, len);
    f = made_real(fd, o, f);
    if (!(f & BS_OFD_WRITABLE) || bs_engine_is_shut_down())
        return BS_REAL(write)(fd, buf, len);
    before_pass(o);
    ssize_t r = BS_REAL(write)(fd, buf, len);
    after_pass(o, r);
    return r;
}

size_t bs_call_write_all(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = bs_call_write(fd, (const char *)buf + done, len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

BS_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    return bs_call_write(fd, buf, len);
}

/*
 * writev: the pieces are gathered into one append so that the call's bytes stay
 * contiguous. Decision: up to 4 KiB on the stack; more is the one place the
 * append path allocates (failing that, it writes through after a flush).
 */
BS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    uintptr_t s = bs_fd_slot(fd);
    struct bs_ofd *o = bs_slot_ofd(s);
    if (__builtin_expect(!o, 1))
        return BS_REAL(writev)(fd, iov, iovcnt);
    if (bs_in_shim)
        return in_shim_writev(fd, iov, iovcnt);
    unsigned f = atomic_load_explicit(&o->flags, memory_order_relaxed);
    size_t total = 0;
    int valid = iovcnt > 0 && iovcnt <= IOV_MAX;
    for (int i = 0; valid && i < iovcnt; i++) {
        if (iov[i].iov_len > SSIZE_MAX - total)
            valid = 0; /* let the kernel give EINVAL */
        else
            total += iov[i].iov_len;
    }
    if (!valid || total == 0 || !diverts(fd, o, f)) {
        f = made_real(fd, o, f);
        if (!(f & BS_OFD_WRITABLE) || bs_engine_is_shut_down())
            return BS_REAL(writev)(fd, iov, iovcnt);
        before_pass(o);
        ssize_t r = BS_REAL(writev)(fd, iov, iovcnt);
        after_pass(o, r);
        return r;
    }
    char small[4096];
    int saved = errno;
    char *buf = total <= sizeof small ? small : malloc(total);
    if (!buf) {
        bs_target_flush(o->t);
        bs_fd_materialize_path(fd);
        errno = saved;
        seek_to_position(o, fd);
        return BS_REAL(writev)(fd, iov, iovcnt);
    }
    errno = saved;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len) {
            memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
    }
    ssize_t r = divert(fd, o, f, buf, total);
    if (buf != small) {
        int e = errno;
        free(buf);
        errno = e;
    }
    return r;
}
