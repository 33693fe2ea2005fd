/* writer_i.h - one writer: its buffers, its batch, its failure episodes and counters
 * (writer.c). The registry, the scheduler and the public API (api.c, which also holds the
 * opens that register a writer) ask a writer through these functions; none of them reads
 * or sets its fields, except the registry's links. */
#ifndef BUFSHIM_WRITER_I_H
#define BUFSHIM_WRITER_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buffer_i.h"
#include "engine_i.h"
#include "spool_i.h"
#include "stage_i.h"

/*
 * Errno: bs_writer_new sets errno when it fails (it returns NULL, as bufshim_open does).
 * bs_writer_claim_due, bs_writer_pin, bs_writer_unpin, bs_writer_interval_ns,
 * bs_writer_fork_prepare, bs_writer_fork_parent and the final-flush flag keep errno. The
 * others may change it: they allocate or free (appending, bs_writer_free,
 * bs_writer_fork_child), and a batch, and what runs batches, calls the sink. Errors are
 * returned as -errno, never left in errno.
 */

#define BS_BATCH_SAMPLES 256

struct bufshim_writer {
    /* Fixed at open. */
    bufshim_sink_fn sink;
    void *ctx;
    void (*ctx_free)(void *ctx);
    uint64_t interval_ns;
    char *name;

    /* Appends reserve and copy without a lock into *stage (stage.c); the batch seals and
       takes the staged chunks under lock, which guards everything below. The stage is
       local, or inside the spool (spool.c) once the first append has made one: until
       then local is a pending stage that sends every append to make_stage. */
    _Atomic(struct bs_stage *) stage;
    struct bs_stage local;
    struct bs_spool *spool;   /* NULL: process memory only */
    int want_spool;           /* make one at the first append (spool_id holds what for) */
    uint64_t spool_dev, spool_ino;
    char *spool_path;
    uint64_t io_done;         /* bytes of out written, during a batch (bs_writer_io_*) */

    pthread_mutex_t lock;
    pthread_cond_t idle;  /* broadcast when in_flight drops to 0 or pins to 0 */
    struct bs_buf out;    /* owned by the batch in flight; leftovers stay first */
    int in_flight;        /* a batch (scheduler thread or flush) owns out */
    int closing;          /* bufshim_close has started: the scheduler leaves it alone */
    int pins;             /* bs_engine_flush_all holds it; close waits for 0 */
    uint64_t next_due_ns; /* earliest start of the next batch */

    /* Failure episode. */
    int failing;
    int episode_error;
    uint64_t episode_attempts;

    /* Counters (under lock). */
    uint64_t bytes, records, batches, largest_batch, peak_buffered, failure_episodes;
    uint64_t batch_ns_max;
    uint32_t batch_ns_ring[BS_BATCH_SAMPLES];
    uint64_t batch_ns_count; /* batches timed: also the histogram's count */

    /* What operators see (bs_writer_status), under lock but stage_first: the first call
       of a chunk since the last seal stores its arrival there when it is 0 (one clock
       read per chunk, no read-modify-write); the seal moves it to out_first. */
    _Atomic uint64_t stage_first;
    uint64_t out_first; /* arrival of the oldest byte in out, 0 when out is empty */
    uint64_t inflight_real, last_end_real, last_ns, last_bytes, episode_since_real, stalls;
    uint64_t bucket[BS_BATCH_BUCKETS + 1], batch_sum_ns;

    _Atomic uint64_t accepted; /* bytes appended */
    _Atomic uint64_t consumed; /* bytes the sink consumed */

    /* The registry's links (registry.c), guarded by the registry's lock. */
    struct bufshim_writer *next, *prev;
};

/*
 * A new writer, not registered yet: the sink, its context (ctx_free(ctx) runs when the
 * writer is freed, unless NULL), the interval of the options, a copy of name ("sink"
 * when NULL). Its first batch is due one interval from now. NULL with errno set on failure.
 */
struct bufshim_writer *bs_writer_new(bufshim_sink_fn sink, void *ctx, void (*ctx_free)(void *ctx),
                                     const struct bufshim_options *options, const char *name);

/* Asks for w's buffers to be in a spool for id (made at the first append; when that fails,
 * or spools are off, w keeps them in process memory). Before w is registered. Returns 0
 * or -ENOMEM. */
