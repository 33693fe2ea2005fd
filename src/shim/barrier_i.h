/* barrier_i.h - flushing one target before a call that reads, changes or depends on it
 * (doc/behaviour.md §4). */
#ifndef BUFSHIM_BARRIER_I_H
#define BUFSHIM_BARRIER_I_H

struct bs_target;

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
