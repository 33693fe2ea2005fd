/* target.c - targets (one per open file): registry, held descriptors, the batch sink, flushes. */
#include "real_i.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "errno_i.h"
#include "config_i.h"
#include "engine_i.h"
#include "spool_i.h"
#include "fdtable_i.h"
#include "process_i.h"
#include "private_fds_i.h"
#include "stats_i.h"
#include "target_i.h"

/*
 * Locks: reg_lock guards the registry list and each target's w/refs transitions;
 * it is a leaf (never held while calling the engine or doing I/O), so its
 * place among the engine's pthread_atfork handlers does not matter. create_lock
 * serialises creating and reviving targets, which calls the engine; it is never
 * taken by the fork handlers and is re-initialised in the child.
 */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bs_target *registry;
static atomic_int live_targets;

int bs_target_any(void)
{
    return atomic_load_explicit(&live_targets, memory_order_relaxed) > 0;
}

/*
 * Held descriptors. A target's held descriptor lives in the writer threads'
 * private table (private_fds.c) and is only ever used there. It is what a batch
 * writes through when the path no longer names the target's file (renamed,
 * unlinked, replaced), and the only way to pipes, terminals, sockets and the
 * stdout/stderr words. Other files get one, synchronously, when they become
 * targets; a regular file asks for one without waiting as it becomes a target
 * (request_held), and again when a batch finds its path taken by another file or
 * the program closes its last descriptor with bytes still queued.
 */
static int held_valid(struct bs_target *t)
{
    return t->held >= 0 && t->held_gen == bs_private_gen();
}

/*
 * Lingering. Decision: a regular target stays live for two intervals after its last
 * descriptor closed (and, lazily, until the next open or close after that: there is
 * no timer), keeping its writer and its held descriptor, so that a program that
 * opens and closes it per record finds it live and its opens are elided
 * (doc/behaviour.md §3). next_expiry is the earliest end of a lingering time, 0 for
 * none.
 */
static _Atomic uint64_t next_expiry;

static int lingering(struct bs_target *t)
{
    uint64_t until = atomic_load(&t->linger_until);
    return until && bs_now_ns() < until;
}

static void start_lingering(struct bs_target *t)
{
    /* Only files appended to (logs): a file written otherwise and then closed may be run
       next (a script), which a writer left open would make fail with ETXTBSY. */
    if (!t->regular || !atomic_load(&t->appending) || atomic_load(&bs_exiting) ||
        bs_engine_is_shut_down())
        return;
    uint64_t until = bs_now_ns() + (uint64_t)(2 * bs_cfg.interval * 1e9);
    atomic_store(&t->linger_until, until);
    uint64_t cur = atomic_load(&next_expiry);
    while ((cur == 0 || until < cur) && !atomic_compare_exchange_weak(&next_expiry, &cur, until))
        ;
}

/* Closes t's held descriptor. On a writer thread; caller holds t->held_lock. */
static void drop_held(struct bs_target *t)
{
    if (held_valid(t)) {
        bs_sys_close(t->held);
        if (t->held_path >= 0)
            bs_sys_close(t->held_path);
    }
    t->held = -1;
    t->held_path = -1;
}

/*
 * held is fit for sharing: its file also gets an O_PATH description, through the
 * magic link of this writer thread's own table (/proc/thread-self: the private table
 * is not the process's). Following the link reaches the inode without a lookup by
 * name, and an O_PATH open calls no open of the file system: the drive sees nothing.
 * Failing that (no /proc), open elision shares held itself.
 */
static void make_held_path(struct bs_target *t)
{
    char link[48];
    snprintf(link, sizeof link, "/proc/thread-self/fd/%d", t->held);
    int p = bs_sys_open(link, O_PATH | O_CLOEXEC, 0);
    t->held_path = p >= 0 ? p : -1;
}

static int same_file(struct bs_target *t, int fd)
{
    struct stat st;
    return BS_REAL(fstat)(fd, &st) == 0 && st.st_dev == t->dev && st.st_ino == t->ino;
}

