/* wrap_mmap.c - mmap and mmap64: a mapping of a target must see its bytes. */
#include "real_i.h"

#include <sys/mman.h>

#include "barrier_i.h"

/* Decision: any mapping of a target flushes it, read-only ones too (they must see the bytes). */
BS_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        bs_barrier_tracked(fd);
    return BS_REAL(mmap)(addr, len, prot, flags, fd, off);
}

BS_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        bs_barrier_tracked(fd);
    return BS_REAL(mmap64)(addr, len, prot, flags, fd, off);
}
