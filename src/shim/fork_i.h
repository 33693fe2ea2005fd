/* fork_i.h - the fork handlers of the shim's state (wrap_fork.c). */
#ifndef BUFSHIM_FORK_I_H
#define BUFSHIM_FORK_I_H

/*
 * Registers the pthread_atfork handlers that hold the target registry's lock and the
 * descriptions' free list across fork and reset them in the child. Called once by
 * the constructor, after bs_target_init. Keeps errno.
 */
void bs_fork_init(void);

/*
 * Around a clone (clone(3), syscall(SYS_clone) or SYS_clone3) with these flags:
 * prepare flushes and marks what the child shares as for fork or vfork and raises the
 * owner doubt for a child in this memory; done, with the call's result (0 in a child
 * that returns through the caller), lowers it again or marks the child as not the
 * owner (process_i.h). A thread (CLONE_THREAD) needs neither.
 */
void bs_clone_prepare(unsigned long flags);
void bs_clone_done(unsigned long flags, long ret);

#endif /* BUFSHIM_FORK_I_H */