/*
 * Gives t a held descriptor from the program's descriptor pfd (or, with pfd -1,
 * from any program descriptor of t), checked to be t's file. On a writer
 * thread; caller holds t->held_lock. tid: the program thread blocked in the
 * call, 0 for none.
 */
/* Whether held descriptor h has the status flags of a plain append open: what F_GETFL
   shows after open(O_WRONLY|O_APPEND) (O_LARGEFILE is the kernel's bit, 0 in glibc's
   64-bit headers). */
static int fit_for_sharing(int h)
{
    int fl = BS_REAL(fcntl)(h, F_GETFL);
    return fl >= 0 && (fl & ~BS_KERNEL_O_LARGEFILE) == (O_WRONLY | O_APPEND);
}

static void take_held(struct bs_target *t, int pfd, pid_t tid, int borrow)
{
    if (held_valid(t))
        return;
    t->held = -1;
    t->held_path = -1;
    /* The program's closing description, when it is fit to be shared and nobody
       else's: keeping it costs the drive no open, and its close no release. */
    if (borrow && pfd >= 0 && t->regular) {
        int shared;
        int h = bs_private_from_program(pfd, tid, 0, &shared);
        if (h >= 0 && shared && same_file(t, h) && fit_for_sharing(h)) {
            t->held = h;
            t->held_shares_ofd = 0; /* the program's descriptor is going: ours alone */
            t->held_fit = 1;
            t->held_gen = bs_private_gen();
            make_held_path(t);
            return;
        }
        if (h >= 0)
            bs_sys_close(h);
    }
    int lo = pfd >= 0 ? pfd : 0, hi = pfd >= 0 ? pfd : atomic_load(&bs_fdtab_max);
    bs_fdtab_scan_begin(); /* the slots' descriptions are read (descriptors.c) */
    for (int fd = lo; fd <= hi; fd++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (pfd < 0 && (!o || o->t != t))
            continue;
        /* A regular file gets a description of its own (O_APPEND: the program's
           offset is never moved); other files the program's very description. */
        int shared;
        int h = bs_private_from_program(fd, tid, t->regular, &shared);
        if (h >= 0 && !same_file(t, h)) {
            bs_sys_close(h);
            h = -1;
        }
        if (h >= 0) {
            t->held = h;
            t->held_shares_ofd = shared;
            t->held_fit = t->regular && !shared && fit_for_sharing(h);
            t->held_gen = bs_private_gen();
            if (t->held_fit)
                make_held_path(t);
            break;
        }
    }
    bs_fdtab_scan_end();
}

struct held_req {
    struct bs_target *t;
    int pfd;
    pid_t tid;
    int drop;
};

static void held_call(void *arg)
{
    struct held_req *q = arg;
    pthread_mutex_lock(&q->t->held_lock);
    if (q->drop)
        drop_held(q->t);
    else
        take_held(q->t, q->pfd, q->tid, 0);
    pthread_mutex_unlock(&q->t->held_lock);
}

/* From a program thread: t gets a held descriptor from the program's pfd; 1 if it has one. */
static int ensure_held(struct bs_target *t, int pfd)
{
    struct held_req q = {t, pfd, (pid_t)bs_syscall(SYS_gettid), 0};
    if (bs_engine_call(held_call, &q) < 0)
        return 0;
    return t->held >= 0;
}

/* From any thread: t's held descriptor is closed (nothing more will be written through it). */
static void release_held(struct bs_target *t)
{
    if (t->held < 0)
        return;
    struct held_req q = {t, -1, 0, 1};
    if (bs_engine_call(held_call, &q) < 0)
        t->held = -1; /* no writer thread, hence no private table left to close it in */
}

