/* fdtable.c - the descriptor table: fd -> target and whether its writes are diverted. */
#include "real_i.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config_i.h"
#include "engine_i.h"
#include "fdtable_i.h"

/*
 * One slot per descriptor number, in an anonymous mapping that costs nothing
 * until touched. Decision: 2^20 slots (8 MiB of address space); descriptors
 * above that are never diverted. A lookup is one index and one atomic load.
 */
#define FDTAB_CAP (1 << 20)

_Atomic(uintptr_t) *bs_fdtab;
int bs_fdtab_cap;
atomic_int bs_fdtab_max = -1;

int bs_fdtab_init(void)
{
    void *m = BS_REAL(mmap)(NULL, (size_t)FDTAB_CAP * sizeof(uintptr_t), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    bs_fdtab_cap = FDTAB_CAP;
    bs_fdtab = m;
    return 0;
}

static void note_max(int fd)
{
    int m = atomic_load(&bs_fdtab_max);
    while (fd > m && !atomic_compare_exchange_weak(&bs_fdtab_max, &m, fd))
        ;
}

uintptr_t bs_fdtab_swap(int fd, uintptr_t slot)
{
    if (!bs_fdtab || fd < 0 || fd >= bs_fdtab_cap)
        return 0;
    if (slot)
        note_max(fd);
    return atomic_exchange(&bs_fdtab[fd], slot);
}

int bs_fdtab_cas(int fd, uintptr_t expect, uintptr_t slot)
{
    if (!bs_fdtab || fd < 0 || fd >= bs_fdtab_cap)
        return 0;
    return atomic_compare_exchange_strong(&bs_fdtab[fd], &expect, slot);
}

static int64_t fstat_size(void *arg)
{
    struct stat st;
    return BS_REAL(fstat)(*(int *)arg, &st) == 0 ? (int64_t)st.st_size : -1;
}

/*
 * The diversion bits of a writable descriptor of t. A regular file's descriptor
 * is an appending stream when its offset is at the (virtual) end: always for
 * O_APPEND (STALEPOS until its first write if the offset is elsewhere), and for
 * other descriptors only while they stay there. Pipes and terminals append.
 */
static uintptr_t divert_bits(struct bs_target *t, int fd)
{
    int fl = BS_REAL(fcntl)(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) == O_RDONLY)
        return 0;
    if (!t->regular)
        return BS_FD_WRITABLE | BS_FD_DIVERTED | BS_FD_APPEND;
    off_t off = BS_REAL(lseek)(fd, 0, SEEK_CUR);
    int64_t vs = bs_target_vsize(t, fstat_size, &fd);
    if (off < 0 || vs < 0)
        return BS_FD_WRITABLE;
    if (fl & O_APPEND)
        return BS_FD_WRITABLE | BS_FD_DIVERTED | BS_FD_APPEND | (off != vs ? BS_FD_STALEPOS : 0);
    return BS_FD_WRITABLE | (off == vs ? BS_FD_DIVERTED : 0);
}

static int word_fd(int fd)
{
    return (fd == 1 && bs_cfg.word_stdout) || (fd == 2 && bs_cfg.word_stderr);
}

