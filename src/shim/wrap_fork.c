/* wrap_fork.c - fork and vfork, and the fork handlers of the shim's state. */
#include "real_i.h"

#include <errno.h>
#include <pthread.h>

#include "descriptors_i.h"
#include "engine_i.h"
#include "errno_i.h"
#include "descriptors_i.h"
#include "elide_i.h"
#include "target_i.h"
#include "flush_i.h"
#include "fork_i.h"
#include "process_i.h"
#include "signals_i.h"

/*
 * The fork handlers of the shim's state, registered once by the constructor: the
 * registry's lock and the descriptions' free list are held across fork, so that the
 * child finds them consistent; the child then owns its state (only the forking thread
 * is there).
 */
static void fork_prepare(void)
{
    bs_target_fork_prepare();
    bs_fd_fork_prepare();
}

static void fork_parent(void)
{
    bs_fd_fork_parent();
    bs_target_fork_parent();
}

static void fork_child(void)
{
    bs_owner_reset();
    bs_signals_fork_child();
    bs_fd_fork_child();
    bs_elide_fork_child();
    bs_target_fork_child();
}

void bs_fork_init(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/*
 * fork runs inside the signal guard: from the fork handlers' locking in the
 * parent to their unlocking in the child, a flushing signal (a pool's SIGTERM
 * to a worker that is just being born) must wait, or the child would flush into
 * locks that only its own atfork handler releases.
 */
BS_EXPORT pid_t fork(void)
{
    bs_shim_before_exec();
    bs_target_end_lingering();
    bs_fd_shared_out(); /* the child shares every description */
    bs_busy_enter();
    pid_t pid = BS_REAL(fork)();
    BS_SAVE_ERRNO(bs_busy_leave());
    return pid;
}

/*
 * vfork: the child borrows the caller's stack, so no wrapper frame may be live
 * when the real vfork returns. bs_vfork_prepare flushes and returns the real
 * vfork, which the trampoline below jumps to with the caller's return address
 * untouched. Shim code the child then runs (dup2, close, _exit) sees that its
 * pid is not the owner's and passes straight through.
 */
void *bs_vfork_prepare(void);
void *bs_vfork_prepare(void)
{
    bs_shim_before_exec();
    bs_target_end_lingering();
    /* The child runs without the shim's bookkeeping until it execs: it gets real
       descriptions, whatever it dup2s. */
    bs_fd_materialize_all(1);
    bs_fd_shared_out();
    return (void *)BS_REAL(vfork);
}

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        "vfork:\n"
        "    sub $8, %rsp\n"
        "    call bs_vfork_prepare\n"
        "    add $8, %rsp\n"
        "    jmp *%rax\n"
        ".size vfork, .-vfork\n");
#else
/* Elsewhere vfork is a fork: the same contract for the child, without the sharing. */
BS_EXPORT pid_t vfork(void)
{
    bs_shim_before_exec();
    bs_target_end_lingering();
    bs_fd_shared_out();
    return BS_REAL(fork)();
}
#endif
