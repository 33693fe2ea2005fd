/* wrap_lseek.c - lseek and lseek64: positions answered as if queued bytes were written
 * (doc/behaviour.md §4). */
#include "real_i.h"

#include <errno.h>

#include "descriptors_i.h"
#include "elide_i.h"
#include "engine_i.h"
#include "shim_i.h"

/*
 * lseek on a diverted descriptor: lseek(fd, 0, SEEK_CUR), lseek(fd, 0,
 * SEEK_END) and a SEEK_SET to the current end are queries, answered with the
 * virtual end of file and no I/O. Anything else moves the offset: a barrier,
 * after which the descriptor is re-decided (an O_APPEND one stays diverted).
 */
static off64_t do_lseek(int is64, int fd, off64_t off, int whence)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot(fd));
    if (__builtin_expect(!o, 1) || bs_in_shim || !o->t->regular || bs_engine_is_shut_down())
        goto real;
    struct bs_target *t = o->t;
    unsigned f = atomic_load(&o->flags);
    int saved = errno;
    if (f & BS_OFD_DIVERTED) {
        if (whence == SEEK_CUR && off == 0) {
            if ((f & BS_OFD_STALEPOS) && (atomic_load(&o->origin) & BS_ORIGIN_PATH)) {
                errno = saved;
                return 0; /* where a fresh append open is until its first write */
            }
            if (f & BS_OFD_STALEPOS)
                goto real;
            int64_t p = bs_ofd_position(o, fd);
            if (p >= 0) {
                errno = saved;
                return p;
            }
        } else if (whence == SEEK_END && off == 0) {
            int64_t v = bs_target_vsize_fd(t, fd);
            if (v >= 0) {
                /* The description is now at the end: a later write appends. */
                atomic_store(&o->mark, atomic_load(&t->acc));
                if (f & BS_OFD_STALEPOS)
                    atomic_fetch_and(&o->flags, ~BS_OFD_STALEPOS);
                errno = saved;
                return v;
            }
        } else if (whence == SEEK_SET && !(f & BS_OFD_STALEPOS)) {
            if (bs_ofd_position(o, fd) == off) {
                errno = saved;
                return off;
            }
        }
    } else if (whence != SEEK_END) {
        bs_fd_materialize(fd);
        goto real; /* a non-diverted description's own offset does not depend on the queue */
    }
    /* A move (or a SEEK_END on a description that is not diverted): flush first. An
       elided descriptor gets a description of its own first: the move is its alone. */
    bs_fd_materialize(fd);
    bs_target_flush(t);
    bs_fd_sync_offsets(t);
    errno = saved;
    off64_t r = is64 ? BS_REAL(lseek64)(fd, off, whence) : BS_REAL(lseek)(fd, off, whence);
    saved = errno;
    bs_fd_recheck(t);
    errno = saved;
    return r;
real:
    bs_fd_materialize_path(fd); /* an O_PATH description has no offset to ask */
    return is64 ? BS_REAL(lseek64)(fd, off, whence) : BS_REAL(lseek)(fd, off, whence);
}

off_t bs_call_lseek(int fd, off_t offset, int whence)
{
    return do_lseek(0, fd, offset, whence);
}

BS_EXPORT off_t lseek(int fd, off_t offset, int whence)
{
    return do_lseek(0, fd, offset, whence);
}

BS_EXPORT off64_t lseek64(int fd, off64_t offset, int whence)
{
    return do_lseek(1, fd, offset, whence);
}
