/* writer_i.h - the writer object, shared by writer.c (API, batches) and scheduler.c (threads). */
#ifndef BUFSHIM_WRITER_I_H
#define BUFSHIM_WRITER_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buffer_i.h"
#include "engine_i.h"
#include "stage_i.h"

#define BS_BATCH_SAMPLES 256

struct bufshim_writer {
    /* Fixed at open. */
    bufshim_sink_fn sink;
    void *ctx;
    void (*ctx_free)(void *ctx);
    uint64_t interval_ns;
    char *name;

    /* Appends reserve and copy without a lock (stage.c); the batch seals and takes the
       staged chunks under lock, which guards everything below. */
    struct bs_stage in;

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
    uint32_t batch_ns_count;

    _Atomic uint64_t accepted; /* bytes appended */
    _Atomic uint64_t consumed; /* bytes the sink consumed */

    /* Registry links, guarded by the scheduler's lock. */
    struct bufshim_writer *next, *prev;
};

/* True when w holds bytes and no batch is in flight. Caller holds w->lock. */
static inline int bs_writer_has_work(const struct bufshim_writer *w)
{
    return !w->in_flight && !w->closing && (bs_stage_has_input(&w->in) || w->out.len > w->out.off);
}

/*
 * Runs one batch of w in the calling thread. The caller has set w->in_flight
 * under w->lock and does not hold the lock. Clears in_flight before returning.
 * Returns what the sink returned (0 when there was nothing to write).
 */
ssize_t bs_writer_run_batch(struct bufshim_writer *w);

/* Adds w to the registry (its first append starts a thread if none runs). Returns 0. */
int bs_sched_register(struct bufshim_writer *w);

/* Removes w from the registry; the last writer out lets the threads exit. */
void bs_sched_unregister(struct bufshim_writer *w);

/*
 * The retry policy of a final write (bufshim_close, and the final flush at exit): a
 * sink that fails is tried BS_FINAL_ATTEMPTS times in all, the attempts its interval
 * but at most BS_FINAL_RETRY_MAX_NS apart, before the loss is reported. Exit and close
 * should not hang on a dead target for long, but one bad moment must not cost data.
 */
#define BS_FINAL_ATTEMPTS 4
#define BS_FINAL_RETRY_MAX_NS 500000000u

/* Tells the scheduler that a writer's input went from empty to non-empty. */
void bs_sched_wake(void);

/* Set while no writer thread exists and none could be started (appends retry). */
extern atomic_int bs_sched_threadless;

/* 1 once bs_engine_shutdown has started. */
extern _Atomic int bs_engine_shutdown_flag;

#endif /* BUFSHIM_WRITER_I_H */