/* Registers fd given whether its path matched; path is the canonical one (or NULL). */
static void register_fd(int fd, int matched, const char *path)
{
    struct stat st;
    uintptr_t slot = 0;
    int word = word_fd(fd);
    if (BS_REAL(fstat)(fd, &st) == 0) {
        int fl = BS_REAL(fcntl)(fd, F_GETFL);
        int writable = fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && !(fl & O_PATH);
        int create = (matched || word) && writable;
        struct bs_target *t = bs_target_acquire(st.st_dev, st.st_ino, create, fd,
                                                matched ? path : NULL, word && !matched);
        if (t) {
            slot = (uintptr_t)t | divert_bits(t, fd);
            if (bs_cfg.debug)
                bs_log("fd %d -> %s: %s", fd, t->path ? t->path : "(stream)",
                       (slot & BS_FD_DIVERTED) ? "diverted" : "not an appending stream");
        }
    }
    uintptr_t old = bs_fdtab_swap(fd, slot);
    if (old && !(old & BS_FD_SHIM))
        bs_target_release(bs_slot_target(old));
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

void bs_fd_register_open(int fd, int dirfd, const char *path)
{
    if (!bs_cfg.active || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap || !path || !bs_is_owner())
        return;
    int saved = errno;
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
    int have_canon = fd_path(fd, canon, sizeof canon) == 0;
    if (!matched && have_canon)
        matched = bs_match_path(canon);
    /* Not matching by name, it may still be a target reached by another name. */
    if (matched || bs_target_any() || word_fd(fd))
        register_fd(fd, matched, have_canon ? canon : abs);
    else
        bs_fd_forget(fd);
    bs_in_shim--;
    errno = saved;
}

void bs_fd_register_existing(int fd)
{
    if (!bs_cfg.active || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap || !bs_is_owner())
        return;
    int saved = errno;
    bs_in_shim++;
    char canon[PATH_MAX];
    int have = fd_path(fd, canon, sizeof canon) == 0;
    int matched = have && bs_match_path(canon);
    if (matched || bs_target_any() || word_fd(fd))
        register_fd(fd, matched, have ? canon : NULL);
    bs_in_shim--;
    errno = saved;
}

void bs_fd_forget(int fd)
{
    uintptr_t s = bs_fd_slot(fd);
    if (!s || (s & BS_FD_SHIM) || !bs_is_owner())
        return;
    uintptr_t old = bs_fdtab_swap(fd, 0);
    if (old && !(old & BS_FD_SHIM))
        bs_target_release(bs_slot_target(old));
}

void bs_fd_copy(int oldfd, int newfd)
{
    if (!bs_fdtab)
        return;
    uintptr_t s = bs_fd_slot(oldfd);
    if (s & BS_FD_SHIM)
        s = 0;
    if (!s && !bs_fd_slot(newfd) && !word_fd(newfd))
        return;
    if (!bs_is_owner())
        return;
    if (s)
        atomic_fetch_add(&bs_slot_target(s)->refs, 1);
    uintptr_t old = bs_fdtab_swap(newfd, s);
    if (old && !(old & BS_FD_SHIM))
        bs_target_release(bs_slot_target(old));
    /* "stdout"/"stderr" mean fd 1/2 whatever they are: look at the new one. */
    if (!s && word_fd(newfd))
        bs_fd_register_existing(newfd);
}

int bs_fd_is_shim(int fd)
{
    return (bs_fd_slot(fd) & BS_FD_SHIM) != 0;
}

void bs_fd_shim_move(int fd, struct bs_target **locked)
{
    *locked = NULL;
    uintptr_t s = bs_fd_slot(fd);
    if (!(s & BS_FD_SHIM))
        return;
    struct bs_target *t = bs_slot_target(s);
    pthread_mutex_lock(&t->held_lock);
    *locked = t;
    if (t->held != fd)
        return;
    int saved = errno;
    /* Any free number but fd itself: fd is still open, so F_DUPFD cannot return it. */
    int r = BS_REAL(fcntl)(fd, F_DUPFD_CLOEXEC, fd + 1 < bs_fdtab_cap ? fd + 1 : 3);
    bs_fdtab_swap(fd, 0);
    if (r >= 0) {
        t->held = r;
        bs_fdtab_swap(r, (uintptr_t)t | BS_FD_SHIM);
    } else {
        t->held = -1;
    }
    errno = saved;
}

void bs_fd_shim_moved(struct bs_target *locked)
{
    if (locked)
        pthread_mutex_unlock(&locked->held_lock);
}

int bs_fd_shim_list(unsigned lo, unsigned hi, int *out, int max)
{
    int n = 0;
    int top = atomic_load(&bs_fdtab_max);
    if (!bs_fdtab || top < 0)
        return 0;
    unsigned end = hi < (unsigned)top ? hi : (unsigned)top;
    for (unsigned fd = lo; fd <= end && n < max; fd++)
        if (atomic_load_explicit(&bs_fdtab[fd], memory_order_relaxed) & BS_FD_SHIM)
            out[n++] = (int)fd;
    return n;
}

void bs_fd_sync_offsets(struct bs_target *t)
{
    int top = atomic_load(&bs_fdtab_max);
    int saved = errno;
    for (int fd = 0; fd <= top; fd++) {
        uintptr_t s = bs_fd_slot(fd);
        struct bs_target *st = bs_slot_target(s);
        if ((s & BS_FD_SHIM) || !(s & BS_FD_DIVERTED) || (s & BS_FD_STALEPOS) || !st ||
            !st->regular || (t && st != t))
            continue;
        BS_REAL(lseek)(fd, 0, SEEK_END);
    }
    errno = saved;
}

void bs_fd_recheck(struct bs_target *t)
{
    if (!t || bs_engine_is_shut_down())
        return;
    int top = atomic_load(&bs_fdtab_max);
    int saved = errno;
    for (int fd = 0; fd <= top; fd++) {
        uintptr_t s = bs_fd_slot(fd);
        if ((s & BS_FD_SHIM) || bs_slot_target(s) != t || !(s & BS_FD_WRITABLE))
            continue;
        bs_fdtab_cas(fd, s, (uintptr_t)t | divert_bits(t, fd));
    }
    errno = saved;
}
