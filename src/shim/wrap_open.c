/* wrap_open.c - how descriptors come and go: open*, creat*, dup*, fcntl, close*, closefrom. */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "errno_i.h"
#include "barrier_i.h"
#include "engine_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "config_i.h"
#include "process_i.h"
#include "shim_i.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Whether an open with these flags needs a mode argument. */
static int takes_mode(int flags)
{
    return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE;
}

/*
 * The descriptor whose fdinfo path names in this process's /proc (/proc/self,
 * /proc/thread-self or /proc/<pid>, then fdinfo/N), or -1.
 */
static int own_fdinfo_fd(const char *path)
{
    if (strncmp(path, "/proc/", 6) != 0)
        return -1;
    const char *p = path + 6;
    if (!strncmp(p, "self/", 5)) {
        p += 5;
    } else if (!strncmp(p, "thread-self/", 12)) {
        p += 12;
    } else {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p || *end != '/' || pid != (long)bs_syscall(SYS_getpid))
            return -1;
        p = end + 1;
    }
    if (strncmp(p, "fdinfo/", 7) != 0)
        return -1;
    char *end;
    long fd = strtol(p + 7, &end, 10);
    return end != p + 7 && *end == 0 && fd >= 0 && fd < INT_MAX ? (int)fd : -1;
}

/*
 * Opening a target with O_TRUNC is a barrier: its queued bytes land first (then
 * the truncation removes them, as it would have without the shim). Returns the
 * target (with a reference) so that the caller can re-decide its descriptors. Opening
 * the program's own fdinfo first makes a stand-in descriptor real.
 */
static struct bs_target *before_open(int dirfd, const char *path, int flags)
{
    if (__builtin_expect(bs_target_any(), 0) && !bs_in_shim && path && path[0] == '/' &&
        path[1] == 'p') {
        /* Reading its own fdinfo, the program sees the flags of a real open: a stand-in
           O_PATH descriptor of open elision becomes one first. */
        int fd = own_fdinfo_fd(path);
        if (fd >= 0)
            BS_SAVE_ERRNO(bs_fd_materialize_path(fd));
    }
    if (!(flags & O_TRUNC) || bs_in_shim || !bs_target_any())
        return NULL;
    struct bs_target *t = bs_target_by_path(dirfd, path, 0);
    if (t) {
        bs_target_flush(t);
        bs_fd_sync_offsets(t);
    }
    return t;
}

/* An open answered by elision (elide.c) needs nothing more than the std-stream hook. */
#define ELIDE(dirfd, path, flags)                                                                  \
    do {                                                                                           \
        int e_ = bs_elide_open(dirfd, path, flags);                                                \
        if (e_ >= 0) {                                                                             \
            bs_std_fd_changed(e_);                                                                 \
            return e_;                                                                             \
        }                                                                                          \
    } while (0)

/*
 * Non-diverted opens without the readlink of /proc/self/fd/N (issue 13, item 3).
 * Decision: the program's open is made as openat2 with RESOLVE_NO_SYMLINKS, the same
 * system call as far as the program can tell. When it succeeds the kernel resolved the
 * path without a symbolic link (nor a /proc magic link), so the descriptor's canonical
 * path is the path made absolute and folded (bs_path_absolute): "." and ".." fold as the
 * kernel resolved them, a mount point is crossed under its own name (a bind mount's
 * files are named through the bind mount by readlink too), and getcwd or the readlink of
 * a dirfd already give a canonical base. descriptors.c then needs no readlink to match
 * it, whatever is mounted where and whichever folders exist. When a link is on the way
 * (ELOOP), the real call follows it and the readlink stays. No extra system call either
 * way but for a path through a symbolic link (a failing openat2 first), or flags the
 * strict openat2 refuses (EINVAL: the real call then takes them as open does); a kernel
 * or seccomp filter without openat2 (ENOSYS, EPERM where the real call then works)
 * turns it off for the process. Not used: O_TMPFILE (readlink names the unnamed file
 * under its folder); the _2 forms with O_CREAT (glibc's check of the missing mode must
 * still abort). Unlike libc's open, this call is no thread cancellation point; and a seccomp
 * filter that kills on a system call it does not list (rather than failing it) would kill
 * on openat2, as on the kcmp and pidfd_getfd the shim already makes.
 * Not chosen: skipping the readlink for a file whose st_dev holds no configured folder nor a
 * mount below one, with /proc/self/mountinfo polled for new mounts. It needs an fstat per
 * open, filters nothing where one device holds everything (this build machine), and is not
 * exact: the shim keeps no descriptor in the program's table, so the poll would be a writer
 * thread's, after the fact; renaming a folder above a mount moves that mount below a
 * configured folder with no mount event; btrfs subvolumes show devices mountinfo does not.
 */
