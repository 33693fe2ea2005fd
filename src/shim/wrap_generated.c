/* wrap_generated.c - every BARRIER call of the call table, generated from its row: flush the
 * target the call names, then the call. They are: fsync, fdatasync, sync_file_range; utime,
 * utimes, lutimes, futimes, futimens, utimensat, futimesat; chmod, lchmod, fchmod, fchmodat;
 * chown, lchown, fchown, fchownat; the *xattr calls; posix_fadvise, readahead; fstatfs, statfs,
 * fstatvfs, statvfs; tcdrain, tcflush, tcflow, tcsendbreak, tcsetattr; send, sendto,
 * shutdown; vmsplice, tee; aio_write, aio_read, aio_fsync (calls_i.h is the list). */
#include "real_i.h"

#include <errno.h>

#include "barrier_i.h"
#include "calls_i.h"

#define BS_TARGET_FD bs_barrier_fd(fd)
#define BS_TARGET_FD2 bs_barrier_fd2(fd, fd2)
#define BS_TARGET_PATH bs_barrier_path(AT_FDCWD, path, 0)
#define BS_TARGET_LPATH bs_barrier_path(AT_FDCWD, path, 1)
#define BS_TARGET_AT bs_barrier_at(dirfd, path, BS_AT_FLAGS)
#define BS_TARGET_AIOCB bs_barrier_fd(cb->aio_fildes)


#define BS_GEN(name, takes, class, ret, params, args) BS_GEN_##class(name, takes, ret, params, args)
#define BS_GEN_BARRIER(name, takes, ret, params, args)                                             \
    BS_EXPORT ret name params                                                                      \
    {                                                                                              \
        BS_AT_FLAGS_DECL_##takes(name) struct bs_target *t_ = BS_TARGET_##takes;                   \
        ret r_ = BS_REAL(name) args;                                                               \
        bs_barrier_end(t_);                                                                        \
        return r_;                                                                                 \
    }
#define BS_GEN_WRITE(...)
#define BS_GEN_QUERY(...)
#define BS_GEN_FLUSH(...)
#define BS_GEN_LOCK(...)
#define BS_GEN_ALL(...)
#define BS_GEN_TRACK(...)
#define BS_GEN_SIGNAL(...)
#define BS_GEN_EXIT(...)
#define BS_GEN_PASS(...)

/* The AT form's flags: the call's own argument, except where the call has none. */
#define BS_AT_FLAGS_DECL_FD(name)
#define BS_AT_FLAGS_DECL_FD2(name)
#define BS_AT_FLAGS_DECL_PATH(name)
#define BS_AT_FLAGS_DECL_LPATH(name)
#define BS_AT_FLAGS_DECL_AIOCB(name)
#define BS_AT_FLAGS_DECL_AT(name) const int bs_at_flags_ = BS_AT_FLAGS_##name;
#define BS_AT_FLAGS bs_at_flags_
#define BS_AT_FLAGS_utimensat flags
#define BS_AT_FLAGS_fchmodat flags
#define BS_AT_FLAGS_fchownat flags
#define BS_AT_FLAGS_futimesat 0

BS_CALLS(BS_GEN)
