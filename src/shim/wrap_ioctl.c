/* wrap_ioctl.c - ioctl: on a target, a barrier whatever the request; the terminal queries of a
 * stand-in descriptor of open elision. */
#include "real_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <termios.h>

#include "barrier_i.h"
#include "descriptors_i.h"
#include "elide_i.h"

/*
 * ioctl: the shim cannot know what a request does (FIONREAD reads the size,
 * FICLONE copies the data, a terminal request waits for output), so on a
 * target it is a barrier whatever the request. The third argument, when there
 * is one, is a single word (an int or a pointer) by the ioctl convention.
 */
BS_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    /* A stand-in O_PATH descriptor of open elision answers for the file it stands for:
       isatty's request as a regular file does, the close-on-exec ones through fcntl (an
       O_PATH description refuses every ioctl). Decision: TCGETS is the one query
       answered without a real open: Python's open() asks it of every file it opens. */
    if (!bs_in_shim && bs_fd_is_path(fd)) {
        if (req == TCGETS) {
            errno = ENOTTY;
            return -1;
        }
        if (req == FIOCLEX || req == FIONCLEX)
            return BS_REAL(fcntl)(fd, F_SETFD, req == FIOCLEX ? FD_CLOEXEC : 0);
    }
    /* Only the close-on-exec requests act on the descriptor rather than its description. */
    if (req != FIOCLEX && req != FIONCLEX && !bs_in_shim) {
        bs_fd_materialize(fd);
        bs_fd_taint(fd);
    }
    struct bs_target *t = bs_barrier_tracked_all(fd);
    int r = BS_REAL(ioctl)(fd, req, arg);
    if (t && r >= 0)
        bs_barrier_redecide(t);
    return r;
}

/*
 * The terminal queries, whose ioctl is glibc's own (no wrapper sees it): on a stand-in
 * O_PATH descriptor of open elision the kernel would say EBADF, a real open of the
 * regular file ENOTTY. Programs ask isatty of every file they open (Python's open does).
 */
BS_EXPORT int isatty(int fd)
{
    if (!bs_in_shim && bs_fd_is_path(fd)) {
        errno = ENOTTY;
        return 0;
    }
    return BS_REAL(isatty)(fd);
}

BS_EXPORT char *ttyname(int fd)
{
    if (!bs_in_shim && bs_fd_is_path(fd)) {
        errno = ENOTTY;
        return NULL;
    }
    return BS_REAL(ttyname)(fd);
}

BS_EXPORT int ttyname_r(int fd, char *buf, size_t len)
{
    if (!bs_in_shim && bs_fd_is_path(fd))
        return ENOTTY;
    return BS_REAL(ttyname_r)(fd, buf, len);
}

BS_EXPORT int tcgetattr(int fd, struct termios *t)
{
    if (!bs_in_shim && bs_fd_is_path(fd)) {
        errno = ENOTTY;
        return -1;
    }
    return BS_REAL(tcgetattr)(fd, t);
}
