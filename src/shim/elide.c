/* elide.c - open elision: an append open of a live target answered without an open on the
 * drive, and turning such a descriptor into a real open when a call needs its own description. */
#include "real_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "config_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "engine_i.h"
#include "errno_i.h"
#include "private_fds_i.h"
#include "process_i.h"

/*
 * The opens that can be elided: write-only appends, creating or not, with or
 * without close-on-exec and O_NOCTTY, and O_LARGEFILE (0 in glibc's headers on
 * 64-bit, the kernel's bit when a program passes it itself). Anything else (O_TRUNC,
 * O_EXCL, O_SYNC, O_NONBLOCK, O_RDWR, O_PATH, O_TMPFILE, ...) is a real open.
 */
static int elidable_flags(int flags)
{
    int rest = flags & ~(O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | BS_KERNEL_O_LARGEFILE);
    return rest == (O_WRONLY | O_APPEND);
}

/* Whether the caller may write the file as st shows it: the permission check of a
   real open, from the mode bits and the caller's effective ids and groups. */
static int may_write(const struct stat *st)
{
    uid_t uid = (uid_t)bs_syscall(SYS_geteuid);
    if (uid == 0)
        return 1;
    if (st->st_uid == uid)
        return (st->st_mode & S_IWUSR) != 0;
    int in_group = st->st_gid == (gid_t)bs_syscall(SYS_getegid);
    if (!in_group) {
        gid_t groups[256];
        long n = bs_syscall(SYS_getgroups, 256L, groups);
        if (n < 0)
            return 0; /* the real open decides */
        for (long i = 0; i < n && !in_group; i++)
            in_group = groups[i] == st->st_gid;
    }
    return (st->st_mode & (in_group ? S_IWGRP : S_IWOTH)) != 0;
}

/*
 * A copy of t's held description (or of the O_PATH description of its file: see
 * BS_ORIGIN_PATH) at the lowest free number of the program's table, with
 * FD_CLOEXEC as flags ask, registered; or -1. The writer thread's pidfd takes the lowest
 * number first: it moves to the next one up, and the copy lands where it was. Decision:
 * the copy is placed directly rather than dup'ed onto the number, because closing a
 * surplus copy of a file costs a round trip on FUSE (FLUSH) and on some network drives.
 */
static int place_copy(struct bs_target *t, int flags)
{
    int low = bs_private_thread_pidfd();
    if (low < 0)
        return -1;
    long moved = bs_syscall(SYS_fcntl, low, F_DUPFD_CLOEXEC, (long)low + 1);
    bs_syscall(SYS_close, low);
    if (moved < 0)
        return -1;
    /* Decision: never a stand-in at 2 (low is where the copy lands). glibc's fatal
       messages (stack smashing, heap corruption, fortify), backtrace_symbols_fd and other
       crash reports write to it through calls no wrapper sees; they must meet a real
       description: there, the copy is of held itself. */
    int path_only = low != 2;
    int fd = bs_target_share_held(t, (int)moved, &path_only); /* close-on-exec, lowest number */
    bs_syscall(SYS_close, moved);
    if (fd < 0)
        return -1;
    if (!(flags & O_CLOEXEC))
        bs_syscall(SYS_fcntl, fd, F_SETFD, 0L);
    if (bs_fd_register_elided(fd, t, path_only, flags) != 0) {
        bs_syscall(SYS_close, fd); /* out of memory: the caller opens for real */
        return -1;
    }
    return fd;
}

