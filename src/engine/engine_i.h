/* engine_i.h - engine internals shared with the shim and the unit tests (not installed). */
#ifndef BUFSHIM_ENGINE_I_H
#define BUFSHIM_ENGINE_I_H

#include <stdint.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "bufshim.h"

/*
 * Errno. These keep errno: the raw system calls (bs_sys_*, bs_sys_write_all, and
 * bs_write_all_with when its write_once does), bs_log, bs_sleep_ns, bs_now_ns,
 * bs_busy_enter, bs_busy_defer, and the getters bs_writer_name, bs_writer_pending,
 * bs_engine_is_shut_down and bs_engine_thread_here; errors come back as -errno return
 * values. bs_syscall sets errno as syscall(2) does. bs_writer_open_named and
 * bs_writer_open_owned set errno when they return NULL. Every other function here may
 * change errno: it runs sinks, jobs or hooks, allocates, or waits on a futex (the
 * flushes, the final flush, jobs and their waits, bs_writer_stats, and bs_busy_leave
 * when it runs a deferred action). The engine code around them keeps the caller's
 * errno with errno_i.h's helpers where it runs inside the program's calls.
 */

#define BS_DEFAULT_INTERVAL 1.0

/* Counters of one writer since it was opened (for BUFSHIM_STATS and tests). */
struct bs_writer_stats {
    uint64_t bytes;             /* bytes appended */
    uint64_t records;           /* successful bufshim_append calls */
    uint64_t batches;           /* sink calls that consumed at least one byte */
    uint64_t largest_batch;     /* bytes of the largest batch handed to the sink */
    uint64_t peak_buffered;     /* most bytes held (input + output) at once */
    uint64_t failure_episodes;  /* failure episodes started */
    uint64_t batch_ns_p50;      /* median duration of a batch (sink call), ns */
    uint64_t batch_ns_max;      /* longest batch, ns */
};

/*
 * A writer's state for operators (`bufshim status`, BUFSHIM_METRICS): a snapshot. Times
 * "_real" are CLOCK_REALTIME ns (another process reads them), 0 for none. A batch counts as
 * stalled while its write has been in flight for longer than the interval, at least 1 s.
 */
#define BS_BATCH_BUCKETS 6 /* upper bounds bs_batch_bucket_ns[], then +Inf */
extern const uint64_t bs_batch_bucket_ns[BS_BATCH_BUCKETS];
struct bs_writer_status {
    uint64_t held;             /* bytes held now (as bs_writer_pending) */
    uint64_t oldest_real;      /* when the oldest held byte came in (the first call of its
                                  chunk: never later than it), 0 when nothing is held */
    uint64_t bytes;            /* bytes taken from the input by batches */
    uint64_t batches, written; /* batches that wrote bytes, and the bytes they wrote */
    uint64_t last_end_real, last_ns, last_bytes; /* the last batch: end, duration, bytes */
    uint64_t inflight_real;    /* a batch's write began then and has not returned */
    int stalled;               /* that write has been in flight for too long */
    int failing, error;        /* a failure episode and its errno (0 for a stall) */
    uint64_t failing_since_real; /* its start (the stalled write's start for a stall) */
    uint64_t episodes;         /* failure episodes and stalls, the one in progress included */
    uint64_t interval_ns;
    int spooled;               /* its buffers are in a spool (crash-safe) */
    uint64_t bucket[BS_BATCH_BUCKETS + 1]; /* batches by duration (not cumulative) */
    uint64_t batch_sum_ns, batch_count;
};

/* Fills *out with w's state now. Takes w's lock (never held across I/O). Keeps errno. */
void bs_writer_status(bufshim_writer *w, struct bs_writer_status *out);

/* The ctx given at open. */
void *bs_writer_ctx(bufshim_writer *w);

/* CLOCK_REALTIME in nanoseconds. Keeps errno. */
uint64_t bs_real_ns(void);

