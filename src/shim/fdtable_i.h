/* fdtable_i.h - the descriptor table: one slot per program descriptor, naming its open file
 * description (the bottom of the shim core: it uses nothing of the shim). */
#ifndef BUFSHIM_FDTABLE_I_H
#define BUFSHIM_FDTABLE_I_H

#include <stdatomic.h>
#include <stdint.h>

/* Errno: bs_fdtab_init may change errno; nothing else here touches it. */

struct bs_target;

/*
 * One open file description of a target (what open() creates and dup() shares):
 * whether its writes are diverted and where its offset virtually is. Shared by
 * every descriptor duplicated from it, like the kernel's.
 */
struct bs_ofd {
    _Alignas(16) struct bs_target *t; /* holds one reference */
    atomic_uint flags;                /* BS_OFD_* */
    /*
     * t->acc right after this description's last diverted write (or when it was
     * last known to be at the end): its virtual offset is the virtual end of
     * file minus the bytes appended since, (t->acc - mark).
     */
    _Atomic uint64_t mark;
    atomic_int refs;    /* descriptors sharing it */
    atomic_uint origin; /* BS_ORIGIN_* */
    unsigned gen;       /* bs_fd_share_gen when this process opened it */
    struct bs_ofd *next_free;
};

#define BS_OFD_DIVERTED 1u /* writes are appended through the engine */
#define BS_OFD_APPEND 2u   /* O_APPEND, or not a regular file: writes go to the end anyway */
#define BS_OFD_STALEPOS 4u /* O_APPEND, not yet written: the offset is the kernel's */
#define BS_OFD_WRITABLE 8u /* open for writing (a read-only one is only a barrier) */
#define BS_OFD_NOFOLLOW 16u /* a stand-in (BS_ORIGIN_PATH) for an open with O_NOFOLLOW */

/* O_LARGEFILE as the kernel sets it (0 in glibc's 64-bit headers): F_GETFL shows it. */
#define BS_KERNEL_O_LARGEFILE 0100000

/*
 * Where a description came from (bs_ofd.origin). ELIDED: an open the shim answered
 * without opening (doc/behaviour.md §3): the descriptor shares the target's held
 * description, and turns into a real open of its own before anything that needs a
 * private description (bs_fd_materialize). OWN: opened by this process through a
 * wrapper; TAINTED: given a lock, a lease, flags or an owner of the program's, or sent
 * away, so that the shim must never keep it alive after the program closed it.
 */
#define BS_ORIGIN_ELIDED 1u
#define BS_ORIGIN_OWN 2u
#define BS_ORIGIN_TAINTED 4u
/*
 * PATH (with ELIDED): the program's descriptor is an O_PATH description of the file, a
 * stand-in for the O_WRONLY|O_APPEND one a real open would have made. Its close costs
 * the drive nothing (closing any descriptor of a FUSE file is a FLUSH round trip, and
 * a shell's `>>` closes two per command). Diverted writes never reach it; what would
 * reach the kernel through it turns it into a real open first (bs_fd_materialize_path),
 * and the queries a real one answers without its description are answered for it:
 * F_GETFL (bs_fd_status_flags), a non-moving seek, isatty. doc/behaviour.md §3.
 */
#define BS_ORIGIN_PATH 8u

/* A slot is a struct bs_ofd pointer, or 0 for a descriptor the shim does not track. */
extern _Atomic(uintptr_t) *bs_fdtab;
extern int bs_fdtab_cap;
extern atomic_int bs_fdtab_max; /* highest fd ever given a slot */

/*
 * Descriptors the program had before the shim started, or got by a call the shim
 * does not wrap, are looked at when first used rather than all at start: a short
 * process pays for the descriptors it touches, not for a scan of /proc/self/fd
 * with a readlink each. bs_fd_seen has one bit per descriptor number, set once
 * the shim knows what the number holds (looked at, opened through a wrapper, or
 * closed); a clear bit with an empty slot means "not looked at yet".
 */
extern _Atomic uint64_t *bs_fd_seen;

/* The slot of fd as it stands, without a first look: for loops over the table
   and for descriptors about to be replaced. */
static inline uintptr_t bs_fd_slot_raw(int fd)
{
    _Atomic(uintptr_t) *t = bs_fdtab;
    if (!t || fd < 0 || fd >= bs_fdtab_cap)
        return 0;
    return atomic_load_explicit(&t[fd], memory_order_acquire);
}

/* Marks fd's number as known to the shim (see bs_fd_seen). */
static inline void bs_fd_mark_seen(int fd)
{
    if (bs_fd_seen && fd >= 0 && fd < bs_fdtab_cap)
        atomic_fetch_or_explicit(&bs_fd_seen[fd >> 6], (uint64_t)1 << (fd & 63),
                                 memory_order_release);
}

/* The description behind a program descriptor's slot, or NULL (untracked). */
static inline struct bs_ofd *bs_slot_ofd(uintptr_t s)
{
    return (struct bs_ofd *)s;
}

/* Maps the table (constructor). Returns 0 or -errno. */
int bs_fdtab_init(void);

/*
 * A scan of the table (a loop that makes system calls on the numbers it finds, or reads
 * their descriptions) runs between bs_fdtab_scan_begin and bs_fdtab_scan_end: while one
 * runs, no descriptor is closed or replaced through a wrapper, and no description is
 * recycled. Whoever empties or replaces a slot calls bs_fdtab_wait_scans after the swap and
 * before the call that closes the descriptor, or before letting the description go
 * (descriptors.c). fdtable.c says why.
 */
void bs_fdtab_scan_begin(void);
void bs_fdtab_scan_end(void);
void bs_fdtab_wait_scans(void);

/* Sets fd's slot; returns the old one. The caller owns the references involved. */
uintptr_t bs_fdtab_swap(int fd, uintptr_t slot);

#endif /* BUFSHIM_FDTABLE_I_H */
