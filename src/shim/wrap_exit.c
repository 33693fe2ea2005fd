/* wrap_exit.c - leaving the process: main returning, exit, _exit, _Exit, quick_exit. */
#include "real_i.h"

#include <errno.h>
#include <stdatomic.h>

#include "config_i.h"
#include "engine_i.h"
#include "flush_i.h"
#include "process_i.h"

static int (*program_main)(int, char **, char **);

/*
 * Leaving (bs_exiting, process_i.h): the exit's handlers' appends start no writer
 * thread either (the final flush writes them, in this thread, moments later).
 * Known limit: an exit handler that then blocks for good keeps them in memory until
 * the process is killed; a termination signal still flushes them.
 */
static void now_exiting(void)
{
    atomic_store(&bs_exiting, 1);
    if (bs_cfg.active)
        bs_engine_appends_start_no_thread();
}

static int main_then_exit(int argc, char **argv, char **envp)
{
    int r = program_main(argc, argv, envp);
    now_exiting();
    return r;
}

BS_EXPORT int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
                                void (*init)(void), void (*fini)(void), void (*rtld_fini)(void),
                                void *stack_end)
{
    program_main = main;
    return BS_REAL(__libc_start_main)(main ? main_then_exit : main, argc, argv, init, fini,
                                      rtld_fini, stack_end);
}

BS_EXPORT void exit(int status)
{
    if (bs_is_owner()) /* not a vfork child's (wrong) exit: the parent goes on */
        now_exiting();
    BS_REAL(exit)(status);
    __builtin_unreachable();
}

BS_EXPORT void _exit(int status)
{
    bs_shim_before_exit();
    BS_REAL(_exit)(status);
    __builtin_unreachable();
}

BS_EXPORT void _Exit(int status)
{
    bs_shim_before_exit();
    BS_REAL(_Exit)(status);
    __builtin_unreachable();
}

BS_EXPORT void quick_exit(int status)
{
    /* Decision: the final flush happens before the at_quick_exit handlers, whose
       own writes then pass straight through (nothing is left queued at _exit). */
    bs_shim_before_exit();
    BS_REAL(quick_exit)(status);
    __builtin_unreachable();
}
