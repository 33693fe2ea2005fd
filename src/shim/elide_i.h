/* elide_i.h - open elision (elide.c): append opens of a live target answered without an open
 * on the drive, and turning such descriptors into real opens when a call needs that. */
#ifndef BUFSHIM_ELIDE_I_H
#define BUFSHIM_ELIDE_I_H

#include <sys/types.h>
#include <sys/uio.h>

#include "descriptors_i.h"

/* Errno: every function here keeps errno. */

/*
 * Before a real open(dirfd, path, flags): when flags ask for a write-only append and
 * path still names a live regular target that the caller may write (one stat-class
 * call, by device and inode, and the mode bits against the caller's ids), returns a
 * descriptor to it at the number a real open would have given, with FD_CLOEXEC as
 * flags ask, sharing the target's held description: no open on the drive, and its
 * close no release. Otherwise -1: the caller opens for real.
 */
int bs_elide_open(int dirfd, const char *path, int flags);

/*
 * Before a call that needs fd to have an open file description of its own (new
 * flags, a moving seek, flock, OFD locks, leases, ioctl, reads, fchdir, passing it
 * over a socket): an elided fd, and every descriptor sharing its description, gets
 * a real open of the file in place (same number, same FD_CLOEXEC). One slot load
 * when fd is not elided.
 */
void bs_fd_materialize_slow(struct bs_ofd *o, int fd);
static inline void bs_fd_materialize(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
    if (__builtin_expect(o != NULL, 0) && (atomic_load(&o->origin) & BS_ORIGIN_ELIDED))
        bs_fd_materialize_slow(o, fd);
}

/* Before a call that would reach the kernel through fd (a write the engine does not
   take, fsync, fchmod, mmap, ...): a stand-in O_PATH descriptor becomes a real open,
   as bs_fd_materialize makes it. One slot load when fd is not one. */
static inline void bs_fd_materialize_path(int fd)
{
    if (bs_fd_is_path(fd))
        bs_fd_materialize(fd);
}

/*
 * Writes len bytes to fd, a stand-in O_PATH descriptor, where it cannot be made real
 * (inside the shim: a signal handler that interrupted it): through a description
 * opened for the call alone and closed after. Async-signal-safe. As write(2).
 */
ssize_t bs_path_write(int fd, const struct iovec *iov, int iovcnt);

/* Before taking or dropping a lock through fd: every elided descriptor of its target. */
void bs_fd_materialize_target(int fd);

/* Before exec (cloexec_too 0: what the new program inherits) or a spawn or vfork
   (cloexec_too 1: the child may dup2 any of them first): every elided descriptor. */
void bs_fd_materialize_all(int cloexec_too);

/* Fork child: the materialising lock is reset. */
void bs_elide_fork_child(void);

#endif /* BUFSHIM_ELIDE_I_H */
