/* registry_i.h - the list of open writers (registry.c): what flush-all, the final flush,
 * the statistics and the scheduler walk. bs_engine_flush_all, bs_engine_shutdown,
 * bs_engine_is_shut_down and bs_engine_foreach_writer (engine_i.h) live there too. */
#ifndef BUFSHIM_REGISTRY_I_H
#define BUFSHIM_REGISTRY_I_H

#include <stdint.h>

#include "writer_i.h"

/*
 * Errno: every function here keeps errno except bs_registry_fork_child, which may change
 * it (the writers free what they held, writer_i.h). Errors are returned, never left in
 * errno.
 *
 * Lock: the registry's own, taken after the scheduler's and before a writer's.
 */

/* Adds w to the registry. */
void bs_registry_add(struct bufshim_writer *w);

/* Removes w from the registry (the scheduler is told separately: bs_sched_writer_closed). */
void bs_registry_remove(struct bufshim_writer *w);

/* The number of writers in the registry. */
int bs_registry_count(void);

/*
 * Asks every writer whether its batch is due at now (bs_writer_claim_due) and returns
 * the first that is, claimed; or NULL, with *next_ns the earliest due time of the
 * writers that hold bytes (UINT64_MAX when none does).
 */
struct bufshim_writer *bs_registry_claim_due(uint64_t now, uint64_t *next_ns);

/*
 * Fork: prepare takes the registry's lock and every writer's, parent releases them,
 * child resets every writer (bs_writer_fork_child) and releases them. The scheduler's
 * pthread_atfork handlers call these inside its own lock.
 */
void bs_registry_fork_prepare(void);
void bs_registry_fork_parent(void);
void bs_registry_fork_child(void);

#endif /* BUFSHIM_REGISTRY_I_H */
