/* wrap_exec.c - running another program: exec*, posix_spawn*, system, popen. Everything queued
 * is written first; a failed exec carries on buffering. */
#include "real_i.h"

#include <errno.h>
#include <stdarg.h>

#include "descriptors_i.h"
#include "elide_i.h"
#include "target_i.h"
#include "flush_i.h"

BS_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execve)(path, argv, envp);
}

BS_EXPORT int execv(const char *path, char *const argv[])
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execv)(path, argv);
}

BS_EXPORT int execvp(const char *file, char *const argv[])
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execvp)(file, argv);
}

BS_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execvpe)(file, argv, envp);
}

BS_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(fexecve)(fd, argv, envp);
}

BS_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                       int flags)
{
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
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
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execv)(path, (char *const *)argv);
}

BS_EXPORT int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, argv);
    va_end(ap_);
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execvp)(file, (char *const *)argv);
}

BS_EXPORT int execle(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, arg, argv);
    char *const *envp = va_arg(ap_, char *const *);
    va_end(ap_);
    bs_fd_materialize_all(0); /* what the new program inherits */
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(execve)(path, (char *const *)argv, envp);
}

/* --- new processes running another program --- */

BS_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    bs_fd_materialize_all(1); /* file actions may dup2 any of them */
    bs_fd_shared_out();
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(posix_spawn)(pid, path, fa, attr, argv, envp);
}

BS_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    bs_fd_materialize_all(1); /* file actions may dup2 any of them */
    bs_fd_shared_out();
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(posix_spawnp)(pid, file, fa, attr, argv, envp);
}

BS_EXPORT int system(const char *cmd)
{
    bs_fd_materialize_all(0);
    bs_fd_shared_out();
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(system)(cmd);
}

BS_EXPORT FILE *popen(const char *cmd, const char *mode)
{
    bs_fd_materialize_all(0);
    bs_fd_shared_out();
    bs_shim_before_exec();
    bs_target_end_lingering();
    return BS_REAL(popen)(cmd, mode);
}
