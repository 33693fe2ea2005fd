/* signal_guard.c - lets asynchronous signal handlers know when they must not take engine locks. */
#include <signal.h>
#include <stdatomic.h>

#include "engine_i.h"

/*
 * A handler that wants to flush (SIGTERM at its default action, say) must not
 * wait for a lock or a batch that the interrupted thread itself holds. The
 * engine's entry points count their depth per thread; a handler that finds the
 * count non-zero records the action instead, and the outermost entry point runs
 * it on the way out.
 */
static __thread int busy_depth __attribute__((tls_model("initial-exec")));
static __thread volatile sig_atomic_t deferred_arg __attribute__((tls_model("initial-exec")));
static void (*volatile deferred_fn)(int);

void bs_busy_enter(void)
{
    busy_depth++;
    atomic_signal_fence(memory_order_seq_cst);
}

void bs_busy_leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    if (--busy_depth == 0 && deferred_arg) {
        int arg = deferred_arg;
        deferred_arg = 0;
        void (*fn)(int) = deferred_fn;
        if (fn)
            fn(arg);
    }
}

int bs_busy_defer(void (*fn)(int), int arg)
{
    if (busy_depth == 0)
        return 0;
    deferred_fn = fn;
    deferred_arg = arg;
    return 1;
}
