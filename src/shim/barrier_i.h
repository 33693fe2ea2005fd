/* barrier_i.h - flushing one target before a call that reads, changes or depends on it
 * (doc/behaviour.md §4), and the lock rule (barrier.c). */
#ifndef BUFSHIM_BARRIER_I_H
#define BUFSHIM_BARRIER_I_H

#include "descriptors_i.h"

/* Errno: every function here keeps errno. */

/*
 * Each flushes the target the call names, if it names one, and returns it with a
 * reference (NULL when it names none) for bs_barrier_end. A descriptor the
 * table does not track is looked up by its file (fstat) while any target
 * lives: the program may have opened it before the file became a target. All
 * keep errno.
 */
struct bs_target *bs_barrier_fd(int fd);
/* Both descriptors' targets are flushed; the first one's is returned. */
struct bs_target *bs_barrier_fd2(int fd, int fd2);
struct bs_target *bs_barrier_path(int dirfd, const char *path, int nofollow);

/* dirfd + path + flags as the *at calls take them: a NULL or empty path with
   AT_EMPTY_PATH names dirfd itself; AT_SYMLINK_NOFOLLOW applies to the last part. */
struct bs_target *bs_barrier_at(int dirfd, const char *path, int flags);

/* Drops the reference of a bs_barrier_* result (NULL is fine); keeps errno. */
void bs_barrier_end(struct bs_target *t);

/*
 * For the hand-written barriers on one descriptor (wrap_read.c, wrap_pwrite.c, ...):
 * when the table tracks fd, flushes its target and puts a diverted description's
 * kernel offset where the program's offset is. Returns the target, without a
 * reference (the descriptor holds one), or NULL. One slot load when fd is untracked.
 */
struct bs_target *bs_barrier_tracked_slow(struct bs_ofd *o, int fd);
static inline struct bs_target *bs_barrier_tracked(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (__builtin_expect(!o, 1) || bs_in_shim)
        return NULL;
    return bs_barrier_tracked_slow(o, fd);
}

/*
 * bs_barrier_tracked for calls that change the file under every description
 * (positional writes, kernel copies into it): all of the target's descriptions get
 * their kernel offsets first (bs_barrier_sync_offsets), so that they can be
 * re-decided after.
 */
struct bs_target *bs_barrier_tracked_all(int fd);

/* Before a call that may move t's end (NULL: nothing): every description's kernel offset
   goes where the program's offset is. */
void bs_barrier_sync_offsets(struct bs_target *t);

/* After a call that changed t's size or data (offsets synced before; NULL: nothing):
   which descriptions are at the end is decided afresh. */
void bs_barrier_redecide(struct bs_target *t);

/*
 * Locks (wrap_lock.c, doc/behaviour.md §6): taking or releasing a lock on a target flushes it
 * first, so bytes written under a lock are in the file before the lock goes.
 * bs_lock_barrier before the call; bs_lock_done after it, took saying whether the
 * call (successfully) took a lock, which marks the target as locked.
 */
struct bs_target *bs_lock_barrier(int fd);
void bs_lock_done(struct bs_target *t, int took);

/* 1 when the fcntl command takes or releases a record lock or a lease; *took: it takes one. */
int bs_lock_fcntl_cmd(int cmd, unsigned long arg, int *took);

/*
 * The program is about to close fd: closing any descriptor of a file drops the
 * process's POSIX record locks on it (and the last one of a description its
 * flock), so a target the program has locked is flushed first. Keeps errno.
 */
void bs_lock_before_close(int fd);

#endif /* BUFSHIM_BARRIER_I_H */
