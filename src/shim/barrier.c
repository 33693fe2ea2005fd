/* barrier.c - flushing the target a call names before the call (doc/behaviour.md §4), and the
 * lock rule (§6): the helpers every barrier wrapper uses. */
#include "real_i.h"

#include <errno.h>
#include <stdatomic.h>

#include "barrier_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "errno_i.h"

/*
 * bs_barrier_tracked's work: flushes the target and puts a diverted descriptor's
 * kernel offset at the end of the file, where the program believes it is.
 */
struct bs_target *bs_barrier_tracked_slow(struct bs_ofd *o, int fd)
{
    struct bs_target *t = o->t;
    BS_KEEP_ERRNO();
    /* The call reaches the kernel through fd: a stand-in O_PATH descriptor of open elision
       gets its real description first (every barrier on a descriptor passes here). */
    bs_fd_materialize_path(fd);
    bs_target_flush(t);
    unsigned f = atomic_load(&o->flags);
    if ((f & BS_OFD_DIVERTED) && !(f & BS_OFD_STALEPOS) && t->regular) {
        int64_t pos = bs_ofd_position(o, fd);
        if (pos >= 0)
            BS_REAL(lseek)(fd, (off_t)pos, SEEK_SET);
    }
    return t;
}

struct bs_target *bs_barrier_tracked_all(int fd)
{
    struct bs_target *t = bs_barrier_tracked(fd);
    bs_barrier_sync_offsets(t);
    return t;
}

void bs_barrier_sync_offsets(struct bs_target *t)
{
    if (t)
        BS_SAVE_ERRNO(bs_fd_sync_offsets(t));
}

void bs_barrier_redecide(struct bs_target *t)
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
        bs_barrier_tracked(fd);
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

/* --- locks --- */

/*
 * Decision: every lock call on a target is a barrier, taking as well as releasing
 * (doc/behaviour.md §6). Releasing is what lock-ordered writers in several processes rely
 * on: the next holder must find the bytes in the file. Taking flushes what was
 * written before the lock, so that nothing written outside the lock can land
 * after what the next holder writes under it. A program that takes and drops a
 * lock per record therefore writes per record, as it asked to.
 *
 * A close drops the process's POSIX record locks on the file, and the last close
 * of a description its flock: locked targets are flushed before any close. The
 * count of locked targets keeps that check off every other close.
 */
static atomic_int locked_targets;

struct bs_target *bs_lock_barrier(int fd)
{
    return bs_barrier_fd(fd);
}

void bs_lock_done(struct bs_target *t, int took)
{
    if (t && took && !atomic_exchange(&t->locked, 1))
        atomic_fetch_add(&locked_targets, 1);
    bs_barrier_end(t);
}

int bs_lock_fcntl_cmd(int cmd, unsigned long arg, int *took)
{
    *took = 0;
    switch (cmd) {
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_SETLK:
    case F_OFD_SETLKW: {
        const struct flock *fl = (const struct flock *)arg;
        *took = fl && fl->l_type != F_UNLCK;
        return 1;
    }
    case F_SETLEASE:
        *took = (int)arg != F_UNLCK;
        return 1;
    default:
        return 0;
    }
}

void bs_lock_before_close(int fd)
{
    if (__builtin_expect(atomic_load_explicit(&locked_targets, memory_order_relaxed) == 0, 1) ||
        bs_in_shim)
        return;
    BS_KEEP_ERRNO();
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (o) {
        if (atomic_load(&o->t->locked))
            bs_target_flush(o->t);
    } else {
        /* Any descriptor of the file drops the locks, also one the table does not track. */
        struct bs_target *t = bs_barrier_fd(fd);
        bs_barrier_end(t);
    }
}