static atomic_int openat2_off;

/*
 * Paths whose last openat2 met a symlink: their next opens go to the real call at once
 * (one system call, not two), but for one in 64, which tries openat2 again (the link may
 * be gone). Both ways are exact: a hash collision costs time only. The hash: the length
 * and the last 32 characters (FNV-1a), enough to tell apart the paths of one program.
 */
#define LINKED_SLOTS 256
static _Atomic uint64_t linked[LINKED_SLOTS];
static atomic_uint linked_hits;

static uint64_t path_hash(const char *path)
{
    size_t n = strlen(path);
    uint64_t h = 14695981039346656037ull ^ n;
    for (const char *c = path + (n > 32 ? n - 32 : 0); *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return h | 1; /* never 0, an empty slot */
}

static int seen_linked(uint64_t h)
{
    if (atomic_load_explicit(&linked[h % LINKED_SLOTS], memory_order_relaxed) != h)
        return 0;
    return (atomic_fetch_add_explicit(&linked_hits, 1, memory_order_relaxed) & 63) != 63;
}

/* How open_plain went. */
enum { PLAIN_NOT_TRIED, PLAIN_MADE, PLAIN_LINK, PLAIN_REFUSED };

/* PLAIN_MADE: *fd (and errno) are the open's, *plain 1 when openat2 opened it. Otherwise
   the real call must make it, with errno as the program left it. */
static int open_plain(int dirfd, const char *path, int flags, mode_t mode, int *fd, int *plain)
{
    *plain = 0;
    if (atomic_load_explicit(&openat2_off, memory_order_relaxed) || bs_in_shim || !path ||
        !bs_cfg.active || !bs_cfg.nglobs || !bs_fdtab || (flags & __O_TMPFILE) == __O_TMPFILE ||
        !bs_is_owner())
        return PLAIN_NOT_TRIED;
    uint64_t h = path_hash(path);
    if (seen_linked(h))
        return PLAIN_LINK;
    struct open_how how = {.flags = (unsigned)flags,
                           .mode = takes_mode(flags) ? (mode & 07777) : 0,
                           .resolve = RESOLVE_NO_SYMLINKS};
    if (how.flags & O_PATH) /* what open keeps of O_PATH's company */
        how.flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int saved = errno;
    long r = bs_syscall(SYS_openat2, (long)dirfd, (long)path, (long)&how, (long)sizeof how);
    if (r >= 0) {
        errno = saved;
        *fd = (int)r;
        *plain = 1;
        return PLAIN_MADE;
    }
    int e = errno;
    errno = saved;
    if (e == ELOOP) {
        atomic_store_explicit(&linked[h % LINKED_SLOTS], h, memory_order_relaxed);
        return PLAIN_LINK;
    }
    if (e == ENOSYS) {
        atomic_store(&openat2_off, 1);
        return PLAIN_NOT_TRIED;
    }
    if (e == EINVAL || e == EPERM || e == E2BIG || e == EXDEV || e == EAGAIN)
        return PLAIN_REFUSED;
    errno = e; /* the walk the real call would have made, and its error */
    *fd = -1;
    return PLAIN_MADE;
}

/* The real call made the open openat2 refused: a kernel or filter that refuses openat2
   alone turns it off. */
static void after_refusal(int how, int fd)
{
    if (how == PLAIN_REFUSED && fd >= 0)
        atomic_store(&openat2_off, 1);
}

/* An open by open_plain or else the real call, between before_open and after_open. */
#define OPEN_UNELIDED(dirfd, path, flags, mode, real)                                              \
    do {                                                                                           \
        struct bs_target *t = before_open(dirfd, path, flags);                                     \
        int fd, plain;                                                                             \
        int how_ = open_plain(dirfd, path, flags, mode, &fd, &plain);                              \
        if (how_ != PLAIN_MADE) {                                                                  \
            fd = real;                                                                             \
            after_refusal(how_, fd);                                                               \
        }                                                                                          \
        after_open(t, fd, dirfd, path, plain);                                                     \
        return fd;                                                                                 \
    } while (0)

#define OPEN_CALL(dirfd, path, flags, mode, real)                                                  \
    do {                                                                                           \
        ELIDE(dirfd, path, flags);                                                                 \
        OPEN_UNELIDED(dirfd, path, flags, mode, real);                                             \
    } while (0)

/* The _2 forms: with O_CREAT or O_TMPFILE the real call, for glibc's abort (no mode). */
#define OPEN_2_CALL(dirfd, path, flags, real)                                                      \
    do {                                                                                           \
        if (takes_mode(flags)) {                                                                   \
            struct bs_target *t = before_open(dirfd, path, flags);                                 \
            int fd = real;                                                                         \
            after_open(t, fd, dirfd, path, 0);                                                     \
            return fd;                                                                             \
        }                                                                                          \
        OPEN_CALL(dirfd, path, flags, 0, real);                                                    \
    } while (0)

static void after_open(struct bs_target *t, int fd, int dirfd, const char *path, int plain)
{
    BS_KEEP_ERRNO();
    if (t) {
        bs_fd_recheck(t);
        bs_target_release(t);
    }
    if (fd >= 0 && !bs_in_shim)
        bs_fd_register_open(fd, dirfd, path, plain);
    bs_std_fd_changed(fd);
}

int bs_call_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    OPEN_CALL(dirfd, path, flags, mode, BS_REAL(openat)(dirfd, path, flags, mode));
}

