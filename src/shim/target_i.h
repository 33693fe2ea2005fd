/* target_i.h - targets: one per open file the shim buffers, each with its engine writer. */
#ifndef BUFSHIM_TARGET_I_H
#define BUFSHIM_TARGET_I_H

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
    int held_fit;              /* held is O_WRONLY|O_APPEND and nobody else's: open elision may
                                  share it (bs_target_share_held) */
    int held_path;             /* an O_PATH description of held's file (private table), or -1:
                                  what open elision hands out (see bs_target_share_held) */
    int held_job_borrow;       /* held_job may take the closing description itself */
    atomic_int held_pending;   /* held_job submitted and not waited for */
    int held_job_fd;           /* the program's descriptor held_job reopens */
    struct bs_job held_job;

    bufshim_writer *w; /* NULL while retired */
    atomic_int broken; /* a pipe or socket whose reader is gone: pass-through from now on */
    atomic_int locked; /* the program took a lock on it: closes flush first (wrap_lock.c) */
    atomic_int refs;   /* program descriptors + transient users */
    /* After its last descriptor closed, a regular target stays live until then
       (bs_now_ns), so that a program that opens it per record finds it again. */
    _Atomic uint64_t linger_until;
    atomic_int appending; /* its latest writable description was O_APPEND: it may linger */
    atomic_int exit_through; /* a write while leaving went straight to the file (bs_target_exit_through) */

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

/* Starts the target registry (constructor): the owner, the private descriptor table. */
void bs_target_init(void);

/*
 * The target for (dev, ino), created when missing and create is set (with fd
 * the program's descriptor to it, path its canonical path or NULL). Returns it
 * with one more reference, or NULL.
 */
struct bs_target *bs_target_acquire(dev_t dev, ino_t ino, int create, int fd, const char *path,
                                    int word);

/*
 * The program is about to close fd, one of t's descriptors (see bs_fd_prepare_close).
 * borrow: fd's description was opened by this process and never shared with another
 * one, so it may become t's held descriptor itself (no open on the drive).
 */
void bs_target_prepare_close(struct bs_target *t, int fd, int borrow);

/*
 * Open elision: a copy of t's held descriptor in the program's table, made through
 * pidfd (a writer thread's, bs_private_thread_pidfd), or -errno when t has no held
 * descriptor fit to be shared (or it is busy). *path_only, 1 on entry to ask for it, says
 * on return whether the copy is of the O_PATH description of held's file (held_path)
 * rather than of held itself: its close costs the drive nothing (a FUSE file's close is a
 * FLUSH round trip, even of a copy), and the program's descriptor is then a stand-in
 * (BS_ORIGIN_PATH). Keeps errno.
 */
int bs_target_share_held(struct bs_target *t, int pidfd, int *path_only);

/*
 * Before fork, exec or spawn (after their flush): lingering targets are retired now. A
 * held descriptor open for writing would make the kernel refuse to execute its file
 * (ETXTBSY): a program that writes a script, closes it and runs it must find no writer
 * left, as without the shim. Keeps errno.
 */
void bs_target_end_lingering(void);

/* Retires the targets whose lingering time is over (cheap when none is due). Keeps errno. */
void bs_target_tick(void);

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

/*
 * Whether a diverted write to t, made while the process is leaving (bs_exiting), goes
 * straight to the file instead: once per target, when t has nothing queued or in flight.
 * Why: the final flush would write it within microseconds, and buffering it costs the
 * process a spool and the drive an open and a close that the program's own descriptor
 * does not (target.c says more).
 */
int bs_target_exit_through(struct bs_target *t);

/* Records len bytes accepted by the engine for t; returns the new t->acc. */
uint64_t bs_target_accepted(struct bs_target *t, size_t len);

/* Fork handlers of the registry's locks (run inside wrap_fork.c's pthread_atfork handlers). */
void bs_target_fork_prepare(void);
void bs_target_fork_parent(void);
void bs_target_fork_child(void);

#endif /* BUFSHIM_TARGET_I_H */
