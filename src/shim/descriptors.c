/* descriptors.c - the program's descriptors as the shim knows them: registering, first looks,
 * copies and closes; whether each description is diverted, and its virtual offset. */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config_i.h"
#include "engine_i.h"
#include "errno_i.h"
#include "descriptors_i.h"
#include "process_i.h"

/*
 * Descriptions are recycled, never freed: a thread that loaded a slot just
 * before another thread closed the descriptor still reads valid memory.
 */
static pthread_mutex_t ofd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_ofd *ofd_free;

static struct bs_ofd *ofd_new(struct bs_target *t)
{
    bs_busy_enter(); /* see bs_target_acquire: no flush from a handler while locked */
    pthread_mutex_lock(&ofd_lock);
    struct bs_ofd *o = ofd_free;
    if (o)
        ofd_free = o->next_free;
    pthread_mutex_unlock(&ofd_lock);
    bs_busy_leave();
    if (!o && !(o = malloc(sizeof *o)))
        return NULL;
    *o = (struct bs_ofd){.t = t, .refs = 1};
    return o;
}

/* Drops one descriptor's hold on o; the last one releases the target. */
static void ofd_put(struct bs_ofd *o)
{
    if (!o || atomic_fetch_sub(&o->refs, 1) != 1)
        return;
    struct bs_target *t = o->t;
    bs_busy_enter();
    pthread_mutex_lock(&ofd_lock);
    o->next_free = ofd_free;
    ofd_free = o;
    pthread_mutex_unlock(&ofd_lock);
    bs_busy_leave();
    bs_target_release(t);
}

/* Sets fd's slot to slot and lets go of the description it named. */
static void drop_slot(int fd, uintptr_t slot)
{
    uintptr_t old = bs_fdtab_swap(fd, slot);
    if (old) {
        bs_fdtab_wait_scans();
        ofd_put(bs_slot_ofd(old));
    }
}

uintptr_t bs_fd_detach(int fd)
{
    if (!bs_fd_slot_raw(fd))
        return 0;
    uintptr_t old = bs_fdtab_swap(fd, 0);
    if (old)
        bs_fdtab_wait_scans();
    return old;
}

void bs_fd_reattach(int fd, uintptr_t held, int keep)
{
    if (!held)
        return;
    if (keep)
        drop_slot(fd, held);
    else
        ofd_put(bs_slot_ofd(held));
}

int64_t bs_ofd_position(struct bs_ofd *o, int fd)
{
    int64_t vs = bs_target_vsize_fd(o->t, fd);
    if (vs < 0)
        return -1;
    uint64_t acc = atomic_load(&o->t->acc), mark = atomic_load(&o->mark);
    int64_t behind = acc > mark ? (int64_t)(acc - mark) : 0;
    return vs > behind ? vs - behind : 0;
}

/*
 * Sets o's flags from the kernel's view of fd: a regular file's description is
 * an appending stream when its offset is at the (virtual) end: always for
 * O_APPEND (STALEPOS while the offset is elsewhere, until its first write), and
 * for other descriptions while they stay there. Pipes and terminals append.
 */
static void decide_with(struct bs_ofd *o, int fd, int fl)
{
    struct bs_target *t = o->t;
    unsigned f = 0;
    if (fl >= 0 && !(fl & O_PATH) && (fl & O_ACCMODE) != O_RDONLY) {
        f = BS_OFD_WRITABLE;
        if (fl & (O_DSYNC | O_DIRECT)) {
            /* O_SYNC/O_DSYNC (O_SYNC includes O_DSYNC's bit): the program asked for
               each write to be durable when it returns, and gets that (doc/behaviour.md §2).
               O_DIRECT: writes carry alignment rules of their own. Both pass
               through, after the target's queued bytes (WRITABLE). */
        } else if (!t->regular) {
            f |= BS_OFD_DIVERTED | BS_OFD_APPEND;
        } else {
            off_t off = BS_REAL(lseek)(fd, 0, SEEK_CUR);
            int64_t vs = bs_target_vsize_fd(t, fd);
            if (off >= 0 && vs >= 0) {
                if (fl & O_APPEND)
                    f |= BS_OFD_DIVERTED | BS_OFD_APPEND | (off != vs ? BS_OFD_STALEPOS : 0);
                else if (off == vs)
                    f |= BS_OFD_DIVERTED;
            }
        }
    }
    atomic_store(&o->mark, atomic_load(&t->acc));
    atomic_store(&o->flags, f);
}