/*
 * Decision: a regular target asks for its held descriptor as it is created, without
 * waiting (the writer thread reopens the program's descriptor meanwhile), so that
 * a short process pays no round trip to the writer thread for it. The program's
 * close of that descriptor waits for the request if it is still pending, since the
 * reopen needs the descriptor open; a request that came too late (the number
 * reused already) fails its (dev, ino) check and bs_target_prepare_close makes it
 * again (waiting a bounded time, see wait_held).
 */
static void held_job_run(void *arg)
{
    struct bs_target *t = arg;
    pthread_mutex_lock(&t->held_lock);
    take_held(t, t->held_job_fd, 0, t->held_job_borrow);
    pthread_mutex_unlock(&t->held_lock);
}

/* 1 while t's held request is queued or running (a finished one is not pending). */
static int held_busy(struct bs_target *t)
{
    return atomic_load(&t->held_pending) && !atomic_load(&t->held_job.done);
}

/* held_lock makes the check and the submission one step: the job is queued once at most. */
static void request_held(struct bs_target *t, int fd, int borrow)
{
    bs_busy_enter(); /* no flushing signal handler while held_lock is held */
    pthread_mutex_lock(&t->held_lock);
    if (!held_valid(t) && !held_busy(t)) {
        atomic_store(&t->held_pending, 1);
        t->held_job_fd = fd;
        t->held_job_borrow = borrow;
        t->held_job = (struct bs_job){.fn = held_job_run, .arg = t};
        if (bs_engine_submit(&t->held_job) < 0)
            atomic_store(&t->held_pending, 0);
    }
    pthread_mutex_unlock(&t->held_lock);
    bs_busy_leave();
}

/*
 * Waits for t's held request, but not for long: when the writer threads are stuck
 * (a batch hung on a dead mount), the program's close must not hang with them.
 * Decision: 100 ms. A request that runs after the close finds the number closed or
 * reused, fails its (dev, ino) check and changes nothing; the target is then
 * reached by its path, or, renamed meanwhile, by another descriptor of the
 * program's, or its batch fails loudly and is retried.
 */
#define HELD_WAIT_NS (100u * 1000000u)

static void wait_held(struct bs_target *t)
{
    if (held_busy(t))
        bs_engine_wait_for(&t->held_job, HELD_WAIT_NS);
}

void bs_target_prepare_close(struct bs_target *t, int fd, int borrow)
{
    if (!t->regular || !bs_is_owner())
        return;
    wait_held(t);
    /* Leaving: the final flush follows in this thread, and finds the file by its path. */
    if (atomic_load(&bs_exiting))
        return;
    /* The last descriptor of a regular target with bytes still queued: keep a way to
       the file, in case its name is taken before the next batch. */
    if (atomic_load(&t->refs) == 1 && bs_target_pending(t) > 0 && !held_valid(t) &&
        !bs_engine_is_shut_down()) {
        request_held(t, fd, borrow);
        wait_held(t);
    }
}

/*
 * One write(2) of a batch, for bs_write_all_with: each single write is bracketed
 * in t's seqlock (the file's size before it, then the bytes it wrote), so that a
 * size snapshot taken meanwhile stays exact; hence not plain bs_sys_write_all.
 */
static ssize_t write_once(void *ctx, int fd, const void *data, size_t len)
{
    struct bs_target *t = ctx;
    if (t->regular) {
        struct stat st;
        int ok = BS_REAL(fstat)(fd, &st) == 0;
        uint64_t size = ok ? (uint64_t)st.st_size : 0;
        atomic_fetch_add(&t->seq, 1);
        atomic_store(&t->base, size);
        atomic_store(&t->inflight, 1);
        atomic_fetch_add(&t->seq, 1);
        /* The spool too: were the process to die in this write, a reader learns from
           the file's size how much of it landed. */
        bs_writer_io_begin(t->w, ok ? size : UINT64_MAX, len);
    }
    ssize_t w = bs_sys_write(fd, data, len);
    if (t->regular) {
        bs_writer_io_end(t->w, w > 0 ? (uint64_t)w : 0);
        atomic_fetch_add(&t->seq, 1);
        if (w > 0)
            atomic_fetch_add(&t->wr, (uint64_t)w);
        atomic_store(&t->inflight, 0);
        atomic_fetch_add(&t->seq, 1);
    } else if (w > 0) {
        atomic_fetch_add(&t->wr, (uint64_t)w);
    }
    return w;
}

