/* wrap_lock.c - locks keep their meaning: what was written under a lock is in the file before it
 * goes. */
#include "real_i.h"

#include <errno.h>
#include <stdatomic.h>

#include "barrier_i.h"
#include "fdtable_i.h"

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
    int saved = errno;
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (o) {
        if (atomic_load(&o->t->locked))
            bs_target_flush(o->t);
    } else {
        /* Any descriptor of the file drops the locks, also one the table does not track. */
        struct bs_target *t = bs_barrier_fd(fd);
        bs_barrier_end(t);
    }
    errno = saved;
}

BS_EXPORT int flock(int fd, int op)
{
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(flock)(fd, op);
    bs_lock_done(t, r == 0 && (op & (LOCK_SH | LOCK_EX)));
    return r;
}

BS_EXPORT int lockf(int fd, int cmd, off_t len)
{
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(lockf)(fd, cmd, len);
    bs_lock_done(t, r == 0 && (cmd == F_LOCK || cmd == F_TLOCK));
    return r;
}

BS_EXPORT int lockf64(int fd, int cmd, off64_t len)
{
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(lockf64)(fd, cmd, len);
    bs_lock_done(t, r == 0 && (cmd == F_LOCK || cmd == F_TLOCK));
    return r;
}