static void decide(struct bs_ofd *o, int fd)
{
    /* A stand-in O_PATH descriptor has no offset of its own to decide from: it stays the
       diverted append stream it was registered as, until made real. */
    if (atomic_load(&o->origin) & BS_ORIGIN_PATH)
        return;
    decide_with(o, fd, BS_REAL(fcntl)(fd, F_GETFL));
}

int bs_fd_status_flags(int fd)
{
    if (bs_fd_is_path(fd)) /* as open(2) leaves them */
        return O_WRONLY | O_APPEND | BS_KERNEL_O_LARGEFILE |
               ((atomic_load(&bs_slot_ofd(bs_fd_slot_raw(fd))->flags) & BS_OFD_NOFOLLOW)
                    ? O_NOFOLLOW : 0);
    return BS_REAL(fcntl)(fd, F_GETFL);
}

static int word_fd(int fd)
{
    return (fd == 1 && bs_cfg.word_stdout) || (fd == 2 && bs_cfg.word_stderr);
}

/* The description fd shares with another registered descriptor, if any. */
static struct bs_ofd *shared_description(int fd, struct bs_target *t)
{
    static int kcmp_works = 1;
    pid_t pid = (pid_t)bs_syscall(SYS_getpid);
    int top = atomic_load(&bs_fdtab_max);
    struct bs_ofd *found = NULL;
    bs_fdtab_scan_begin();
    for (int other = 0; other <= top && !found; other++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(other));
        if (other == fd || !o || o->t != t)
            continue;
        if (kcmp_works) {
            long r = bs_syscall(SYS_kcmp, pid, pid, KCMP_FILE, fd, other);
            if (r == 0)
                found = o;
            if (r >= 0)
                continue;
            kcmp_works = 0; /* e.g. forbidden by a seccomp filter */
        }
        /* Without kcmp, for the standard descriptors only (`> log 2>&1`): same flags
           and same offset is taken as one description. */
        if (fd <= 2 && other <= 2 &&
            bs_fd_status_flags(fd) == bs_fd_status_flags(other) &&
            BS_REAL(lseek)(fd, 0, SEEK_CUR) == BS_REAL(lseek)(other, 0, SEEK_CUR))
            found = o;
    }
    bs_fdtab_scan_end();
    return found;
}

/*
 * Registers fd given whether its path matched (path: the canonical one, or
 * NULL). inherited: the descriptor may share its description with another one
 * already registered (found at start, or handed to fdopen).
 */
static void register_fd(int fd, int matched, const char *path, int inherited,
                        const struct stat *known)
{
    struct stat st;
    uintptr_t slot = 0;
    int word = word_fd(fd);
    if (known ? (st = *known, 1) : BS_REAL(fstat)(fd, &st) == 0) {
        int fl = bs_fd_status_flags(fd);
        int writable = fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && !(fl & O_PATH);
        int create = (matched || word) && writable;
        struct bs_target *t = bs_target_acquire(st.st_dev, st.st_ino, create, fd,
                                                matched ? path : NULL, word && !matched);
        struct bs_ofd *cur = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (t && inherited && cur && cur->t == t) {
            /* Already known (fdopen of a registered descriptor): keep its state. */
            bs_target_release(t);
            return;
        }
        if (t) {
            struct bs_ofd *o = inherited ? shared_description(fd, t) : NULL;
            if (o) {
                atomic_fetch_add(&o->refs, 1);
                bs_target_release(t); /* the description holds the target already */
            } else if ((o = ofd_new(t)) != NULL) {
                decide_with(o, fd, fl);
                if (writable)
                    atomic_store(&t->appending, (fl & O_APPEND) != 0);
                if (!inherited) {
                    o->gen = atomic_load(&bs_fd_share_gen);
                    atomic_store(&o->origin, BS_ORIGIN_OWN);
                }
            } else {
                bs_target_release(t);
            }
            slot = (uintptr_t)o;
            if (o && bs_cfg.debug)
                bs_log("fd %d -> %s: %s", fd, t->path ? t->path : "(stream)",
                       (atomic_load(&o->flags) & BS_OFD_DIVERTED) ? "diverted"
                                                                  : "not an appending stream");
        }
    }
    drop_slot(fd, slot);
}

/* Reads the link /proc/self/fd/N into out; returns 0 or -1. */
static int fd_path(int fd, char *out, size_t size)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, out, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return -1;
    out[n] = '\0';
    return out[0] == '/' ? 0 : -1;
}