#define MODE_ARG(flags, last)                                                                      \
    mode_t mode = 0;                                                                               \
    if (takes_mode(flags)) {                                                                       \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = (mode_t)va_arg(ap, int);                                                            \
        va_end(ap);                                                                                \
    }

BS_EXPORT int open(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    OPEN_CALL(AT_FDCWD, path, flags, mode, BS_REAL(open)(path, flags, mode));
}

BS_EXPORT int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    OPEN_CALL(AT_FDCWD, path, flags, mode, BS_REAL(open64)(path, flags, mode));
}

BS_EXPORT int __open_2(const char *path, int flags)
{
    OPEN_2_CALL(AT_FDCWD, path, flags, BS_REAL(__open_2)(path, flags));
}

BS_EXPORT int __open64_2(const char *path, int flags)
{
    OPEN_2_CALL(AT_FDCWD, path, flags, BS_REAL(__open64_2)(path, flags));
}

BS_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    OPEN_CALL(dirfd, path, flags, mode, BS_REAL(openat)(dirfd, path, flags, mode));
}

BS_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    OPEN_CALL(dirfd, path, flags, mode, BS_REAL(openat64)(dirfd, path, flags, mode));
}

BS_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    OPEN_2_CALL(dirfd, path, flags, BS_REAL(__openat_2)(dirfd, path, flags));
}

BS_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    OPEN_2_CALL(dirfd, path, flags, BS_REAL(__openat64_2)(dirfd, path, flags));
}

