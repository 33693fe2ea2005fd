/* real_i.h - the table of the real libc functions the shim wraps, resolved once and lazily. */
#ifndef BUFSHIM_REAL_I_H
#define BUFSHIM_REAL_I_H

/*
 * Every shim source includes this header first: it undoes meson's
 * -D_FILE_OFFSET_BITS=64, under which glibc's headers would silently rename our
 * definition of open() to open64() (and fstat, lseek, creat, ...). Each wrapper
 * is then defined under exactly the name programs call, and the 64 names get
 * their own definitions.
 */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <wchar.h>

/* Definitions of wrapped libc names: exported (the default visibility is hidden). */
#define BS_EXPORT __attribute__((visibility("default")))

/*
 * X(name, return type, parameter list). One entry per libc function the shim
 * wraps or must call past its own wrapper. The 64 variants are separate symbols
 * in glibc even where they share the implementation.
 */
#define BS_REAL_FUNCTIONS(X)                                                                       \
    X(write, ssize_t, (int, const void *, size_t))                                                 \
    X(writev, ssize_t, (int, const struct iovec *, int))                                           \
    X(read, ssize_t, (int, void *, size_t))                                                        \
    X(readv, ssize_t, (int, const struct iovec *, int))                                            \
    X(__read_chk, ssize_t, (int, void *, size_t, size_t))                                          \
    X(pread, ssize_t, (int, void *, size_t, off_t))                                                \
    X(pread64, ssize_t, (int, void *, size_t, off64_t))                                            \
    X(__pread_chk, ssize_t, (int, void *, size_t, off_t, size_t))                                  \
    X(__pread64_chk, ssize_t, (int, void *, size_t, off64_t, size_t))                              \
    X(preadv, ssize_t, (int, const struct iovec *, int, off_t))                                    \
    X(preadv64, ssize_t, (int, const struct iovec *, int, off64_t))                                \
    X(preadv2, ssize_t, (int, const struct iovec *, int, off_t, int))                              \
    X(preadv64v2, ssize_t, (int, const struct iovec *, int, off64_t, int))                         \
    X(pwrite, ssize_t, (int, const void *, size_t, off_t))                                         \
    X(pwrite64, ssize_t, (int, const void *, size_t, off64_t))                                     \
    X(pwritev, ssize_t, (int, const struct iovec *, int, off_t))                                   \
    X(pwritev64, ssize_t, (int, const struct iovec *, int, off64_t))                               \
    X(pwritev2, ssize_t, (int, const struct iovec *, int, off_t, int))                             \
    X(pwritev64v2, ssize_t, (int, const struct iovec *, int, off64_t, int))                        \
    X(open, int, (const char *, int, ...))                                                         \
    X(open64, int, (const char *, int, ...))                                                       \
    X(__open_2, int, (const char *, int))                                                          \
    X(__open64_2, int, (const char *, int))                                                        \
    X(openat, int, (int, const char *, int, ...))                                                  \
    X(openat64, int, (int, const char *, int, ...))                                                \
    X(__openat_2, int, (int, const char *, int))                                                   \
    X(__openat64_2, int, (int, const char *, int))                                                 \
    X(creat, int, (const char *, mode_t))                                                          \
    X(creat64, int, (const char *, mode_t))                                                        \
    X(close, int, (int))                                                                           \
    X(close_range, int, (unsigned int, unsigned int, int))                                         \
    X(dup, int, (int))                                                                             \
    X(dup2, int, (int, int))                                                                       \
    X(dup3, int, (int, int, int))                                                                  \
    X(fcntl, int, (int, int, ...))                                                                 \
    X(fcntl64, int, (int, int, ...))                                                               \
    X(lseek, off_t, (int, off_t, int))                                                             \
    X(lseek64, off64_t, (int, off64_t, int))                                                       \
    X(fstat, int, (int, struct stat *))                                                            \
    X(fstat64, int, (int, struct stat64 *))                                                        \
    X(stat, int, (const char *, struct stat *))                                                    \
    X(stat64, int, (const char *, struct stat64 *))                                                \
    X(lstat, int, (const char *, struct stat *))                                                   \
    X(lstat64, int, (const char *, struct stat64 *))                                               \
    X(fstatat, int, (int, const char *, struct stat *, int))                                       \
    X(fstatat64, int, (int, const char *, struct stat64 *, int))                                   \
    X(__fxstat, int, (int, int, struct stat *))                                                    \
    X(__fxstat64, int, (int, int, struct stat64 *))                                                \
    X(__xstat, int, (int, const char *, struct stat *))                                            \
    X(__xstat64, int, (int, const char *, struct stat64 *))                                        \
    X(__lxstat, int, (int, const char *, struct stat *))                                           \
    X(__lxstat64, int, (int, const char *, struct stat64 *))                                       \
    X(__fxstatat, int, (int, int, const char *, struct stat *, int))                               \
    X(__fxstatat64, int, (int, int, const char *, struct stat64 *, int))                           \
    X(statx, int, (int, const char *, int, unsigned int, struct statx *))                          \
    X(fsync, int, (int))                                                                           \
    X(fdatasync, int, (int))                                                                       \
    X(sync_file_range, int, (int, off64_t, off64_t, unsigned int))                                 \
    X(sync, void, (void))                                                                          \
    X(syncfs, int, (int))                                                                          \
    X(ftruncate, int, (int, off_t))                                                                \
    X(ftruncate64, int, (int, off64_t))                                                            \
    X(truncate, int, (const char *, off_t))                                                        \
    X(truncate64, int, (const char *, off64_t))                                                    \
    X(rename, int, (const char *, const char *))                                                   \
    X(renameat, int, (int, const char *, int, const char *))                                       \
    X(renameat2, int, (int, const char *, int, const char *, unsigned int))                        \
    X(unlink, int, (const char *))                                                                 \
    X(unlinkat, int, (int, const char *, int))                                                     \
    X(link, int, (const char *, const char *))                                                     \
    X(linkat, int, (int, const char *, int, const char *, int))                                    \
    X(remove, int, (const char *))                                                                 \
    X(sendfile, ssize_t, (int, int, off_t *, size_t))                                              \
    X(sendfile64, ssize_t, (int, int, off64_t *, size_t))                                          \
    X(splice, ssize_t, (int, off64_t *, int, off64_t *, size_t, unsigned int))                     \
    X(copy_file_range, ssize_t, (int, off64_t *, int, off64_t *, size_t, unsigned int))            \
    X(mmap, void *, (void *, size_t, int, int, int, off_t))                                        \
    X(mmap64, void *, (void *, size_t, int, int, int, off64_t))                                    \
    X(fork, pid_t, (void))                                                                         \
    X(vfork, pid_t, (void))                                                                        \
    X(execve, int, (const char *, char *const[], char *const[]))                                   \
    X(execv, int, (const char *, char *const[]))                                                   \
    X(execvp, int, (const char *, char *const[]))                                                  \
    X(execvpe, int, (const char *, char *const[], char *const[]))                                  \
    X(fexecve, int, (int, char *const[], char *const[]))                                           \
    X(execveat, int, (int, const char *, char *const[], char *const[], int))                       \
    X(posix_spawn, int,                                                                            \
      (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,       \
       char *const[], char *const[]))                                                              \
    X(posix_spawnp, int,                                                                           \
      (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,       \
       char *const[], char *const[]))                                                              \
    X(system, int, (const char *))                                                                 \
    X(popen, FILE *, (const char *, const char *))                                                 \
    X(_exit, void, (int))                                                                          \
    X(_Exit, void, (int))                                                                          \
    X(quick_exit, void, (int))                                                                     \
    X(sigaction, int, (int, const struct sigaction *, struct sigaction *))                         \
    X(signal, sighandler_t, (int, sighandler_t))                                                   \
    X(bsd_signal, sighandler_t, (int, sighandler_t))                                               \
    X(ssignal, sighandler_t, (int, sighandler_t))                                                  \
    X(sysv_signal, sighandler_t, (int, sighandler_t))                                              \
    X(__sysv_signal, sighandler_t, (int, sighandler_t))