void bs_fd_register_open(int fd, int dirfd, const char *path, int plain)
{
    if (!bs_cfg.active || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap || !path || !bs_is_owner())
        return;
    bs_fd_mark_seen(fd);
    BS_KEEP_ERRNO();
    bs_in_shim++;
    char base[PATH_MAX], abs[PATH_MAX], canon[PATH_MAX];
    int matched = 0;
    int have_base = 1;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD)
            have_base = getcwd(base, sizeof base) != NULL;
        else
            have_base = fd_path(dirfd, base, sizeof base) == 0;
    }
    if (have_base && bs_path_absolute(base, path, abs, sizeof abs) == 0)
        matched = bs_match_path(abs);
    else
        abs[0] = '\0';
    /* A path resolved without a symlink is its own canonical path (wrap_open.c). */
    int have_canon = plain && abs[0];
    if (!have_canon && bs_cfg.nglobs) {
        have_canon = fd_path(fd, canon, sizeof canon) == 0;
        if (!matched && have_canon)
            matched = bs_match_path(canon);
    }
    const char *name = have_canon && !plain ? canon : abs[0] ? abs : NULL;
    /* Not matching by name, it may still be a target reached by another name. */
    if (matched || bs_target_any() || word_fd(fd))
        register_fd(fd, matched, name, 0, NULL);
    else
        drop_slot(fd, 0);
    bs_in_shim--;
}

/*
 * Looks at an existing descriptor. Decision: fstat first, and the readlink of
 * /proc/self/fd/N (the costly part) only for what a path can name and a batch
 * could write: a socket's link is never a path.
 */
static void look_at(int fd)
{
    struct stat st;
    if (BS_REAL(fstat)(fd, &st) != 0) {
        /* Not open (closed where the shim could not see it): forget it. */
        drop_slot(fd, 0);
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        /* Only the stdout/stderr word, or a descriptor of a target it made. */
        if (word_fd(fd) || bs_target_any())
            register_fd(fd, 0, NULL, 1, &st);
        return;
    }
    char canon[PATH_MAX];
    int have = fd_path(fd, canon, sizeof canon) == 0;
    int matched = have && bs_match_path(canon);
    if (matched || bs_target_any() || word_fd(fd))
        register_fd(fd, matched, have ? canon : NULL, 1, &st);
}

void bs_fd_register_existing(int fd)
{
    if (!bs_cfg.active || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap || !bs_is_owner())
        return;
    bs_fd_mark_seen(fd);
    BS_KEEP_ERRNO();
    bs_in_shim++;
    look_at(fd);
    bs_in_shim--;
}

/*
 * First looks are serialised, so that two threads using one unseen descriptor
 * at once register it once, and neither uses it before it is registered. The
 * lock is taken inside bs_in_shim: a signal handler that interrupts the look
 * and uses a descriptor passes through instead of waiting for it. Re-initialised
 * in a fork child (only the forking thread is there).
 */
static pthread_mutex_t look_lock = PTHREAD_MUTEX_INITIALIZER;

uintptr_t bs_fd_first_look(int fd)
{
    if (bs_in_shim || !bs_cfg.active || !bs_is_owner() || bs_engine_is_shut_down())
        return 0;
    BS_KEEP_ERRNO();
    bs_in_shim++;
    bs_busy_enter();
    pthread_mutex_lock(&look_lock);
    if (!(atomic_load(&bs_fd_seen[fd >> 6]) & ((uint64_t)1 << (fd & 63)))) {
        look_at(fd);
        bs_fd_mark_seen(fd);
    }
    pthread_mutex_unlock(&look_lock);
    bs_busy_leave();
    bs_in_shim--;
    return bs_fd_slot_raw(fd);
}

void bs_fd_prepare_close(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
    if (o && atomic_load(&o->refs) == 1)
        bs_target_prepare_close(o->t, fd,
                                atomic_load(&o->origin) == BS_ORIGIN_OWN &&
                                    o->gen == atomic_load(&bs_fd_share_gen));
}

atomic_uint bs_fd_share_gen;

void bs_fd_shared_out(void)
{
    atomic_fetch_add(&bs_fd_share_gen, 1);
}

void bs_fd_taint(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
    if (o)
        atomic_fetch_or(&o->origin, BS_ORIGIN_TAINTED);
}