BS_EXPORT int creat(const char *path, mode_t mode)
{
    OPEN_UNELIDED(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, BS_REAL(creat)(path, mode));
}

BS_EXPORT int creat64(const char *path, mode_t mode)
{
    OPEN_UNELIDED(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, BS_REAL(creat64)(path, mode));
}

/* Opening by handle names no path: the descriptor is looked at as an inherited one. */
BS_EXPORT int open_by_handle_at(int mountfd, struct file_handle *handle, int flags)
{
    int fd = BS_REAL(open_by_handle_at)(mountfd, handle, flags);
    if (fd >= 0 && !bs_in_shim)
        BS_SAVE_ERRNO(bs_fd_register_existing(fd), bs_std_fd_changed(fd));
    return fd;
}

/* A copy landed at 2: a stand-in O_PATH descriptor there becomes real (see place_copy in
   elide.c: glibc's fatal messages write to 2 through calls no wrapper sees). */
static void no_stand_in_at_2(int fd)
{
    if (fd == 2)
        BS_SAVE_ERRNO(bs_fd_materialize_path(2));
}

BS_EXPORT int dup(int fd)
{
    int r = BS_REAL(dup)(fd);
    if (r >= 0 && !bs_in_shim) {
        BS_SAVE_ERRNO(bs_fd_copy(fd, r), bs_std_fd_changed(r));
        no_stand_in_at_2(r);
    }
    return r;
}

/* dup2/dup3: newfd, if open, is closed by the call. */
static int dup_onto(int oldfd, int newfd, int flags, int three)
{
    uintptr_t held = 0;
    if (!bs_in_shim && oldfd != newfd) {
        bs_lock_before_close(newfd);
        if (bs_fd_slot_raw(newfd) && bs_is_owner())
            BS_SAVE_ERRNO(bs_fd_prepare_close(newfd), held = bs_fd_detach(newfd));
    }
    int r = three ? BS_REAL(dup3)(oldfd, newfd, flags) : BS_REAL(dup2)(oldfd, newfd);
    int saved = errno;
    bs_fd_reattach(newfd, held, r < 0);
    if (r >= 0 && oldfd != newfd && !bs_in_shim) {
        bs_fd_copy(oldfd, newfd);
        no_stand_in_at_2(newfd);
    }
    if (r >= 0)
        bs_std_fd_changed(newfd); /* a std stream over it may pick new buffering */
    errno = saved;
    return r;
}

BS_EXPORT int dup2(int oldfd, int newfd)
{
    return dup_onto(oldfd, newfd, 0, 0);
}

BS_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    return dup_onto(oldfd, newfd, flags, 1);
}

/*
 * fcntl: F_DUPFD* copies the mapping; F_SETFL may add or remove O_APPEND, so the
 * target is flushed first and the descriptor re-decided after. The argument is
 * read as an unsigned long, wide enough for both the int and pointer commands.
 */
/* The fcntl commands that neither need nor change anything of the open file description
   beyond what a shared one gives (descriptor flags, queries, copies). */
static int description_neutral(int cmd)
{
    switch (cmd) {
    case F_GETFD:
    case F_SETFD:
    case F_GETFL:
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
    case F_GETLK:
    case F_OFD_GETLK:
    case F_GETOWN:
    case F_GETOWN_EX:
    case F_GETSIG:
    case F_GETLEASE:
    case F_GETPIPE_SZ:
    case F_GET_SEALS:
        return 1;
    default:
        return 0;
    }
}

/* What a stand-in O_PATH descriptor (BS_ORIGIN_PATH) answers itself: an O_PATH
   description refuses every other command (EBADF) that a real one would serve. */
static int path_neutral(int cmd)
{
    return cmd == F_GETFD || cmd == F_SETFD || cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ||
           cmd == F_GETFL;
}