/*
 * Reports (the shim's status and metrics files): fn() runs on a writer thread, the leader,
 * with no engine lock held, at most once every period_ns and only while writer threads run.
 * It returns 1 when it wants to run again one period later even if no batch is due meanwhile
 * (something is held, in flight or failing), 0 when the next batch may wake it. Set once,
 * before the first writer opens.
 */
void bs_engine_set_report(int (*fn)(void), uint64_t period_ns);

/*
 * Like bufshim_open, but names the writer: the name appears in the stderr lines
 * that report a failure episode. name is copied.
 */
bufshim_writer *bs_writer_open_named(bufshim_sink_fn sink, void *ctx,
                                     const struct bufshim_options *options, const char *name);

/* The same, and ctx_free(ctx) runs when the writer is closed (not when the open fails). */
bufshim_writer *bs_writer_open_owned(bufshim_sink_fn sink, void *ctx, void (*ctx_free)(void *ctx),
                                     const struct bufshim_options *options, const char *name);

/*
 * The same, with w's buffers in a spool (spool_i.h) for the file id names, so that what
 * it holds survives the death of the process: the shim's targets. When spools are off
 * or one cannot be made, an ordinary writer. Its sink brackets each write(2) with
 * bs_writer_io_begin (the file's size before it, UINT64_MAX when unknown, and the length)
 * and bs_writer_io_end (the bytes written, 0 on failure), on the thread running the
 * batch; they keep errno.
 */
struct bs_spool_id;
bufshim_writer *bs_writer_open_spooled(bufshim_sink_fn sink, void *ctx,
                                       const struct bufshim_options *options, const char *name,
                                       const struct bs_spool_id *id);
void bs_writer_io_begin(bufshim_writer *w, uint64_t base, uint64_t len);
void bs_writer_io_end(bufshim_writer *w, uint64_t wrote);

/* Bytes appended to w that the sink has not consumed yet (input + unwritten output); the
 * input not yet taken by a batch counts with its records' padding, up to 7 bytes a call. */
uint64_t bs_writer_pending(bufshim_writer *w);

/* Copies w's counters into *out. */
void bs_writer_stats(bufshim_writer *w, struct bs_writer_stats *out);

/* The name given at open (the path for bufshim_open_file); never NULL. */
const char *bs_writer_name(bufshim_writer *w);

/*
 * Calls fn(w, arg) for every open writer, under the engine's registry lock: fn
 * may read stats and the name but must not open, flush or close writers.
 */
void bs_engine_foreach_writer(void (*fn)(bufshim_writer *w, void *arg), void *arg);

/*
 * Writes every writer's pending bytes now, in the caller's thread, waiting for
 * batches in flight first. Returns 0, or the first negative errno a sink gave.
 */
int bs_engine_flush_all(void);

/*
 * Final flush of every writer; afterwards bufshim_append returns -ESHUTDOWN so
 * that callers write through. Idempotent. Writers stay valid (not freed).
 */
void bs_engine_shutdown(void);

/*
 * The final flush of a process that is dying of a crash: one attempt, and a writer
 * with a batch in flight (which may hang on a dead mount) is left as it is, its loss
 * reported, rather than waited for. Idempotent with bs_engine_shutdown.
 */
void bs_engine_shutdown_now(void);

/* 1 once bs_engine_shutdown has started. */
int bs_engine_is_shut_down(void);

/*
 * Async-signal guard. Engine entry points (and shim code holding its own locks)
 * bracket themselves with bs_busy_enter/leave. A signal handler calls
 * bs_busy_defer(fn, arg): when the interrupted thread is inside such a bracket
 * it returns 1 and fn(arg) runs when the outermost bracket is left; otherwise it
 * returns 0 and the handler may act at once. arg must be non-zero.
 */
void bs_busy_enter(void);
void bs_busy_leave(void);
int bs_busy_defer(void (*fn)(int), int arg);

/*
 * Writer threads as a service. bs_engine_call runs fn(arg) on a writer thread and
 * returns when it has returned (at once, inline, when called on a writer thread);
 * 0, or -errno when no writer thread could be had (fn did not run: the caller may
 * run it itself). Calls are served in order, like due batches: a call that hangs
 * holds up only what waits for it.
 */