/*
 * One batch's I/O (doc/behaviour.md §3). A regular file is opened by path and checked to
 * still be the target's (dev, ino); otherwise, and for pipes, terminals and the
 * stdout/stderr words, the held descriptor is used, so bytes always reach the
 * file the program wrote them to. private: on a writer thread, in the private
 * table (else the fallback when no writer thread can be had: the path only).
 */
static ssize_t target_io(struct bs_target *t, const void *data, size_t len, int private)
{
    int fd = -1, own = 0, locked = 0;
    if (t->regular && t->path) {
        fd = bs_sys_open(t->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY, 0);
        if (fd >= 0 && !same_file(t, fd)) {
            bs_sys_close(fd);
            fd = -1;
        }
        own = fd >= 0;
    }
    if (fd < 0) {
        if (!private)
            return -EBADF;
        pthread_mutex_lock(&t->held_lock);
        locked = 1;
        take_held(t, -1, 0, 0);
        fd = t->held;
        if (fd < 0) {
            pthread_mutex_unlock(&t->held_lock);
            return -EBADF;
        }
        /* The program's own description: its offset may be anywhere (the program's
           diverted writes never moved it), the batch appends. */
        if (t->held_shares_ofd && t->regular)
            BS_REAL(lseek)(fd, 0, SEEK_END);
    }
    ssize_t r = bs_write_all_with(write_once, t, fd, data, len);
    if (r == -EPIPE && !t->regular) {
        /* The reader is gone (`app | head -1`). Nobody can ever read these bytes;
           the program's next write goes to the kernel and gets its own EPIPE or
           SIGPIPE, as it would have without the shim (doc/behaviour.md §10). */
        atomic_store(&t->broken, 1);
        if (bs_cfg.debug)
            bs_log("(stream): reader gone, %zu bytes discarded, now pass-through", len);
        r = (ssize_t)len;
    }
    if (r > 0 && bs_cfg.fsync && t->regular) {
        int e = bs_sys_fdatasync(fd);
        if (e < 0)
            bs_log("%s: fdatasync failed: %s", t->path ? t->path : "held descriptor", strerror(-e));
    }
    if (own)
        bs_sys_close(fd);
    if (bs_cfg.debug)
        bs_log("batch %s: %zu of %zu bytes via %s", t->path ? t->path : "(stream)",
               r > 0 ? (size_t)r : 0, len, own ? "path" : "held descriptor");
    if (private) {
        if (!locked)
            pthread_mutex_lock(&t->held_lock);
        /* Nobody refers to the target any more and everything is written: let go of
           the file now (a pipe's reader sees EOF), the writer is retired later. */
        if (atomic_load(&t->refs) == 0 && bs_target_pending(t) == 0 && !lingering(t))
            drop_held(t);
        pthread_mutex_unlock(&t->held_lock);
    }
    return r;
}

struct io_req {
    struct bs_target *t;
    const void *data;
    size_t len;
    ssize_t r;
};

static void io_call(void *arg)
{
    struct io_req *q = arg;
    q->r = target_io(q->t, q->data, q->len, 1);
}

/*
 * The held descriptor's I/O while the process dies of a crash: on a writer thread as
 * always, but waited for at most DYING_WAIT_NS (the writer threads may all hang on a
 * dead mount, and no second signal will come). The request lives in static memory, so
 * a job that runs after the wait gave up still finds it; once one has timed out, the
 * rest are not tried.
 */
#define DYING_WAIT_NS (1000u * 1000000u)