int bs_fd_register_elided(int fd, struct bs_target *t, int path_only, int open_flags)
{
    BS_KEEP_ERRNO();
    struct bs_ofd *o = ofd_new(t);
    if (!o)
        return -ENOMEM;
    /* What decide_with would find, without asking the drive again: an append stream
       whose offset is the kernel's until its first write. */
    atomic_store(&o->mark, atomic_load(&t->acc));
    atomic_store(&o->flags, BS_OFD_WRITABLE | BS_OFD_DIVERTED | BS_OFD_APPEND | BS_OFD_STALEPOS |
                                ((path_only && (open_flags & O_NOFOLLOW)) ? BS_OFD_NOFOLLOW : 0u));
    atomic_store(&o->origin, BS_ORIGIN_ELIDED | (path_only ? BS_ORIGIN_PATH : 0u));
    bs_fd_mark_seen(fd);
    drop_slot(fd, (uintptr_t)o);
    return 0;
}

void bs_fd_forget(int fd)
{
    /* Whatever the number holds next comes from a call the shim sees (or from one
       it does not wrap, which it would not have registered at start either). */
    bs_fd_mark_seen(fd);
    if (!bs_fd_slot_raw(fd) || !bs_is_owner())
        return;
    bs_fd_prepare_close(fd);
    drop_slot(fd, 0);
}

void bs_fd_copy(int oldfd, int newfd)
{
    if (!bs_fdtab)
        return;
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(oldfd));
    bs_fd_mark_seen(newfd);
    if (!o && !bs_fd_slot_raw(newfd) && !word_fd(newfd))
        return;
    if (!bs_is_owner())
        return;
    if (o)
        atomic_fetch_add(&o->refs, 1);
    drop_slot(newfd, (uintptr_t)o);
    /* "stdout"/"stderr" mean fd 1/2 whatever they are: look at the new one. */
    if (!o && word_fd(newfd))
        bs_fd_register_existing(newfd);
}

/* Puts fd's kernel offset at its description's virtual offset. */
static void put_offset(struct bs_ofd *o, int fd)
{
    int64_t pos = bs_ofd_position(o, fd);
    if (pos >= 0)
        BS_REAL(lseek)(fd, (off_t)pos, SEEK_SET);
}

void bs_ofd_lost_end(struct bs_ofd *o, int fd)
{
    BS_KEEP_ERRNO();
    bs_target_flush(o->t);
    put_offset(o, fd);
    atomic_fetch_and(&o->flags, ~BS_OFD_DIVERTED);
}

void bs_fd_sync_offsets(struct bs_target *t)
{
    int top = atomic_load(&bs_fdtab_max);
    BS_KEEP_ERRNO();
    bs_fdtab_scan_begin();
    for (int fd = 0; fd <= top; fd++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (!o || (t && o->t != t) || !o->t->regular)
            continue;
        unsigned f = atomic_load(&o->flags);
        if ((f & BS_OFD_DIVERTED) && !(f & BS_OFD_STALEPOS))
            put_offset(o, fd);
    }
    bs_fdtab_scan_end();
}

void bs_fd_recheck(struct bs_target *t)
{
    if (!t || bs_engine_is_shut_down())
        return;
    int top = atomic_load(&bs_fdtab_max);
    BS_KEEP_ERRNO();
    bs_fdtab_scan_begin();
    for (int fd = 0; fd <= top; fd++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (o && o->t == t && (atomic_load(&o->flags) & BS_OFD_WRITABLE))
            decide(o, fd);
    }
    bs_fdtab_scan_end();
}

void bs_fd_recheck_one(int fd)
{
    BS_KEEP_ERRNO();
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
    if (o && !bs_engine_is_shut_down() && (atomic_load(&o->flags) & BS_OFD_WRITABLE))
        decide(o, fd);
}

void bs_fd_rescan(int fd)
{
    if (!bs_in_shim)
        bs_fd_register_existing(fd);
}

void (*bs_std_fd_changed_hook)(int fd);

/* pthread_atfork hooks for the description free list (called by wrap_fork.c's handlers). */
void bs_fd_fork_prepare(void)
{
    pthread_mutex_lock(&ofd_lock);
}

void bs_fd_fork_parent(void)
{
    pthread_mutex_unlock(&ofd_lock);
}

void bs_fd_fork_child(void)
{
    pthread_mutex_unlock(&ofd_lock); /* the forking thread took it in prepare */
    pthread_mutex_init(&look_lock, NULL);
}
