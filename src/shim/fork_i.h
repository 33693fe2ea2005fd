/* fork_i.h - the fork handlers of the shim's state (wrap_fork.c). */
#ifndef BUFSHIM_FORK_I_H
#define BUFSHIM_FORK_I_H

/*
 * Registers the pthread_atfork handlers that hold the target registry's lock and the
 * descriptions' free list across fork and reset them in the child. Called once by
 * the constructor, after bs_target_init. Keeps errno.
 */
void bs_fork_init(void);

#endif /* BUFSHIM_FORK_I_H */
