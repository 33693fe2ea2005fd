/* wrap_ioctl.c - ioctl: on a target, a barrier whatever the request. */
#include "real_i.h"

#include <stdarg.h>

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