int bs_engine_call(void (*fn)(void *arg), void *arg);

/*
 * The same in two steps, the job's memory the caller's until done: submit queues
 * fn(arg) for a writer thread (0, or -errno when none could be had: then it will
 * not run) and returns at once; wait returns once it has run. done is 1 from then
 * on (also in a forked child for a job its parent's threads never ran).
 */
struct bs_job {
    void (*fn)(void *arg);
    void *arg;
    _Atomic uint32_t done; /* a futex word */
    struct bs_job *next;
};
int bs_engine_submit(struct bs_job *job);
void bs_engine_wait(struct bs_job *job);

/* As bs_engine_wait, for at most timeout_ns: 1 when the job has run, 0 when it has not yet. */
int bs_engine_wait_for(struct bs_job *job, uint64_t timeout_ns);

/*
 * After the final flush (bs_engine_shutdown), which leaves no batch to come: the writer
 * threads end as soon as they are idle, while the process goes on with its exit, instead of
 * sleeping until exit_group wakes each one to die, which the exit waits for. That saves a
 * short process that started one about 30 us (bench/short_spawn, 6 rounds of 800 /bin/cat
 * processes: median +0.507 ms before, +0.477 ms after). A job submitted later starts a
 * thread as ever.
 */
void bs_engine_release_threads(void);

/* 1 on one of the engine's writer threads. */
int bs_engine_thread_here(void);

/*
 * From now on an append that finds no writer thread does not start one: its bytes
 * wait for bs_engine_shutdown (or a flush, a job), which the caller promises will
 * come soon. For a process that has begun to exit. Jobs still start a thread.
 */
void bs_engine_appends_start_no_thread(void);

/*
 * hook(inherited) runs on every writer thread before its first work (a job, a batch,
 * starting another thread); inherited is 1 when another writer thread started it
 * (it shares that thread's context), 0 when a thread of the program did. Set once,
 * before the first writer opens.
 */
void bs_engine_set_thread_start(void (*hook)(int inherited));

/*
 * Where bs_log's lines go: out(line, len) instead of fd 2 (the shim's writer threads
 * have no fd 2 of the program's). out must be async-signal-safe.
 */
void bs_log_set_output(void (*out)(const char *line, size_t len));

/* Monotonic clock in nanoseconds. */
uint64_t bs_now_ns(void);

/* Writes a line "bufshim: <fmt...>\n" to fd 2 with raw system calls; errno preserved. */
void bs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * syscall(2) as the engine and the shim call it for themselves: libc's, never a
 * wrapper of it (the shim wraps syscall and sets this to the real one as it
 * starts). Returns -1 with errno set, as syscall does.
 */
extern long (*bs_syscall)(long nr, ...);

/* Raw system calls: never intercepted by the shim's own wrappers. Return -errno. */
ssize_t bs_sys_write(int fd, const void *buf, size_t len);
int bs_sys_open(const char *path, int flags, int mode);
int bs_sys_close(int fd);
int bs_sys_fdatasync(int fd);

/* Writes all of buf (EINTR, short writes): len, or what was written before an error, or -errno. */
ssize_t bs_sys_write_all(int fd, const void *buf, size_t len);

/*
 * The one write-all loop: bs_sys_write_all with each write(2) made by
 * write_once(ctx, fd, buf, len), which returns the bytes written or -errno (for a
 * caller that brackets every single write, as the shim's size bookkeeping does).
 */
typedef ssize_t (*bs_write_once_fn)(void *ctx, int fd, const void *buf, size_t len);
ssize_t bs_write_all_with(bs_write_once_fn write_once, void *ctx, int fd, const void *buf,
                          size_t len);

/* Sleeps ns nanoseconds, resuming after signals; errno preserved. */
void bs_sleep_ns(uint64_t ns);

#endif /* BUFSHIM_ENGINE_I_H */