static ssize_t dying_io(const struct io_req *q)
{
    static struct io_req req;
    static struct bs_job job;
    static int stuck;
    if (stuck)
        return -ETIMEDOUT;
    req = *q;
    job = (struct bs_job){.fn = io_call, .arg = &req};
    if (bs_engine_submit(&job) != 0)
        return -EBADF;
    if (!bs_engine_wait_for(&job, DYING_WAIT_NS)) {
        stuck = 1;
        return -ETIMEDOUT;
    }
    return req.r;
}

/*
 * The engine's sink for a target: the batch's I/O always runs on a writer
 * thread, in the private table, also when a barrier flushes from a program
 * thread.
 */
static ssize_t target_sink(void *ctx, const void *data, size_t len)
{
    BS_KEEP_ERRNO();
    struct io_req q = {ctx, data, len, -EBADF};
    int inline_tried = 0;
    /*
     * Decision: the final flush (exit, _exit, a fatal signal) writes from the exiting
     * thread when the path still names the file: a short process then never waits
     * for its writer thread. Its descriptor exists for the few microseconds before
     * the process is gone, and closing it drops POSIX locks the process would drop
     * at its exit anyway, after its bytes are in the file.
     */
    if (bs_engine_is_shut_down() && !bs_engine_thread_here()) {
        q.r = target_io(ctx, data, len, 0);
        inline_tried = 1;
    }
    if (q.r == -EBADF && inline_tried && atomic_load(&bs_dying))
        return dying_io(&q);
    /* No writer thread to be had: the path is the only way, unless just tried. */
    if (q.r == -EBADF && bs_engine_call(io_call, &q) < 0 && !inline_tried)
        q.r = target_io(ctx, data, len, 0);
    return q.r;
}

uint64_t bs_target_pending(struct bs_target *t)
{
    uint64_t w = atomic_load(&t->wr), a = atomic_load(&t->acc);
    return a > w ? a - w : 0;
}

/*
 * A write made while leaving (after main returned or exit was called: an atexit handler, a
 * stdio stream closed at exit, as coreutils close stdout) is followed within microseconds
 * by the final flush, which writes the target's bytes synchronously on the exiting thread.
 * Buffering the first such write gains nothing and costs what a short process pays most
 * for: a spool made and removed for it, and at the flush an open, a write and a close of
 * the file where the program's own descriptor needs one write. So the first write to a
 * target with nothing queued or in flight goes to the kernel as it would without the shim.
 *
 * Order (SPEC §4): nothing accepted earlier is waiting (acc == wr, no write in flight), so
 * every byte of every call that returned before this one is in the file already; a call
 * that appends meanwhile overlaps this one, and either order is theirs. Later writes are
 * appended as before (a program that writes many lines at exit still gets one batch for
 * them): only the first passes, so the count of system calls the drive sees never grows.
 * Crash safety: the bytes are in the file when the call returns, which is more than a spool
 * promises.
 */
int bs_target_exit_through(struct bs_target *t)
{
    if (atomic_load(&t->exit_through) || bs_target_pending(t) || atomic_load(&t->inflight))
        return 0;
    return !atomic_exchange(&t->exit_through, 1);
}

uint64_t bs_target_accepted(struct bs_target *t, size_t len)
{
    return atomic_fetch_add(&t->acc, (uint64_t)len) + (uint64_t)len;
}

int64_t bs_target_vsize(struct bs_target *t, int64_t (*real_size)(void *arg), void *arg)
{
    for (;;) {
        unsigned s1 = atomic_load(&t->seq);
        if (s1 & 1) {
            sched_yield(); /* the sink is between two stores, not in I/O */
            continue;
        }
        int infl = atomic_load(&t->inflight);
        uint64_t base = atomic_load(&t->base);
        uint64_t wr = atomic_load(&t->wr);
        int64_t size = real_size(arg);
        if (size < 0)
            return -1;
        if (atomic_load(&t->seq) != s1)
            continue;
        uint64_t acc = atomic_load(&t->acc);
        return (infl ? (int64_t)base : size) + (int64_t)(acc > wr ? acc - wr : 0);
    }
}

