/* process_i.h - the process the shim works for: who owns its state, whether it is leaving. */
#ifndef BUFSHIM_PROCESS_I_H
#define BUFSHIM_PROCESS_I_H

#include <stdatomic.h>
#include <sys/types.h>

/* Errno: every function here keeps errno. */

/* Process that owns the shim state (a vfork child is not it). */
extern pid_t bs_owner_pid;
int bs_is_owner(void);

/* Makes the calling process the owner (the constructor, a fork child). */
void bs_owner_reset(void);

/*
 * 1 once the process has begun to exit: main returned, or exit was called (set by
 * wrap_exit.c). The exit's own handlers (coreutils' close_stdout, a logger's atexit)
 * then close targets whose bytes the final flush writes moments later, in this
 * thread, by path: such a close needs no descriptor of the shim's kept for a later
 * batch (bs_target_prepare_close), which in a short process would be the only work
 * its writer thread ever did.
 */
extern atomic_int bs_exiting;

/*
 * 1 while the final flush runs for a process dying of a crash (signals.c): nothing may
 * wait for long, since no second signal will come to end a wait that hangs.
 */
extern atomic_int bs_dying;

/* 1 when the configuration is valid and non-empty and the final flush has not run. */
int bs_shim_active(void);

#endif /* BUFSHIM_PROCESS_I_H */