/* glibc entry points that its headers declare only under _FORTIFY_SOURCE, or not at all. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t off, size_t buflen);
int __fxstat(int ver, int fd, struct stat *buf);
int __fxstat64(int ver, int fd, struct stat64 *buf);
int __xstat(int ver, const char *path, struct stat *buf);
int __xstat64(int ver, const char *path, struct stat64 *buf);
int __lxstat(int ver, const char *path, struct stat *buf);
int __lxstat64(int ver, const char *path, struct stat64 *buf);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags);
void closefrom(int lowfd);
sighandler_t bsd_signal(int sig, sighandler_t handler);
sighandler_t ssignal(int sig, sighandler_t handler);
sighandler_t __sysv_signal(int sig, sighandler_t handler);


/*
 * The stdio functions the stdio layer (wrap_stdio*.c) calls past its own
 * wrappers: X(name), typed by the declaration in <stdio.h>/<wchar.h>.
 */
#define BS_REAL_STDIO_FUNCTIONS(X)                                                                 \
    X(fopen)                                                                                       \
    X(fopen64)                                                                                     \
    X(fdopen)                                                                                      \
    X(freopen)                                                                                     \
    X(freopen64)                                                                                   \
    X(fwrite)                                                                                      \
    X(fwrite_unlocked)                                                                             \
    X(fputs)                                                                                       \
    X(fputs_unlocked)                                                                              \
    X(fputc)                                                                                       \
    X(fputc_unlocked)                                                                              \
    X(putc)                                                                                        \
    X(putc_unlocked)                                                                               \
    X(putw)                                                                                        \
    X(vfprintf)                                                                                    \
    X(__vfprintf_chk)                                                                              \
    X(__overflow)                                                                                  \
    X(vdprintf)                                                                                    \
    X(__vdprintf_chk)                                                                              \
    X(fflush)                                                                                      \
    X(fflush_unlocked)                                                                             \
    X(setvbuf)                                                                                     \
    X(setbuf)                                                                                      \
    X(setbuffer)                                                                                   \
    X(setlinebuf)                                                                                  \
    X(fileno)                                                                                      \
    X(fileno_unlocked)                                                                             \
    X(ferror)                                                                                      \
    X(ferror_unlocked)                                                                             \
    X(feof)                                                                                        \
    X(feof_unlocked)                                                                               \
    X(clearerr)                                                                                    \
    X(clearerr_unlocked)                                                                           \
    X(__fpending)                                                                                  \
    X(__fbufsize)                                                                                  \
    X(__flbf)                                                                                      \
    X(__fpurge)                                                                                    \
    X(__fwriting)                                                                                  \
    X(fseek)                                                                                       \
    X(fseeko)                                                                                      \
    X(fseeko64)                                                                                    \
    X(ftell)                                                                                       \
    X(ftello)                                                                                      \
    X(ftello64)                                                                                    \
    X(rewind)                                                                                      \
    X(fgetpos)                                                                                     \
    X(fgetpos64)                                                                                   \
    X(fsetpos)                                                                                     \
    X(fsetpos64)                                                                                   \
    X(flockfile)                                                                                   \
    X(funlockfile)                                                                                 \
    X(ftrylockfile)                                                                                \
    X(fopencookie)                                                                                 \
    X(fclose)                                                                                      \
    X(fwide)                                                                                       \
    X(fputwc)                                                                                      \
    X(fputwc_unlocked)                                                                             \
    X(putwc)                                                                                       \
    X(putwc_unlocked)                                                                              \
    X(fputws)                                                                                      \
    X(fputws_unlocked)                                                                             \
    X(vfwprintf)                                                                                   \
    X(__vfwprintf_chk)

