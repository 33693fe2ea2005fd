/* process.c - the process the shim works for: its owner, whether it is leaving, whether the shim is
 * on. */
#include "real_i.h"

#include <sys/syscall.h>

#include "config_i.h"
#include "engine_i.h"
#include "process_i.h"

pid_t bs_owner_pid;
atomic_int bs_owner_doubt;
__thread int bs_owner_thread_doubt __attribute__((tls_model("initial-exec")));

/* 1 in a child made without the fork handlers (its own copy of the memory). */
static int foreign;

int bs_is_owner_slow(void)
{
    if (foreign)
        return 0;
    if ((pid_t)bs_syscall(SYS_getpid) != bs_owner_pid)
        return 0;
    /* A thread back from vfork: its child has exec'd or exited. */
    if (bs_owner_thread_doubt == BS_DOUBT_VFORK)
        bs_owner_thread_doubt = 0;
    return 1;
}

void bs_owner_reset(void)
{
    bs_owner_pid = (pid_t)bs_syscall(SYS_getpid);
    foreign = 0;
    bs_owner_thread_doubt = 0;
    /* No other process shares this one's memory: a fork child's is a copy. */
    atomic_store(&bs_owner_doubt, 0);
}

void bs_owner_foreign(void)
{
    foreign = 1;
    atomic_store(&bs_owner_doubt, 1);
}

atomic_int bs_exiting;
atomic_int bs_dying;

int bs_shim_active(void)
{
    return bs_cfg.active && !bs_engine_is_shut_down();
}