static int do_fcntl(int fcntl64_, int fd, int cmd, unsigned long arg)
{
    int took;
    if (!bs_in_shim && bs_fd_is_path(fd)) {
        if (cmd == F_GETFL)
            return bs_fd_status_flags(fd);
        if (!path_neutral(cmd))
            bs_fd_materialize(fd);
    }
    if (!bs_in_shim && !description_neutral(cmd) && bs_fd_slot_raw(fd)) {
        /* A lock makes every elided descriptor of the file real (a locked target elides
           no more opens); anything else of the description's, this one. */
        if (cmd == F_SETLK || cmd == F_SETLKW || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW ||
            cmd == F_SETLEASE)
            bs_fd_materialize_target(fd);
        else
            bs_fd_materialize(fd);
        if (cmd != F_SETLK && cmd != F_SETLKW)
            bs_fd_taint(fd);
    }
    if (bs_lock_fcntl_cmd(cmd, arg, &took)) {
        struct bs_target *lt = bs_lock_barrier(fd);
        int r = fcntl64_ ? BS_REAL(fcntl64)(fd, cmd, arg) : BS_REAL(fcntl)(fd, cmd, arg);
        bs_lock_done(lt, r >= 0 && took);
        return r;
    }
    struct bs_ofd *o = bs_in_shim ? NULL : bs_slot_ofd(bs_fd_slot(fd));
    struct bs_target *t = o ? o->t : NULL;
    if (t && cmd == F_SETFL) {
        bs_target_flush(t);
        bs_fd_sync_offsets(t);
    }
    int r = fcntl64_ ? BS_REAL(fcntl64)(fd, cmd, arg) : BS_REAL(fcntl)(fd, cmd, arg);
    int saved = errno;
    if (r >= 0 && !bs_in_shim && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
        bs_fd_copy(fd, r);
        no_stand_in_at_2(r);
        bs_std_fd_changed(r);
    }
    if (r >= 0 && t && cmd == F_SETFL)
        bs_fd_recheck(t);
    errno = saved;
    return r;
}

BS_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(0, fd, cmd, arg);
}

BS_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(1, fd, cmd, arg);
}

/* fchdir: a directory is never a target, but an elided descriptor is made real first, so
   that the call meets the description a real open would have made. */
BS_EXPORT int fchdir(int fd)
{
    bs_fd_materialize(fd);
    return BS_REAL(fchdir)(fd);
}

int bs_call_close(int fd)
{
    bs_lock_before_close(fd);
    if (!bs_in_shim && bs_fd_slot_raw(fd))
        BS_SAVE_ERRNO(bs_fd_forget(fd));
    return BS_REAL(close)(fd);
}

BS_EXPORT int close(int fd)
{
    return bs_call_close(fd);
}

static int raw_close_range(unsigned lo, unsigned hi, int flags)
{
    if (&BS_REAL(close_range)) /* glibc >= 2.34 */
        return BS_REAL(close_range)(lo, hi, flags);
    long r = bs_syscall(SYS_close_range, lo, hi, flags);
    return (int)r;
}

/* close_range / closefrom: the table forgets what they close (CLOEXEC marks close nothing now). */
static int close_range_tracked(unsigned lo, unsigned hi, int flags)
{
    if (!bs_in_shim && bs_fdtab && !(flags & CLOSE_RANGE_CLOEXEC) && lo <= hi && bs_is_owner()) {
        BS_KEEP_ERRNO();
        int top = atomic_load(&bs_fdtab_max);
        for (unsigned fd = lo; top >= 0 && fd <= hi && fd <= (unsigned)top; fd++) {
            bs_lock_before_close((int)fd);
            bs_fd_forget((int)fd);
        }
    }
    return raw_close_range(lo, hi, flags);
}

BS_EXPORT int close_range(unsigned int lo, unsigned int hi, int flags)
{
    return close_range_tracked(lo, hi, flags);
}

BS_EXPORT void closefrom(int lowfd)
{
    if (lowfd < 0)
        lowfd = 0;
    close_range_tracked((unsigned)lowfd, ~0U, 0);
}