int bs_writer_want_spool(struct bufshim_writer *w, const struct bs_spool_id *id);

/* The final flush has written everything w held: its spool is removed. */
void bs_writer_retire_spool(struct bufshim_writer *w);

/* Frees w and its buffers, and calls its ctx_free. w is out of the registry, nothing in flight. */
void bs_writer_free(struct bufshim_writer *w);

/*
 * Appends len bytes without waiting for I/O. Returns 1 when they are in (*first is set
 * when they are the first of their chunk: the scheduler may be asleep with nothing due),
 * 0 for len 0, -EINVAL for a NULL w (or NULL data with a length), -ESHUTDOWN once the
 * final flush has sealed w, or -ENOMEM.
 */
int bs_writer_append(struct bufshim_writer *w, const void *data, size_t len, int *first);

/*
 * Asks w whether a batch is due at now: when w holds bytes, no batch is in flight, it is
 * not closing and its due time has come, claims the batch (bs_writer_run_batch's
 * precondition) and returns 1. Otherwise returns 0, lowering *next_ns to w's due time
 * when w holds bytes that are not due yet. Takes w's lock.
 */
int bs_writer_claim_due(struct bufshim_writer *w, uint64_t now, uint64_t *next_ns);

/*
 * Runs one batch of w in the calling thread. The caller has claimed it (by
 * bs_writer_claim_due, or as bs_writer_flush does) and does not hold w's lock. Releases
 * the claim before returning. Returns what the sink returned (0 when there was nothing
 * to write).
 */
ssize_t bs_writer_run_batch(struct bufshim_writer *w);

/*
 * Writes what w holds now in the calling thread, waiting for a batch in flight first
 * (bufshim_flush without the signal guard). Returns the bytes written, or -errno when
 * the sink failed before any.
 */
ssize_t bs_writer_flush(struct bufshim_writer *w);

/* As bs_writer_flush, but -EBUSY at once when a batch of w is in flight. */
ssize_t bs_writer_flush_nowait(struct bufshim_writer *w);

/*
 * The final write of bufshim_close: marks w closing (the scheduler leaves it alone),
 * waits until no flush-all holds it, then writes everything, retried as BS_FINAL_ATTEMPTS
 * says, reporting a loss on stderr. Returns 0, or the sink's last -errno (-EIO when it
 * made no progress without an error).
 */
int bs_writer_finish(struct bufshim_writer *w);

/* Holds w open across a flush-all: 1, or 0 when w is closing (then it is not held). */
int bs_writer_pin(struct bufshim_writer *w);
void bs_writer_unpin(struct bufshim_writer *w);

/* The interval between w's batches, in ns. */
uint64_t bs_writer_interval_ns(struct bufshim_writer *w);

/*
 * Fork: prepare takes w's lock, parent releases it. child (in the child, only the forking
 * thread left) drops every byte w holds, which the parent writes (no byte written twice),
 * forgets batches and flush-alls of the parent's threads, and releases the lock.
 */
void bs_writer_fork_prepare(struct bufshim_writer *w);
void bs_writer_fork_parent(struct bufshim_writer *w);
void bs_writer_fork_child(struct bufshim_writer *w);

/*
 * The final flush (bs_engine_shutdown) starts with bs_writer_begin_final: from then on
 * every batch seals its writer closed, so that later appends get -ESHUTDOWN and write
 * through, and no batch gives memory back (the final flush may run in a signal handler).
 * Returns 1 when it had begun already. bs_writer_final_begun: 1 once it has.
 */
int bs_writer_begin_final(void);
int bs_writer_final_begun(void);

/*
 * The retry policy of a final write (bufshim_close, and the final flush at exit): a
 * sink that fails is tried BS_FINAL_ATTEMPTS times in all, the attempts its interval
 * but at most BS_FINAL_RETRY_MAX_NS apart, before the loss is reported. Exit and close
 * should not hang on a dead target for long, but one bad moment must not cost data.
 */
#define BS_FINAL_ATTEMPTS 4
#define BS_FINAL_RETRY_MAX_NS 500000000u

#endif /* BUFSHIM_WRITER_I_H */
