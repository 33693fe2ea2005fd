/* process.c - the process the shim works for: its owner, whether it is leaving, whether the shim is
 * on. */
#include "real_i.h"

#include <sys/syscall.h>

#include "config_i.h"
#include "engine_i.h"
#include "process_i.h"

pid_t bs_owner_pid;

int bs_is_owner(void)
{
    return (pid_t)bs_syscall(SYS_getpid) == bs_owner_pid;
}

void bs_owner_reset(void)
{
    bs_owner_pid = (pid_t)bs_syscall(SYS_getpid);
}

atomic_int bs_exiting;
atomic_int bs_dying;

int bs_shim_active(void)
{
    return bs_cfg.active && !bs_engine_is_shut_down();
}
