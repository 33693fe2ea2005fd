/* wrap_fork.c - fork and vfork, and the fork handlers of the shim's state. */
#include "real_i.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

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
    /* Until the parent or child handler: in the child, other libraries' child handlers
       may call wrappers before the shim's made it the owner (process_i.h). */
    bs_owner_thread_doubt = BS_DOUBT_FORK;
    bs_target_fork_prepare();
    bs_fd_fork_prepare();
}

static void fork_parent(void)
{
    bs_fd_fork_parent();
    bs_target_fork_parent();
    bs_owner_thread_doubt = 0;
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

/* Before a child with a copy of the memory and a share of every description (fork, _Fork,
   a non-x86 vfork): the queued bytes land first, nothing lingers, and the descriptions count
   as shared out. */
static void before_copy_child(void)
{
    bs_shim_before_exec();
    bs_target_end_lingering();
    bs_fd_shared_out(); /* the child shares every description */
}

/*
 * fork runs inside the signal guard: from the fork handlers' locking in the
 * parent to their unlocking in the child, a flushing signal (a pool's SIGTERM
 * to a worker that is just being born) must wait, or the child would flush into
 * locks that only its own atfork handler releases.
 */
BS_EXPORT pid_t fork(void)
{
    before_copy_child();
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
    /* The child runs on this thread and sees this; the thread's first wrapper call back
       in the parent drops it (process_i.h). */
    bs_owner_thread_doubt = BS_DOUBT_VFORK;
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
    before_copy_child();
    return BS_REAL(fork)();
}
#endif

/*
 * _Fork (glibc 2.34): a fork without the fork handlers, so its child is not made the
 * owner; it passes through, as it did when the shim told it by its pid. The parent's
 * queued bytes land first, as for fork.
 */
BS_EXPORT pid_t _Fork(void)
{
    before_copy_child();
    bs_owner_thread_doubt = BS_DOUBT_FORK; /* the child's memory is a copy of this */
    pid_t pid = BS_REAL(_Fork)();
    if (pid == 0)
        bs_owner_foreign();
    else
        bs_owner_thread_doubt = 0;
    return pid;
}

void bs_clone_prepare(unsigned long flags)
{
    if (!(flags & CLONE_FILES))
        bs_fd_shared_out(); /* the child shares every description */
    if ((flags & CLONE_VM) && !(flags & CLONE_FILES))
        bs_fd_materialize_all(1); /* a vfork-like child: no bookkeeping of its own */
    if (!(flags & CLONE_THREAD))
        bs_shim_flush_all(); /* before the child's own writes, as for fork and vfork */
    if (!(flags & CLONE_FILES))
        bs_target_end_lingering();
    if ((flags & CLONE_VM) && !(flags & CLONE_THREAD))
        atomic_fetch_add(&bs_owner_doubt, 1); /* a child in this memory may run shim code */
}

void bs_clone_done(unsigned long flags, long ret)
{
    if (flags & CLONE_THREAD)
        return;
    if (ret == 0 && !(flags & CLONE_VM))
        bs_owner_foreign(); /* the child, in its own copy */
    else if (ret != 0 && (flags & CLONE_VM) && ((flags & CLONE_VFORK) || ret < 0))
        atomic_fetch_sub(&bs_owner_doubt, 1); /* the child has exec'd or exited, or none was made */
}

/* clone(3) without CLONE_VM: the child starts here, in its own copy of the memory. */
struct clone_start {
    int (*fn)(void *);
    void *arg;
};

static int clone_child(void *p)
{
    struct clone_start *s = p;
    bs_owner_foreign();
    return s->fn(s->arg);
}

/*
 * clone(3): a child made without the fork handlers. Without CLONE_VM it is told in its
 * first instruction that it is not the owner; with CLONE_VM (not a thread) the doubt of
 * process_i.h holds while it may run. The optional arguments are passed on as glibc
 * takes them, whether the flags use them or not.
 */
BS_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    pid_t *ptid = va_arg(ap, pid_t *);
    void *tls = va_arg(ap, void *);
    pid_t *ctid = va_arg(ap, pid_t *);
    va_end(ap);
    unsigned long f = (unsigned)flags;
    if (bs_in_shim || (f & CLONE_THREAD))
        return BS_REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
    bs_clone_prepare(f);
    struct clone_start s = {fn, arg}; /* copied into the child with the stack */
    int r = (f & CLONE_VM) ? BS_REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid)
                           : BS_REAL(clone)(clone_child, stack, flags, &s, ptid, tls, ctid);
    BS_SAVE_ERRNO(bs_clone_done(f, r));
    return r;
}