static int64_t fstat_size(void *arg)
{
    struct stat st;
    return BS_REAL(fstat)(*(int *)arg, &st) == 0 ? (int64_t)st.st_size : -1;
}

int64_t bs_target_vsize_fd(struct bs_target *t, int fd)
{
    return bs_target_vsize(t, fstat_size, &fd);
}

/* Retires targets nobody refers to whose bytes are all written. */
static void reap(void)
{
    for (;;) {
        bufshim_writer *w = NULL;
        struct bs_target *gone = NULL;
        uint64_t soonest = 0;
        pthread_mutex_lock(&reg_lock);
        for (struct bs_target *t = registry; t; t = t->next) {
            if (!t->w || atomic_load(&t->refs) != 0)
                continue;
            /* Bytes still to write, or lingering: not yet, but the next tick looks again. */
            if (bs_target_pending(t) != 0 || lingering(t)) {
                uint64_t until = atomic_load(&t->linger_until);
                if (until && (!soonest || until < soonest))
                    soonest = until;
                continue;
            }
            w = t->w;
            t->w = NULL;
            gone = t;
            atomic_store(&t->linger_until, 0);
            atomic_fetch_sub(&live_targets, 1);
            break;
        }
        if (!w)
            atomic_store(&next_expiry, soonest);
        pthread_mutex_unlock(&reg_lock);
        if (!w)
            return;
        /* Its lingering is over: let go of the file. */
        if (gone->held >= 0)
            release_held(gone);
        /* Keep the retired writer's counters for the exit report. */
        if (bs_cfg.stats)
            bs_stats_retire(w);
        bufshim_close(w);
    }
}

static struct bs_target *find_locked(dev_t dev, ino_t ino)
{
    for (struct bs_target *t = registry; t; t = t->next)
        if (t->dev == dev && t->ino == ino)
            return t;
    return NULL;
}

static struct bs_target *new_target(dev_t dev, ino_t ino, int regular, const char *path)
{
    void *mem = NULL;
    if (posix_memalign(&mem, 32, sizeof(struct bs_target)) != 0)
        return NULL;
    struct bs_target *t = mem;
    memset(t, 0, sizeof *t);
    t->dev = dev;
    t->ino = ino;
    t->regular = regular;
    t->held = -1;
    t->held_path = -1;
    if (path) {
        t->path = strdup(path);
        if (!t->path) {
            free(t);
            return NULL;
        }
    }
    pthread_mutex_init(&t->held_lock, NULL);
    return t;
}

/*
 * A live target opened under another name than its own (renamed while it lingered,
 * or a link): batches open the name the program uses now. The old name's string is
 * left allocated, since a batch on a writer thread may be reading it (a rename per
 * rotation: a few bytes each).
 */
static void renamed_live(struct bs_target *t, const char *path)
{
    const char *cur = __atomic_load_n(&t->path, __ATOMIC_ACQUIRE);
    if (cur && strcmp(cur, path) == 0)
        return;
    char *p = strdup(path);
    if (p)
        __atomic_store_n(&t->path, p, __ATOMIC_RELEASE);
}

