/* fdtable.c - the descriptor table: one slot per program descriptor, each naming its description.
 */
#include "real_i.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "fdtable_i.h"

/*
 * One slot per descriptor number. Decision: 2^20 slots (8 MiB of address
 * space); descriptors above that are never diverted. A lookup is one index and
 * one atomic load. calloc of this size is a fresh anonymous mapping that costs
 * nothing until touched (and, unlike a bare mmap, leak checkers scan it).
 */
#define FDTAB_CAP (1 << 20)

_Atomic(uintptr_t) *bs_fdtab;
_Atomic uint64_t *bs_fd_seen;
int bs_fdtab_cap;
atomic_int bs_fdtab_max = -1;

int bs_fdtab_init(void)
{
    void *m = calloc(FDTAB_CAP, sizeof(uintptr_t));
    /* Bits, no pointers: a bare mapping, zero and untouched until used (a calloc of
       this size would come from the heap and be cleared page by page at start). */
    void *seen =
        mmap(NULL, FDTAB_CAP / 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!m || seen == MAP_FAILED) {
        free(m);
        if (seen != MAP_FAILED)
            munmap(seen, FDTAB_CAP / 8);
        return -ENOMEM;
    }
    bs_fd_seen = seen;
    bs_fdtab_cap = FDTAB_CAP;
    bs_fdtab = m;
    return 0;
}

static void note_max(int fd)
{
    int m = atomic_load(&bs_fdtab_max);
    while (fd > m && !atomic_compare_exchange_weak(&bs_fdtab_max, &m, fd))
        ;
}

uintptr_t bs_fdtab_swap(int fd, uintptr_t slot)
{
    if (!bs_fdtab || fd < 0 || fd >= bs_fdtab_cap)
        return 0;
    if (slot)
        note_max(fd);
    return atomic_exchange(&bs_fdtab[fd], slot);
}
