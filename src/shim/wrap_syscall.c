/* wrap_syscall.c - syscall(2): the numbers that write, query, change or flush a file, as their libc
 * forms. */
#include "real_i.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>

#include "errno_i.h"
#include "barrier_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "flush_i.h"
#include "fork_i.h"
#include "process_i.h"
#include "shim_i.h"

/*
 * Runtimes reach the kernel past libc's names: libuv calls syscall(SYS_statx)
 * for fs.statSync, Go and Rust runtimes and seccomp-minded code use raw numbers.
 * Decision: the numbers whose libc form the shim wraps for exactness go to that
 * wrapper (the stat family answered virtually, write diverted, read a barrier,
 * open registered, close and dup tracked, exit flushed); the numbers that read,
 * change or depend on a file named by an argument are barriers on it; and an
 * unknown number whose first argument is a target's descriptor is a barrier too
 * (most calls that take a descriptor take it first; a needless flush costs only
 * time). Everything else goes straight to the kernel.
 */

/* Where a barrier's file is among the six arguments: a descriptor, a path, or both. */
struct arg_rule {
    long nr;
    signed char fd, fd2; /* argument index of a descriptor, or -1 */
    signed char path;    /* argument index of a path, or -1 */
    signed char dirfd;   /* argument index of the dirfd for path, or -1 (the cwd) */
    signed char flags;   /* argument index of AT_* flags, or -1 */
    signed char nofollow;
};

#define FD1(nr, i)                                                                                 \
    {                                                                                              \
        nr, i, -1, -1, -1, -1, 0                                                                   \
    }
#define FDS(nr, i, j)                                                                              \
    {                                                                                              \
        nr, i, j, -1, -1, -1, 0                                                                    \
    }
#define PATH1(nr, i, nofollow)                                                                     \
    {                                                                                              \
        nr, -1, -1, i, -1, -1, nofollow                                                            \
    }
#define AT1(nr, d, p, fl)                                                                          \
    {                                                                                              \
        nr, -1, -1, p, d, fl, 0                                                                    \
    }

static const struct arg_rule rules[] = {
    FD1(SYS_fsync, 0),
    FD1(SYS_fdatasync, 0),
    FD1(SYS_sync_file_range, 0),
    FD1(SYS_ftruncate, 0),
    FD1(SYS_fallocate, 0),
    FD1(SYS_fchmod, 0),
    FD1(SYS_fchown, 0),
    FD1(SYS_fsetxattr, 0),
    FD1(SYS_fgetxattr, 0),
    FD1(SYS_flistxattr, 0),
    FD1(SYS_fremovexattr, 0),
    FD1(SYS_flock, 0),
    FD1(SYS_fadvise64, 0),
    FD1(SYS_readahead, 0),
    FD1(SYS_fstatfs, 0),
    FD1(SYS_ioctl, 0),
    FD1(SYS_pread64, 0),
    FD1(SYS_pwrite64, 0),
    FD1(SYS_preadv, 0),
    FD1(SYS_pwritev, 0),
    FD1(SYS_preadv2, 0),
    FD1(SYS_pwritev2, 0),
    FD1(SYS_vmsplice, 0),
    FD1(SYS_mmap, 4),
    FDS(SYS_sendfile, 0, 1),
    FDS(SYS_copy_file_range, 0, 2),
    FDS(SYS_splice, 0, 2),
    FDS(SYS_tee, 0, 1),
    AT1(SYS_utimensat, 0, 1, 3),
    AT1(SYS_fchmodat, 0, 1, -1),
    AT1(SYS_fchownat, 0, 1, 4),
    AT1(SYS_futimesat, 0, 1, -1),
    AT1(SYS_unlinkat, 0, 1, -1),
    AT1(SYS_linkat, 0, 1, -1),
    AT1(SYS_renameat, 0, 1, -1),
    AT1(SYS_renameat2, 0, 1, -1),
#ifdef SYS_fchmodat2
    AT1(SYS_fchmodat2, 0, 1, 3),
#endif
    PATH1(SYS_truncate, 0, 0),
    PATH1(SYS_setxattr, 0, 0),
    PATH1(SYS_getxattr, 0, 0),
    PATH1(SYS_listxattr, 0, 0),
    PATH1(SYS_removexattr, 0, 0),
    PATH1(SYS_lsetxattr, 0, 1),
    PATH1(SYS_lgetxattr, 0, 1),
    PATH1(SYS_llistxattr, 0, 1),
    PATH1(SYS_lremovexattr, 0, 1),
    PATH1(SYS_statfs, 0, 0),
#ifdef SYS_utime
    PATH1(SYS_utime, 0, 0),
    PATH1(SYS_utimes, 0, 0),
    PATH1(SYS_chmod, 0, 0),
    PATH1(SYS_chown, 0, 0),
    PATH1(SYS_lchown, 0, 1),
    PATH1(SYS_unlink, 0, 1),
    PATH1(SYS_rename, 0, 1),
    PATH1(SYS_link, 0, 1),
#endif
};

