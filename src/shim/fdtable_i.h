/* fdtable_i.h - descriptor table and targets: which descriptors are diverted, and where to. */
#ifndef BUFSHIM_FDTABLE_I_H
#define BUFSHIM_FDTABLE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "bufshim.h"
#include "engine_i.h"

/*
 * Errno: a function here whose comment says "keeps errno" leaves errno as it
 * found it; any other may change it, and a wrapper that must keep the program's
 * errno brackets the call with BS_SAVE_ERRNO (errno_i.h).
 */

/*
 * A target is one open file, identified by (st_dev, st_ino): every descriptor
 * and path to it shares one engine writer, hence one order of bytes. Target
 * structs are never freed (a retired one is reused when the file is opened
 * again), so a pointer read from the table stays valid without a lock.
 */
struct bs_target {
    _Alignas(32) dev_t dev;
    ino_t ino;
    int regular; /* S_ISREG: batches open the path; otherwise the held fd */
    int word;    /* created for the stdout/stderr word: always the held fd */
    char *path;  /* canonical path at creation (NULL for words) */

    pthread_mutex_t held_lock; /* guards held (used on writer threads only) */
    atomic_int held;           /* descriptor to the file in the private table, or -1 */
    atomic_uint held_gen;      /* bs_private_gen() when held was made */
    int held_shares_ofd;       /* held is the program's own description (not a reopen) */
    atomic_int held_pending;   /* held_job submitted and not waited for */
    int held_job_fd;           /* the program's descriptor held_job reopens */
    struct bs_job held_job;

    bufshim_writer *w; /* NULL while retired */
    atomic_int broken; /* a pipe or socket whose reader is gone: pass-through from now on */
    atomic_int locked; /* the program took a lock on it: closes flush first (wrap_lock.c) */
    atomic_int refs;   /* program descriptors + transient users */

    /*
     * Exact size queries (doc/behaviour.md §4): acc = bytes accepted by the engine, wr = bytes
     * the sink wrote. While a write syscall is in flight, base is the file size
     * before it. seq is odd while the sink updates them (a seqlock).
     */
    _Atomic uint64_t acc, wr, base;
    atomic_int inflight;
    _Atomic unsigned seq;

    struct bs_target *next; /* registry list, under the registry lock */
};

/*
 * One open file description of a target (what open() creates and dup() shares):
 * whether its writes are diverted and where its offset virtually is. Shared by
 * every descriptor duplicated from it, like the kernel's.
 */
struct bs_ofd {
    _Alignas(16) struct bs_target *t; /* holds one reference */
    atomic_uint flags;                /* BS_OFD_* */
    /*
     * t->acc right after this description's last diverted write (or when it was
     * last known to be at the end): its virtual offset is the virtual end of
     * file minus the bytes appended since, (t->acc - mark).
     */
    _Atomic uint64_t mark;
    atomic_int refs; /* descriptors sharing it */
    struct bs_ofd *next_free;
};

#define BS_OFD_DIVERTED 1u /* writes are appended through the engine */
#define BS_OFD_APPEND 2u   /* O_APPEND, or not a regular file: writes go to the end anyway */
#define BS_OFD_STALEPOS 4u /* O_APPEND, not yet written: the offset is the kernel's */
#define BS_OFD_WRITABLE 8u /* open for writing (a read-only one is only a barrier) */

/* A slot is a struct bs_ofd pointer, or 0 for a descriptor the shim does not track. */
extern _Atomic(uintptr_t) *bs_fdtab;
extern int bs_fdtab_cap;
extern atomic_int bs_fdtab_max; /* highest fd ever given a slot */

/*
 * Descriptors the program had before the shim started, or got by a call the shim
 * does not wrap, are looked at when first used rather than all at start: a short
 * process pays for the descriptors it touches, not for a scan of /proc/self/fd
 * with a readlink each. bs_fd_seen has one bit per descriptor number, set once
 * the shim knows what the number holds (looked at, opened through a wrapper, or
 * closed); a clear bit with an empty slot means "not looked at yet".
 */
extern _Atomic uint64_t *bs_fd_seen;

/* Looks at fd for the first time (bs_fd_slot's slow path); returns its slot. */
uintptr_t bs_fd_first_look(int fd);

/* The slot of fd as it stands, without a first look: for loops over the table
   and for descriptors about to be replaced. */
static inline uintptr_t bs_fd_slot_raw(int fd)
{
    _Atomic(uintptr_t) *t = bs_fdtab;
    if (!t || fd < 0 || fd >= bs_fdtab_cap)
        return 0;
    return atomic_load_explicit(&t[fd], memory_order_acquire);
}

/*
 * The slot of a descriptor the program is using: one array index and one
 * atomic load, plus one bit test for untracked fds; the first use of a
 * descriptor not seen before registers it as an inherited one.
 */
static inline uintptr_t bs_fd_slot(int fd)
{
    uintptr_t s = bs_fd_slot_raw(fd);
    if (__builtin_expect(s != 0, 0) || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap)
        return s;
    if (__builtin_expect(atomic_load_explicit(&bs_fd_seen[fd >> 6], memory_order_relaxed) &
                             ((uint64_t)1 << (fd & 63)),
                         1))
        return 0;
    return bs_fd_first_look(fd);
}

