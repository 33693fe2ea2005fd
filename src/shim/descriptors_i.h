/* descriptors_i.h - the program's descriptors as the shim knows them: registered, looked at,
 * copied, forgotten; whether each description is diverted and where its offset virtually is. */
#ifndef BUFSHIM_DESCRIPTORS_I_H
#define BUFSHIM_DESCRIPTORS_I_H

#include <stdint.h>

#include "fdtable_i.h"
#include "target_i.h"

/*
 * Errno: a function here whose comment says "keeps errno" leaves errno as it
 * found it; any other may change it, and a wrapper that must keep the program's
 * errno brackets the call with BS_SAVE_ERRNO (errno_i.h).
 */

/* Looks at fd for the first time (bs_fd_slot's slow path); returns its slot. */
uintptr_t bs_fd_first_look(int fd);

/*
 * The slot of a descriptor the program is using: one array index and one
 * atomic load, plus one bit test for untracked fds; the first use of a
 * descriptor not seen before registers it as an inherited one.
 */
static inline uintptr_t bs_fd_slot(int fd)
{
    uintptr_t s = bs_fd_slot_raw(fd);
    if (__builtin_expect(s != 0, 0) || !bs_fdtab || fd < 0 || fd >= bs_fdtab_cap)
        return s;
    if (__builtin_expect(atomic_load_explicit(&bs_fd_seen[fd >> 6], memory_order_relaxed) &
                             ((uint64_t)1 << (fd & 63)),
                         1))
        return 0;
    return bs_fd_first_look(fd);
}

/* The virtual offset of a diverted description (end of file minus what was appended since). */
int64_t bs_ofd_position(struct bs_ofd *o, int fd);

/*
 * A diverted non-O_APPEND description whose end moved on (another description
 * appended after it): flush, put the kernel offset where the program's offset
 * is, and stop diverting it (its next write overwrites, as the kernel would).
 */
void bs_ofd_lost_end(struct bs_ofd *o, int fd);

/*
 * Registers fd, just opened by the program through path (relative to dirfd), when it
 * refers to a target or matches the configuration. plain: the kernel resolved path
 * without a symbolic link (wrap_open.c), so that its canonical path is path made
 * absolute and folded, without the readlink of /proc/self/fd/N.
 */
void bs_fd_register_open(int fd, int dirfd, const char *path, int plain);

/* Looks at fd afresh (inherited fd, fdopen, dup2 onto 1/2) and registers it. */
void bs_fd_register_existing(int fd);

/*
 * dup2/dup3 onto a tracked fd: empties fd's slot before the call, once no scan can still
 * be using it, and returns what it held (its reference kept, 0 for none). After the call,
 * bs_fd_reattach puts it back when the call failed (keep 1), else lets it go (keep 0).
 */
uintptr_t bs_fd_detach(int fd);
void bs_fd_reattach(int fd, uintptr_t held, int keep);

/* The program's fd is going away: forget it (drops its reference). */
void bs_fd_forget(int fd);

/* newfd is now a duplicate of oldfd: copy the mapping (forgetting newfd's old one). */
void bs_fd_copy(int oldfd, int newfd);

/*
 * fd, the program's, is about to be closed (close, dup2 onto it): when it is the
 * last descriptor of a target with bytes queued, the target keeps a way to its file.
 */
void bs_fd_prepare_close(int fd);

/*
 * Moves the kernel offset of every diverted regular descriptor of t (all
 * targets if t is NULL) to its virtual offset: diverted writes did not move it.
 * Called after a flush, before the kernel uses the offsets (barriers, exec, exit).
 * Keeps errno.
 */
void bs_fd_sync_offsets(struct bs_target *t);

/* Re-decides whether each description of t is diverted, from the kernel's offsets
   (after a truncate, a moving seek, a read). Keeps errno. */
void bs_fd_recheck(struct bs_target *t);

/* Re-decides fd's description only (after a read or a seek moved its offset); keeps
   errno, as bs_fd_recheck does. */
void bs_fd_recheck_one(int fd);

/* Looks at fd afresh and registers it when it refers to a matching target, unless the
 * shim itself is running (fdopen and the std-stream set-up call it). Keeps errno. */
void bs_fd_rescan(int fd);

/*
 * Set by the stdio layer (bs_stdio_init), which sits above the wrappers that see the
 * change: told that descriptor fd (0, 1 or 2) now refers to another open file.
 */
extern void (*bs_std_fd_changed_hook)(int fd);

/* Calls the stdio layer's hook for a standard descriptor. Keeps errno if the hook does. */
static inline void bs_std_fd_changed(int fd)
{
    void (*hook)(int) = __atomic_load_n(&bs_std_fd_changed_hook, __ATOMIC_ACQUIRE);
    if (fd >= 0 && fd <= 2 && hook)
        hook(fd);
}

/*
 * Counts the moments at which this process's descriptions may have become shared
 * with another process (fork, spawn, passing descriptors over a socket): a
 * description opened before the last one is never kept alive by the shim after
 * the program closed it. bs_fd_shared_out bumps it. Keeps errno.
 */
extern atomic_uint bs_fd_share_gen;
void bs_fd_shared_out(void);

/* Marks fd's description as the program's business (a lock, a lease, new flags, an
   owner): the shim never keeps it alive past the program's close. Keeps errno. */
void bs_fd_taint(int fd);

/*
 * Registers fd, a copy of t's held description that open elision placed in the
 * program's table (t's reference passes to it): diverted, O_APPEND, ELIDED, and PATH
 * when path_only (the copy is of the O_PATH description of the file; open_flags are the
 * program's, for what F_GETFL shows). Returns 0, or -ENOMEM (then the caller still owns
 * the reference). Keeps errno.
 */
int bs_fd_register_elided(int fd, struct bs_target *t, int path_only, int open_flags);

/* 1 when fd is a stand-in O_PATH descriptor of open elision (BS_ORIGIN_PATH). */
static inline int bs_fd_is_path(int fd)
{
    struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
    return __builtin_expect(o != NULL, 0) && (atomic_load(&o->origin) & BS_ORIGIN_PATH);
}

/* F_GETFL as the program would see it: the kernel's, or for a stand-in O_PATH descriptor
   (BS_ORIGIN_PATH) the flags of the append open it stands for. */
int bs_fd_status_flags(int fd);

/* Fork handlers of the descriptions' free list and the first-look lock (run inside wrap_fork.c's
   pthread_atfork handlers). */
void bs_fd_fork_prepare(void);
void bs_fd_fork_parent(void);
void bs_fd_fork_child(void);

#endif /* BUFSHIM_DESCRIPTORS_I_H */