/* glibc's FORTIFY entry points, declared by <stdio.h> only under FORTIFY. */
int __fprintf_chk(FILE *fp, int flag, const char *fmt, ...);
int __vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap);
int __dprintf_chk(int fd, int flag, const char *fmt, ...);
int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap);
int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap);
int __fwprintf_chk(FILE *fp, int flag, const wchar_t *fmt, ...);
int __vfwprintf_chk(FILE *fp, int flag, const wchar_t *fmt, va_list ap);
int __wprintf_chk(int flag, const wchar_t *fmt, ...);
int __vwprintf_chk(int flag, const wchar_t *fmt, va_list ap);

#define BS_REAL_MEMBER(name, ret, params) ret(*name) params;
#define BS_REAL_TYPED_MEMBER(name) __typeof__(name) *name;
struct bs_real_table {
    BS_REAL_FUNCTIONS(BS_REAL_MEMBER)
    BS_REAL_STDIO_FUNCTIONS(BS_REAL_TYPED_MEMBER)
};
#undef BS_REAL_MEMBER
#undef BS_REAL_TYPED_MEMBER

extern struct bs_real_table bs_real_fns;
extern int bs_real_ready;

/* Resolves the whole table (once, thread-safe); safe to call before the constructor ran. */
void bs_real_init(void);

/*
 * BS_REAL(write)(fd, buf, n): the next definition of write after the shim
 * (normally libc's). The table is filled on first use, so a wrapper that
 * another library's constructor calls before ours ran still works.
 */
#define BS_REAL(name)                                                                              \
    (*(__atomic_load_n(&bs_real_ready, __ATOMIC_ACQUIRE) ? (void)0 : bs_real_init(),               \
       bs_real_fns.name))

/*
 * The thread-local recursion guard: set while the shim itself runs code that may
 * call a wrapped function (dlsym, realpath, the sink); wrappers seeing it pass
 * straight through.
 */
extern __thread int bs_in_shim __attribute__((tls_model("initial-exec")));

#endif /* BUFSHIM_REAL_I_H */