static struct bs_target *acquire(dev_t dev, ino_t ino, int create, int fd, const char *path,
                                 int word)
{
    pthread_mutex_lock(&reg_lock);
    struct bs_target *t = find_locked(dev, ino);
    if (t && t->w) {
        atomic_fetch_add(&t->refs, 1);
        pthread_mutex_unlock(&reg_lock);
        if (create && fd >= 0 && !t->regular && !held_valid(t))
            ensure_held(t, fd);
        if (create && path && !word && t->regular)
            renamed_live(t, path);
        return t;
    }
    pthread_mutex_unlock(&reg_lock);
    if (!create)
        return NULL;

    reap();
    pthread_mutex_lock(&create_lock);
    pthread_mutex_lock(&reg_lock);
    t = find_locked(dev, ino);
    if (t && t->w) { /* another thread created it meanwhile */
        atomic_fetch_add(&t->refs, 1);
        pthread_mutex_unlock(&reg_lock);
        pthread_mutex_unlock(&create_lock);
        if (!t->regular && !held_valid(t))
            ensure_held(t, fd);
        return t;
    }
    pthread_mutex_unlock(&reg_lock);

    int fresh = 0;
    if (!t) {
        struct stat st;
        int regular = BS_REAL(fstat)(fd, &st) == 0 && S_ISREG(st.st_mode);
        t = new_target(dev, ino, regular, word ? NULL : path);
        if (!t) {
            pthread_mutex_unlock(&create_lock);
            return NULL;
        }
        fresh = 1;
    } else if (path && !word && (!t->path || strcmp(t->path, path) != 0)) {
        /* Revived under another name (it was renamed while retired): batches open
           the current one. No sink runs for a retired target. */
        char *p = strdup(path);
        if (p) {
            free(t->path);
            t->path = p;
        }
    }
    /* A revived target starts from a clean slate: its old bytes are all written. */
    atomic_store(&t->acc, 0);
    atomic_store(&t->wr, 0);
    struct bufshim_options o = {.interval = bs_cfg.interval, .fsync = bs_cfg.fsync};
    /* A regular file's buffers live in a spool, which outlives the process (crash safety);
       a pipe's or terminal's reader cannot be reached after the process died. */
    struct bs_spool_id sid = {dev, ino, t->path};
    bufshim_writer *w =
        t->regular && t->path
            ? bs_writer_open_spooled(target_sink, t, &o, t->path, &sid)
            : bs_writer_open_named(target_sink, t, &o, t->path ? t->path : "stream");
    if (!w) {
        if (fresh) {
            free(t->path);
            free(t);
        }
        pthread_mutex_unlock(&create_lock);
        return NULL;
    }
    /* A pipe, terminal or socket is reached only through a held descriptor: without
       one it is not a target (its bytes go straight to the kernel). */
    if (!t->regular && !ensure_held(t, fd)) {
        bufshim_close(w);
        if (fresh) {
            free(t->path);
            free(t);
        }
        pthread_mutex_unlock(&create_lock);
        if (bs_cfg.debug)
            bs_log("fd %d: no descriptor of the shim's own can reach it; not buffered", fd);
        return NULL;
    }

    /* A regular target gets its held descriptor when its last descriptor closes
       (bs_target_prepare_close), not now: most never need one. */

    pthread_mutex_lock(&reg_lock);
    t->w = w;
    atomic_store(&t->refs, 1);
    if (fresh) {
        t->next = registry;
        registry = t;
    }
    atomic_fetch_add(&live_targets, 1);
    pthread_mutex_unlock(&reg_lock);
    pthread_mutex_unlock(&create_lock);
    if (bs_cfg.debug)
        bs_log("target %s (dev %lu, inode %lu): buffered, interval %gs",
               t->path ? t->path : "(stream)", (unsigned long)dev, (unsigned long)ino,
               bs_cfg.interval);
    return t;
}

/*
 * The registry's entry points run inside the engine's async-signal guard: a
 * flushing signal handler (signals.c) that interrupts them while they hold a
 * shim lock defers its flush until they are done.
 */
struct bs_target *bs_target_acquire(dev_t dev, ino_t ino, int create, int fd, const char *path,
                                    int word)
{
    bs_busy_enter();
    struct bs_target *t = acquire(dev, ino, create, fd, path, word);
    bs_busy_leave();
    return t;
}

static void release_unguarded(struct bs_target *t);

void bs_target_release(struct bs_target *t)
{
    if (!t)
        return;
    bs_busy_enter();
    release_unguarded(t);
    bs_busy_leave();
}

static void release_unguarded(struct bs_target *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    /* The last reference: linger, then retire when nothing is pending (after its batch). */
    start_lingering(t);
    if (bs_target_pending(t) == 0 && t->held >= 0 && !lingering(t))
        release_held(t);
    reap();
}