int bs_elide_open(int dirfd, const char *path, int flags)
{
    if (__builtin_expect(!bs_target_any(), 1) || !elidable_flags(flags) || bs_in_shim || !path ||
        !bs_cfg.active || !bs_fdtab || !bs_is_owner() || atomic_load(&bs_exiting) ||
        bs_engine_is_shut_down())
        return -1;
    BS_KEEP_ERRNO();
    int fd = -1;
    bs_in_shim++;
    bs_target_tick();
    /* One stat-class call: the path must still name the target's file (a rotation by
       rename, a replacement, a deletion and re-creation all show as another inode). */
    /* Decision: AT_STATX_DONT_SYNC. The path walk revalidates every name as any stat
       does (on FUSE a LOOKUP, whose reply carries the attributes); only the second
       round trip for attributes just received is left out. */
    struct statx sx;
    struct stat st = {0};
    struct bs_target *t = NULL;
    int at = AT_STATX_DONT_SYNC | ((flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0);
    if (BS_REAL(statx)(dirfd, path, at, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO,
                       &sx) == 0) {
        st.st_mode = sx.stx_mode;
        st.st_uid = sx.stx_uid;
        st.st_gid = sx.stx_gid;
        if (S_ISREG(st.st_mode) && may_write(&st))
            t = bs_target_acquire(makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino, 0, -1,
                                  NULL, 0);
    }
    if (t && t->regular)
        fd = place_copy(t, flags);
    if (fd >= 0) {
        t = NULL; /* the description holds the reference now */
        if (bs_cfg.debug)
            bs_log("fd %d -> %s: open elided", fd, path);
    }
    bs_target_release(t);
    bs_in_shim--;
    return fd;
}

/*
 * Serialises materialising: two threads turning the same description into a real
 * one would otherwise open it twice. Taken inside bs_in_shim and the signal guard;
 * re-initialised in a fork child.
 */
static pthread_mutex_t mat_lock = PTHREAD_MUTEX_INITIALIZER;

/* "/proc/self/fd/N" into out (at least 32 bytes), without stdio: async-signal-safe. */
static void proc_fd_link(char *out, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    memcpy(out, prefix, sizeof prefix - 1);
    char digits[12];
    int n = 0;
    unsigned v = (unsigned)fd;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    char *p = out + sizeof prefix - 1;
    while (n)
        *p++ = digits[--n];
    *p = 0;
}

/* Gives every program descriptor of o (an elided description) one real description of
   its own, opened afresh; fd is one of them. Caller holds mat_lock. */
static void materialize_locked(struct bs_ofd *o, int fd)
{
    if (!(atomic_load(&o->origin) & BS_ORIGIN_ELIDED))
        return;
    /* The magic link reaches the same inode whatever happened to its name since. */
    char proc[48];
    proc_fd_link(proc, fd);
    int real = bs_sys_open(proc, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC, 0);
    if (real < 0) {
        if (bs_cfg.debug)
            bs_log("fd %d: cannot reopen it (%s); it keeps the shim's description", fd,
                   strerror(-real));
        return;
    }
    /* Where the program's offset is: the virtual one of a diverted description, else the
       shared description's own. */
    unsigned f = atomic_load(&o->flags);
    int64_t pos = (f & BS_OFD_DIVERTED) && !(f & BS_OFD_STALEPOS)
                      ? bs_ofd_position(o, fd)
                      : (int64_t)BS_REAL(lseek)(fd, 0, SEEK_CUR);
    if (pos > 0)
        BS_REAL(lseek)(real, (off_t)pos, SEEK_SET);
    int top = atomic_load(&bs_fdtab_max);
    bs_fdtab_scan_begin(); /* dup3 onto a number that was closed and reused would replace it */
    for (int other = 0; other <= top; other++) {
        if (bs_fd_slot_raw(other) != (uintptr_t)o)
            continue;
        long fdfl = bs_syscall(SYS_fcntl, other, F_GETFD, 0L);
        bs_syscall(SYS_dup3, real, other, (fdfl > 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0);
    }
    bs_fdtab_scan_end();
    bs_syscall(SYS_close, real);
    o->gen = atomic_load(&bs_fd_share_gen);
    atomic_store(&o->origin, BS_ORIGIN_OWN);
    bs_fd_recheck_one(fd);
    if (bs_cfg.debug)
        bs_log("fd %d: elided open made real", fd);
}

void bs_fd_materialize_slow(struct bs_ofd *o, int fd)
{
    if (bs_in_shim || !bs_is_owner())
        return;
    BS_KEEP_ERRNO();
    bs_in_shim++;
    bs_busy_enter();
    pthread_mutex_lock(&mat_lock);
    if (bs_fd_slot_raw(fd) == (uintptr_t)o)
        materialize_locked(o, fd);
    pthread_mutex_unlock(&mat_lock);
    bs_busy_leave();
    bs_in_shim--;
}

/* Every elided descriptor matching: of target t (NULL: any), close-on-exec ones too or not. */
static void materialize_where(struct bs_target *t, int cloexec_too)
{
    if (__builtin_expect(!bs_target_any(), 1) || bs_in_shim || !bs_fdtab || !bs_is_owner())
        return;
    BS_KEEP_ERRNO();
    bs_in_shim++;
    bs_busy_enter();
    pthread_mutex_lock(&mat_lock);
    int top = atomic_load(&bs_fdtab_max);
    bs_fdtab_scan_begin();
    for (int fd = 0; fd <= top; fd++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (!o || !(atomic_load(&o->origin) & BS_ORIGIN_ELIDED) || (t && o->t != t))
            continue;
        if (!cloexec_too) {
            long fdfl = bs_syscall(SYS_fcntl, fd, F_GETFD, 0L);
            if (fdfl > 0 && (fdfl & FD_CLOEXEC))
                continue;
        }
        materialize_locked(o, fd);
    }
    bs_fdtab_scan_end();
    pthread_mutex_unlock(&mat_lock);
    bs_busy_leave();
    bs_in_shim--;
}

void bs_fd_materialize_target(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (o)
        materialize_where(o->t, 1);
}

void bs_fd_materialize_all(int cloexec_too)
{
    materialize_where(NULL, cloexec_too);
}

ssize_t bs_path_write(int fd, const struct iovec *iov, int iovcnt)
{
    char proc[48];
    proc_fd_link(proc, fd);
    int real = bs_sys_open(proc, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC, 0);
    if (real < 0) {
        errno = -real;
        return -1;
    }
    long r = bs_syscall(SYS_writev, real, iov, (long)iovcnt);
    int e = errno;
    bs_syscall(SYS_close, real);
    errno = e;
    return r;
}

void bs_elide_fork_child(void)
{
    pthread_mutex_init(&mat_lock, NULL);
}