static const struct arg_rule *rule_of(long nr)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].nr == nr)
            return &rules[i];
    return NULL;
}

/* The rename/link forms name a second file that may be a target too. */
static struct bs_target *second_barrier(long nr, const long *a)
{
    switch (nr) {
    case SYS_renameat:
    case SYS_renameat2:
        return bs_barrier_path((int)a[2], (const char *)a[3], 1);
#ifdef SYS_rename
    case SYS_rename:
        return bs_barrier_path(AT_FDCWD, (const char *)a[1], 1);
#endif
    default:
        return NULL;
    }
}

static struct bs_target *barrier_of(const struct arg_rule *r, const long *a)
{
    if (r->fd2 >= 0)
        return bs_barrier_fd2((int)a[r->fd], (int)a[r->fd2]);
    if (r->fd >= 0)
        return bs_barrier_fd((int)a[r->fd]);
    int dirfd = r->dirfd >= 0 ? (int)a[r->dirfd] : AT_FDCWD;
    int flags = r->flags >= 0 ? (int)a[r->flags] : 0;
    if (r->nofollow)
        flags |= AT_SYMLINK_NOFOLLOW;
    return bs_barrier_at(dirfd, (const char *)a[r->path], flags);
}

static long raw(long nr, const long *a)
{
    return BS_REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The numbers whose libc form the shim wraps: that wrapper answers (-1 and errno, as syscall). */
static int routed(long nr, const long *a, long *ret)
{
    switch (nr) {
    case SYS_write:
        *ret = write((int)a[0], (const void *)a[1], (size_t)a[2]);
        return 1;
    case SYS_writev:
        *ret = writev((int)a[0], (const struct iovec *)a[1], (int)a[2]);
        return 1;
    case SYS_read:
        *ret = read((int)a[0], (void *)a[1], (size_t)a[2]);
        return 1;
    case SYS_readv:
        *ret = readv((int)a[0], (const struct iovec *)a[1], (int)a[2]);
        return 1;
    case SYS_lseek:
        *ret = lseek((int)a[0], (off_t)a[1], (int)a[2]);
        return 1;
    case SYS_fstat:
        *ret = fstat((int)a[0], (struct stat *)a[1]);
        return 1;
    case SYS_newfstatat:
        *ret = fstatat((int)a[0], (const char *)a[1], (struct stat *)a[2], (int)a[3]);
        return 1;
#ifdef SYS_stat
    case SYS_stat:
        *ret = stat((const char *)a[0], (struct stat *)a[1]);
        return 1;
    case SYS_lstat:
        *ret = lstat((const char *)a[0], (struct stat *)a[1]);
        return 1;
#endif
    case SYS_statx:
        *ret =
            statx((int)a[0], (const char *)a[1], (int)a[2], (unsigned)a[3], (struct statx *)a[4]);
        return 1;
#ifdef SYS_open
    case SYS_open:
        *ret = open((const char *)a[0], (int)a[1], (mode_t)a[2]);
        return 1;
    case SYS_creat:
        *ret = creat((const char *)a[0], (mode_t)a[1]);
        return 1;
#endif
    case SYS_openat:
        *ret = openat((int)a[0], (const char *)a[1], (int)a[2], (mode_t)a[3]);
        return 1;
    case SYS_close:
        *ret = close((int)a[0]);
        return 1;
    case SYS_close_range:
        *ret = close_range((unsigned)a[0], (unsigned)a[1], (int)a[2]);
        return 1;
    case SYS_dup:
        *ret = dup((int)a[0]);
        return 1;
#ifdef SYS_dup2
    case SYS_dup2:
        *ret = dup2((int)a[0], (int)a[1]);
        return 1;
#endif
    case SYS_dup3:
        *ret = dup3((int)a[0], (int)a[1], (int)a[2]);
        return 1;
    case SYS_fcntl:
        *ret = fcntl((int)a[0], (int)a[1], (unsigned long)a[2]);
        return 1;
    case SYS_flock:
        *ret = flock((int)a[0], (int)a[1]);
        return 1;
    case SYS_ioctl:
        *ret = ioctl((int)a[0], (unsigned long)a[1], a[2]);
        return 1;
    case SYS_fchdir:
        *ret = fchdir((int)a[0]);
        return 1;
    case SYS_sendmsg:
        *ret = sendmsg((int)a[0], (const struct msghdr *)a[1], (int)a[2]);
        return 1;
    case SYS_sendmmsg:
        *ret = sendmmsg((int)a[0], (struct mmsghdr *)a[1], (unsigned)a[2], (int)a[3]);
        return 1;
    case SYS_exit_group:
        _exit((int)a[0]);
    case SYS_sync:
        sync();
        *ret = 0;
        return 1;
    case SYS_syncfs:
        *ret = syncfs((int)a[0]);
        return 1;
    default:
        return 0;
    }
}

BS_EXPORT long syscall(long nr, ...)
{
    long a[6];
    va_list ap;
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    /* futex is what runtimes call most through syscall(2): straight through. */
    if (nr == SYS_futex || bs_in_shim || !bs_shim_active())
        return raw(nr, a);
    long ret;
    if (routed(nr, a, &ret))
        return ret;
    switch (nr) {
    case SYS_execve:
    case SYS_execveat:
        bs_fd_materialize_all(0);
        bs_shim_flush_all();
        bs_target_end_lingering();
        return raw(nr, a);
#ifdef SYS_fork
    case SYS_fork:
        bs_fd_shared_out();
        bs_shim_flush_all();
        bs_target_end_lingering();
        ret = raw(nr, a);
        if (ret == 0)
            bs_owner_foreign(); /* no fork handler ran in this child */
        return ret;
    case SYS_vfork:
        bs_fd_materialize_all(1);
        bs_fd_shared_out();
        bs_shim_flush_all();
        bs_target_end_lingering();
        bs_owner_thread_doubt = BS_DOUBT_VFORK; /* the child runs on this thread */
        ret = raw(nr, a);
        if (ret != 0)
            bs_owner_thread_doubt = 0; /* the parent: the child has exec'd or exited */
        return ret;
#endif
    case SYS_clone:
    case SYS_clone3: {
        /* clone3's flags are in its struct clone_args (the first member). */
        unsigned long fl = nr == SYS_clone ? (unsigned long)a[0]
                           : a[0]          ? (unsigned long)*(const uint64_t *)a[0]
                                           : 0;
        bs_clone_prepare(fl);
        ret = raw(nr, a);
        BS_SAVE_ERRNO(bs_clone_done(fl, ret));
        return ret;
    }
    default:
        break;
    }
    const struct arg_rule *r = rule_of(nr);
    struct bs_target *t = NULL, *t2 = NULL;
    /* Reads, and a number the shim does not know, may need the descriptor's own
       description. */
    if (a[0] >= 0 && a[0] < INT32_MAX &&
        (!r || nr == SYS_pread64 || nr == SYS_preadv || nr == SYS_preadv2 || nr == SYS_readahead))
        bs_fd_materialize((int)a[0]);
    if (r) {
        t = barrier_of(r, a);
        t2 = second_barrier(nr, a);
    } else if (a[0] >= 0 && a[0] < INT32_MAX && bs_target_any() && bs_fd_slot((int)a[0])) {
        t = bs_barrier_fd((int)a[0]);
    }
    ret = raw(nr, a);
    /* The offsets and sizes may have moved under the target's descriptors. */
    if (t && ret >= 0)
        BS_SAVE_ERRNO(bs_fd_recheck(t));
    bs_barrier_end(t);
    bs_barrier_end(t2);
    return ret;
}