void bs_target_end_lingering(void)
{
    if (atomic_load_explicit(&next_expiry, memory_order_relaxed) == 0 || bs_in_shim ||
        !bs_is_owner())
        return;
    BS_KEEP_ERRNO();
    bs_busy_enter();
    pthread_mutex_lock(&reg_lock);
    for (struct bs_target *t = registry; t; t = t->next)
        if (t->w && atomic_load(&t->refs) == 0)
            atomic_store(&t->linger_until, 0);
    pthread_mutex_unlock(&reg_lock);
    reap();
    bs_busy_leave();
}

void bs_target_tick(void)
{
    uint64_t e = atomic_load_explicit(&next_expiry, memory_order_relaxed);
    if (__builtin_expect(e == 0, 1) || bs_now_ns() < e)
        return;
    BS_KEEP_ERRNO();
    bs_busy_enter();
    reap();
    bs_busy_leave();
}

int bs_target_share_held(struct bs_target *t, int pidfd, int *path_only)
{
    int want_path = *path_only;
    *path_only = 0;
    if (!t->regular || atomic_load(&t->broken) || atomic_load(&t->locked))
        return -EBADF;
    int r = -EBUSY;
    bs_busy_enter(); /* no flushing signal handler while held_lock is held */
    /* A writer thread holds held_lock while it writes through held (it may hang
       there): the program's open does not wait for it, it opens for real. */
    if (pthread_mutex_trylock(&t->held_lock) == 0) {
        r = -EBADF;
        if (held_valid(t) && t->held_fit) {
            *path_only = want_path && t->held_path >= 0;
            r = bs_private_getfd(pidfd, *path_only ? t->held_path : t->held);
        }
        pthread_mutex_unlock(&t->held_lock);
    }
    bs_busy_leave();
    return r;
}

struct bs_target *bs_target_by_path(int dirfd, const char *path, int nofollow)
{
    if (!bs_target_any() || !path)
        return NULL;
    struct stat st;
    int r;
    BS_SAVE_ERRNO(r = BS_REAL(fstatat)(dirfd, path, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0));
    if (r != 0)
        return NULL;
    return bs_target_acquire(st.st_dev, st.st_ino, 0, -1, NULL, 0);
}

void bs_target_flush(struct bs_target *t)
{
    bufshim_writer *w = t ? t->w : NULL;
    if (!w || bs_target_pending(t) == 0)
        return;
    BS_KEEP_ERRNO();
    bs_in_shim++; /* a signal handler's write meanwhile passes through, never deadlocks */
    /* Keep going while the sink makes progress: a barrier wants every byte out. */
    for (int i = 0; i < 64 && bs_target_pending(t) > 0; i++)
        if (bufshim_flush(w) <= 0)
            break;
    bs_in_shim--;
}

/* pthread_atfork hooks of the registry (called by wrap_fork.c's handlers). */
void bs_target_fork_prepare(void)
{
    pthread_mutex_lock(&reg_lock);
}

void bs_target_fork_parent(void)
{
    pthread_mutex_unlock(&reg_lock);
}

/*
 * The child has only the forking thread: locks another thread held are reset,
 * and the engine dropped the bytes buffered before the fork (the parent writes
 * them), so the size bookkeeping starts from nothing pending.
 */
void bs_target_fork_child(void)
{
    pthread_mutex_init(&create_lock, NULL);
    bs_private_fork_child();
    for (struct bs_target *t = registry; t; t = t->next) {
        pthread_mutex_init(&t->held_lock, NULL);
        t->held = -1; /* it was in the parent's private table */
        t->held_path = -1;
        atomic_store(&t->held_pending, 0);
        atomic_store(&t->wr, atomic_load(&t->acc));
        atomic_store(&t->inflight, 0);
        atomic_store(&t->seq, 0);
    }
    pthread_mutex_unlock(&reg_lock);
}

void bs_target_init(void)
{
    bs_owner_reset();
    bs_private_init();
}
