/* scheduler_i.h - the writer threads (scheduler.c): what the public API tells them. The
 * jobs (bs_engine_call, bs_engine_submit, ...) and the thread hooks are in engine_i.h. */
#ifndef BUFSHIM_SCHEDULER_I_H
#define BUFSHIM_SCHEDULER_I_H

#include <stdatomic.h>

/*
 * Errno: bs_sched_init and bs_sched_writer_closed keep errno; bs_sched_wake may change it
 * when it starts a thread (pthread_create), whose failure it keeps as state instead
 * (bs_sched_threadless).
 */

/*
 * Sets the scheduler up once: its monotonic clock and its pthread_atfork handlers, which
 * also hold the registry and every writer still across fork (registry_i.h). Called before
 * the first writer is registered and before the first job.
 */
void bs_sched_init(void);

/* Tells the scheduler that a writer's input went from empty to non-empty. */
void bs_sched_wake(void);

/* Set while no writer thread exists and none could be started (appends retry). */
extern atomic_int bs_sched_threadless;

/* Tells the threads that a writer left the registry: with the last one gone they end. */
void bs_sched_writer_closed(void);

#endif /* BUFSHIM_SCHEDULER_I_H */
