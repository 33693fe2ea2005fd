/* process_i.h - the process the shim works for: who owns its state, whether it is leaving. */
#ifndef BUFSHIM_PROCESS_I_H
#define BUFSHIM_PROCESS_I_H

#include <stdatomic.h>
#include <sys/types.h>

/* Errno: every function here keeps errno. */

/*
 * Whether the calling process owns the shim state (a vfork child, or a child made
 * without glibc's fork handlers, does not), without a system call on the fast path.
 *
 * Decision: a child that ran the fork handlers (fork, daemon, a non-x86 vfork)
 * becomes the owner in the child handler (bs_owner_reset). Every other way a child
 * comes to run the shim's code marks a doubt that the wrappers check in memory:
 *   - bs_owner_doubt, process-wide: nonzero in a child that ran no fork handler
 *     (_Fork, clone(3) and syscall(SYS_fork, SYS_clone, SYS_clone3) without CLONE_VM:
 *     the child sets it in its own copy of the memory, bs_owner_foreign), and while a
 *     child that shares the memory may run (clone(3) or syscall(SYS_clone, SYS_clone3)
 *     with CLONE_VM and without CLONE_THREAD). A CLONE_VFORK one is over when the call
 *     returns in the parent, which drops the doubt again; one without CLONE_VFORK may
 *     run as long as it likes, and the doubt stays (the fallback: a getpid per wrapper
 *     call from then on; nothing tells the shim when such a child is gone).
 *   - bs_owner_thread_doubt, the calling thread's: from fork's prepare handler to the
 *     parent or child handler (other libraries' handlers may call wrappers in between,
 *     in the child before the shim's handler made it the owner), and from vfork (libc's,
 *     or syscall(SYS_vfork)) until the thread that called it is back: a vfork child
 *     runs on its parent's thread, with its memory and its thread-local variables, so
 *     it sees the doubt; the parent's other threads do not, and are the owner.
 * With a doubt the answer is the getpid comparison of old; a vfork thread's doubt is
 * dropped by its first call that finds itself the owner again.
 * posix_spawn (and system, popen) makes its child inside glibc, whose calls there do
 * not reach the wrappers: the child only execs, nothing to detect.
 */
extern pid_t bs_owner_pid;
extern atomic_int bs_owner_doubt;
extern __thread int bs_owner_thread_doubt __attribute__((tls_model("initial-exec")));
#define BS_DOUBT_FORK 1  /* inside fork's handlers: cleared by them only */
#define BS_DOUBT_VFORK 2 /* vfork: cleared by the thread's first call back in the parent */

int bs_is_owner_slow(void);

static inline int bs_is_owner(void)
{
    if (__builtin_expect(!bs_owner_thread_doubt &&
                             !atomic_load_explicit(&bs_owner_doubt, memory_order_relaxed),
                         1))
        return 1;
    return bs_is_owner_slow();
}

/* Makes the calling process the owner (the constructor, a fork child). */
void bs_owner_reset(void);

/* Called in a child made without the fork handlers and with its own memory: it is not
   the owner, nor are its threads, until a fork child handler or an exec. */
void bs_owner_foreign(void);

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
