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

/*
 * Scans of the table (bs_fd_sync_offsets, bs_fd_recheck, and the loops of elision and of
 * taking a held descriptor) make system calls on descriptor numbers they loaded from slots,
 * and read the descriptions those slots named. Another
 * thread's close, dup2 or close_range could meanwhile close the number, let the kernel give
 * it to another file, and recycle the description: the scan would then seek that other file
 * to a position it computed from a description reused for a third. So a slot is emptied (or
 * replaced) before the call that closes or replaces its descriptor, and its description is
 * let go, and that call made, only once no scan is running (descriptors.c: drop_slot,
 * bs_fd_detach).
 * Scans are rare (barriers, opens of targets) and short: a close waits only when one runs.
 * A scan's own thread does not wait (a signal handler that closes a descriptor while it
 * interrupted a scan would wait for itself); that one case keeps the old race.
 */
static atomic_int scans;
static __thread int in_scan;

void bs_fdtab_scan_begin(void)
{
    in_scan++;
    atomic_fetch_add(&scans, 1); /* acquire: see bs_fdtab_wait_scans */
}

void bs_fdtab_scan_end(void)
{
    atomic_fetch_sub(&scans, 1);
    in_scan--;
}

/* After a slot was emptied or replaced: returns once no scan that may have loaded its old
   value runs. */
void bs_fdtab_wait_scans(void)
{
    if (in_scan)
        return;
    /* A read-modify-write, not a load: either a scan's increment comes first in the count's
       order (this sees it, and waits), or after this one, whose release then makes the
       emptied slot visible to that scan (it synchronises with the scan's acquire). */
    if (atomic_fetch_add(&scans, 0) == 0)
        return;
    for (int spins = 0; atomic_load(&scans) != 0; spins++)
        if (spins > 64)
            sched_yield();
}
