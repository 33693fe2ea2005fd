/* wrap_lock.c - flock and lockf: locks keep their meaning, what was written under a lock is in
 * the file before it goes (the rule and its helpers, shared with fcntl and close: barrier.c). */
#include "real_i.h"

#include "barrier_i.h"
#include "elide_i.h"

/* flock belongs to the open file description: an elided descriptor is made real first,
   or the lock would outlive the program's close in the shim's held description. */
BS_EXPORT int flock(int fd, int op)
{
    bs_fd_materialize_target(fd);
    bs_fd_taint(fd);
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(flock)(fd, op);
    bs_lock_done(t, r == 0 && (op & (LOCK_SH | LOCK_EX)));
    return r;
}

BS_EXPORT int lockf(int fd, int cmd, off_t len)
{
    bs_fd_materialize_target(fd);
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(lockf)(fd, cmd, len);
    bs_lock_done(t, r == 0 && (cmd == F_LOCK || cmd == F_TLOCK));
    return r;
}

BS_EXPORT int lockf64(int fd, int cmd, off64_t len)
{
    bs_fd_materialize_target(fd);
    struct bs_target *t = bs_lock_barrier(fd);
    int r = BS_REAL(lockf64)(fd, cmd, len);
    bs_lock_done(t, r == 0 && (cmd == F_LOCK || cmd == F_TLOCK));
    return r;
}