/* Marks fd's number as known to the shim (see bs_fd_seen). */
static inline void bs_fd_mark_seen(int fd)
{
    if (bs_fd_seen && fd >= 0 && fd < bs_fdtab_cap)
        atomic_fetch_or_explicit(&bs_fd_seen[fd >> 6], (uint64_t)1 << (fd & 63),
                                 memory_order_release);
}

/* The description behind a program descriptor's slot, or NULL (untracked). */
static inline struct bs_ofd *bs_slot_ofd(uintptr_t s)
{
    return (struct bs_ofd *)s;
}

/* Maps the table (constructor). Returns 0 or -errno. */
int bs_fdtab_init(void);

/* Sets fd's slot; returns the old one. The caller owns the references involved. */
uintptr_t bs_fdtab_swap(int fd, uintptr_t slot);

/* The virtual offset of a diverted description (end of file minus what was appended since). */
int64_t bs_ofd_position(struct bs_ofd *o, int fd);

/*
 * A diverted non-O_APPEND description whose end moved on (another description
 * appended after it): flush, put the kernel offset where the program's offset
 * is, and stop diverting it (its next write overwrites, as the kernel would).
 */
void bs_ofd_lost_end(struct bs_ofd *o, int fd);

/*
 * Registers fd, just opened by the program through path (relative to dirfd)
 * with flags, when it refers to a target or matches the configuration.
 */
void bs_fd_register_open(int fd, int dirfd, const char *path);

/* Looks at fd afresh (inherited fd, fdopen, dup2 onto 1/2) and registers it. */
void bs_fd_register_existing(int fd);

/* The program's fd is going away: forget it (drops its reference). */
void bs_fd_forget(int fd);

/* newfd is now a duplicate of oldfd: copy the mapping (forgetting newfd's old one). */
void bs_fd_copy(int oldfd, int newfd);

/*
 * fd, the program's, is about to be closed (close, dup2 onto it): when it is the
 * last descriptor of a target with bytes queued, the target keeps a way to its file.
 */
void bs_fd_prepare_close(int fd);

/* Fork handlers of the table's own lock (run inside target.c's pthread_atfork handlers). */
void bs_fdtab_fork_prepare(void);
void bs_fdtab_fork_parent(void);
void bs_fdtab_fork_child(void);

/* --- targets (target.c) --- */

/* Starts the target registry (constructor): pthread_atfork, the high-fd floor. */
void bs_target_init(void);

/*
 * The target for (dev, ino), created when missing and create is set (with fd
 * the program's descriptor to it, path its canonical path or NULL). Returns it
 * with one more reference, or NULL.
 */
struct bs_target *bs_target_acquire(dev_t dev, ino_t ino, int create, int fd, const char *path,
                                    int word);

/* The program is about to close fd, one of t's descriptors (see bs_fd_prepare_close). */
void bs_target_prepare_close(struct bs_target *t, int fd);

/* Drops a reference; a target nobody refers to is retired once its bytes are written. */
void bs_target_release(struct bs_target *t);

/* The target for a path (stat'ed, following symlinks unless nofollow), with a reference, or NULL.
 */
struct bs_target *bs_target_by_path(int dirfd, const char *path, int nofollow);

/* 1 when there is at least one live target (cheap pre-check for path wrappers). */
int bs_target_any(void);

/* Writes t's pending bytes now (a barrier); then program offsets of t are at its end.
   Keeps errno. */
void bs_target_flush(struct bs_target *t);

/* Bytes accepted for t but not yet in the file. */
uint64_t bs_target_pending(struct bs_target *t);

/*
 * The size t would have with its pending bytes written: calls real_size(arg)
 * (a real fstat/stat returning st_size or -1) inside a consistent snapshot of
 * the sink's progress. Returns -1 if real_size failed.
 */
int64_t bs_target_vsize(struct bs_target *t, int64_t (*real_size)(void *arg), void *arg);

/* bs_target_vsize with the real fstat(fd)'s st_size as the real size (fd refers to t). */
int64_t bs_target_vsize_fd(struct bs_target *t, int fd);

/* Records len bytes accepted by the engine for t; returns the new t->acc. */
uint64_t bs_target_accepted(struct bs_target *t, size_t len);

/*
 * Moves the kernel offset of every diverted regular descriptor of t (all
 * targets if t is NULL) to its virtual offset: diverted writes did not move it.
 * Called after a flush, before the kernel uses the offsets (barriers, exec, exit).
 * Keeps errno.
 */
void bs_fd_sync_offsets(struct bs_target *t);

/* Re-decides whether each description of t is diverted, from the kernel's offsets
   (after a truncate, a moving seek, a read). Keeps errno. */
void bs_fd_recheck(struct bs_target *t);

/* Re-decides fd's description only (after a read or a seek moved its offset); keeps
   errno, as bs_fd_recheck does. */
void bs_fd_recheck_one(int fd);

/* Flushes every target and syncs offsets: before fork, exec, spawn. Keeps errno. */
void bs_shim_flush_all(void);

/* Final flush (exit, _exit, destructor): afterwards every write passes through.
   Keeps errno. */
void bs_shim_final_flush(void);

/* 1 once main returned or exit was called (lifecycle.c). */
extern atomic_int bs_exiting;

/* Process that owns the shim state (a vfork child is not it). */
extern pid_t bs_owner_pid;
int bs_is_owner(void);

#endif /* BUFSHIM_FDTABLE_I_H */
