/* lifecycle.c - start (config), final flush, and flushes before
 * exit/exec/fork. */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "config_i.h"
#include "engine_i.h"
#include "fdtable_i.h"
#include "shim_i.h"
#include "stdio_i.h"
#include "signals_i.h"

/* The stdio layer is a separate part: weak, so that the core links without it. */
#pragma weak bs_stdio_init

/*
 * Another copy of the library ahead of this one (LD_PRELOAD naming two paths, or a
 * program linked with one and preloaded with another): its wrappers see every
 * call first. Decision: this copy stays inert, its wrappers pass straight on, so
 * that no byte is buffered twice and the shims' own I/O never loops through both.
 */
static int another_copy_first(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "bufshim_flush");
    if (!sym)
        return 0;
    /* Compared by object: within this copy, bufshim_flush itself would resolve to the
       first copy's too. _dl_find_object (glibc >= 2.35) is a lookup in a sorted table;
       dladdr, the fallback, also searches the object's symbols (about 10 us here). */
    struct dl_find_object first, mine;
    if (_dl_find_object(sym, &first) == 0 && _dl_find_object((void *)another_copy_first, &mine) == 0)
        return first.dlfo_link_map != mine.dlfo_link_map;
    Dl_info a, b;
    return dladdr(sym, &a) && dladdr((void *)another_copy_first, &b) && a.dli_fbase != b.dli_fbase;
}

/* Runs before main (after the libraries we depend on); wrappers pass through until it is done. */
__attribute__((constructor)) static void bs_shim_start(void)
{
    int saved = errno;
    bs_real_init();
    bs_config_load();
    if (bs_cfg.active && another_copy_first()) {
        if (bs_cfg.debug)
            bs_log("another copy of libbufshim is loaded ahead of this one; this one stays out "
                   "of the way");
        bs_cfg.active = 0;
    }
    if (bs_cfg.active) {
        if (bs_fdtab_init() < 0) {
            bs_log("cannot map the descriptor table; buffering is off");
            bs_cfg.active = 0;
        } else {
            bs_target_init();
            /* Inherited descriptors are looked at when first used (bs_fd_slot);
               the std streams' set-up looks at 1 and 2 now. */
            if (bs_stdio_init)
                bs_stdio_init();
            bs_signals_init();
        }
    }
    errno = saved;
}

/*
 * Final flush: runs from _dl_fini, after the program's atexit handlers. stdio
 * buffers that glibc flushes after destructors then find every descriptor in
 * pass-through, at its end of file (doc/behaviour.md §9).
 */
__attribute__((destructor)) static void bs_shim_stop(void)
{
    if (bs_cfg.active && bs_is_owner())
        bs_shim_final_flush();
}

static void before_exec(void)
{
    if (bs_cfg.active && !bs_in_shim && bs_is_owner())
        bs_shim_flush_all();
}

static void before_exit(void)
{
    if (bs_cfg.active && !bs_in_shim && bs_is_owner())
        bs_shim_final_flush();
}

/* --- leaving the process --- */

/*
 * Set once the process has begun to exit: main returned, or exit was called. The
 * exit's own handlers (coreutils' close_stdout, a logger's atexit) then close
 * targets whose bytes the final flush writes moments later, in this thread, by
 * path: such a close needs no descriptor of the shim's kept for a later batch
 * (bs_target_prepare_close), which in a short process would be the only work
 * its writer thread ever did.
 */
atomic_int bs_exiting;

static int (*program_main)(int, char **, char **);

/*
 * Leaving: the exit's handlers' appends start no writer thread either (the final
 * flush writes them, in this thread, moments later). Known limit: an exit handler
 * that then blocks for good keeps them in memory until the process is killed; a
 * termination signal still flushes them.
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
    before_exit();
    BS_REAL(_exit)(status);
    __builtin_unreachable();
}

BS_EXPORT void _Exit(int status)
{
    before_exit();
    BS_REAL(_Exit)(status);
    __builtin_unreachable();
}

BS_EXPORT void quick_exit(int status)
{
    /* Decision: the final flush happens before the at_quick_exit handlers, whose
       own writes then pass straight through (nothing is left queued at _exit). */
    before_exit();
    BS_REAL(quick_exit)(status);
    __builtin_unreachable();
}

/* --- exec: everything queued is written first; a failed exec carries on buffering --- */

BS_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    before_exec();
    return BS_REAL(execve)(path, argv, envp);
}

BS_EXPORT int execv(const char *path, char *const argv[])
{
    before_exec();
    return BS_REAL(execv)(path, argv);
}

BS_EXPORT int execvp(const char *file, char *const argv[])
{
    before_exec();
    return BS_REAL(execvp)(file, argv);
}

BS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    before_exec();
    return BS_REAL(execvpe)(file, argv, envp);
}

BS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    before_exec();
    return BS_REAL(fexecve)(fd, argv, envp);
}

BS_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                       int flags)
{
    before_exec();
    if (!BS_REAL(execveat)) {
        errno = ENOSYS;
        return -1;
    }
    return BS_REAL(execveat)(dirfd, path, argv, envp, flags);
}

/* Counts the variadic arguments of execl* up to the NULL. */
#define COLLECT_ARGS(arg0, last_named, argv)                                                       \
    size_t argc_ = 1;                                                                              \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, last_named);                                                                  \
        while (va_arg(ap, const char *))                                                           \
            argc_++;                                                                               \
        va_end(ap);                                                                                \
    }                                                                                              \
    const char *argv[argc_ + 1];                                                                   \
    argv[0] = arg0;                                                                                \
    va_list ap_;                                                                                   \
    va_start(ap_, last_named);                                                                     \
    for (size_t i_ = 1; i_ <= argc_; i_++)                                                         \
        argv[i_] = va_arg(ap_, const char *);

BS_EXPORT int execl(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, argv);
    va_end(ap_);
    before_exec();
    return BS_REAL(execv)(path, (char *const *)argv);
}

BS_EXPORT int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, argv);
    va_end(ap_);
    before_exec();
    return BS_REAL(execvp)(file, (char *const *)argv);
}

BS_EXPORT int execle(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, argv);
    char *const *envp = va_arg(ap_, char *const *);
    va_end(ap_);
    before_exec();
    return BS_REAL(execve)(path, (char *const *)argv, envp);
}

/* --- children --- */

/*
 * fork runs inside the signal guard: from the fork handlers' locking in the
 * parent to their unlocking in the child, a flushing signal (a pool's SIGTERM
 * to a worker that is just being born) must wait, or the child would flush into
 * locks that only its own atfork handler releases.
 */
BS_EXPORT pid_t fork(void)
{
    before_exec();
    bs_busy_enter();
    pid_t pid = BS_REAL(fork)();
    int saved = errno;
    bs_busy_leave();
    errno = saved;
    return pid;
}

BS_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_exec();
    return BS_REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
}

BS_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    before_exec();
    return BS_REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
}

BS_EXPORT int system(const char *cmd)
{
    before_exec();
    return BS_REAL(system)(cmd);
}

BS_EXPORT FILE *popen(const char *cmd, const char *mode)
{
    before_exec();
    return BS_REAL(popen)(cmd, mode);
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
    before_exec();
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
    before_exec();
    return BS_REAL(fork)();
}
#endif
