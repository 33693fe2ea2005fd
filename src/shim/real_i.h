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

#include <aio.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>
#include <utime.h>
#include <wchar.h>

#include "bufshim.h"
#include "calls_i.h"

/* Errno: resolving keeps errno; a BS_REAL call sets it as the libc function does. */

/*
 * The one export macro: a definition of a wrapped libc name is exported (the default
 * visibility is hidden) at the base version, as is each wrapper the call table lists.
 * It is bufshim.h's BUFSHIM_EXPORT under the shim's prefix; the public API gets its
 * version node from the version script (src/gen_exports.py).
 */
#define BS_EXPORT BUFSHIM_EXPORT

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
int lchmod(const char *path, mode_t mode);
sighandler_t bsd_signal(int sig, sighandler_t handler);
sighandler_t ssignal(int sig, sighandler_t handler);
sighandler_t __sysv_signal(int sig, sighandler_t handler);


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

/*
 * One pointer per call of the table (calls_i.h) that the shim wraps, typed by
 * libc's own declaration: the next definition after the shim's (normally libc's).
 * PASS entries are not wrapped and have none.
 */
#define BS_REAL_MEMBER(name, takes, class, ret, params, args) BS_REAL_MEMBER_##class(name)
#define BS_REAL_MEMBER_WRAPPED(name) __typeof__(name) *name;
#define BS_REAL_MEMBER_WRITE BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_QUERY BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_BARRIER BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_FLUSH BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_LOCK BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_ALL BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_TRACK BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_SIGNAL BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_EXIT BS_REAL_MEMBER_WRAPPED
#define BS_REAL_MEMBER_PASS(name)

/* glibc's program entry (csu/libc-start.c), called by _start; no header declares it. */
int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
                      void (*init)(void), void (*fini)(void), void (*rtld_fini)(void),
                      void *stack_end);
struct bs_real_table {
    BS_CALLS(BS_REAL_MEMBER)
};

extern struct bs_real_table bs_real_fns;

/*
 * Resolves *slot to the next definition of name after the shim (dlsym RTLD_NEXT)
 * and returns it (NULL where libc lacks it). Safe before the constructor ran and
 * from any thread: racing resolvers store the same pointer. errno is preserved.
 */
void *bs_real_resolve(void **slot, const char *name);

/* Points the engine's raw syscall(2) at the real one (constructor). */
void bs_real_init(void);

/*
 * BS_REAL(write)(fd, buf, n): the next definition of write after the shim
 * (normally libc's), resolved on first use. Decision: lazily, one name at a time:
 * a short process calls a handful of the table's functions, and resolving all of
 * them up front cost it more than everything else the shim does at start.
 */
#define BS_REAL(name)                                                                              \
    (*({                                                                                           \
        __typeof__(bs_real_fns.name) f_ = __atomic_load_n(&bs_real_fns.name, __ATOMIC_ACQUIRE);   \
        f_ ? f_ : (__typeof__(f_))bs_real_resolve((void **)&bs_real_fns.name, #name);             \
    }))

/*
 * The thread-local recursion guard: set while the shim itself runs code that may
 * call a wrapped function (dlsym, realpath, the sink); wrappers seeing it pass
 * straight through.
 */
extern __thread int bs_in_shim __attribute__((tls_model("initial-exec")));

#endif /* BUFSHIM_REAL_I_H */
