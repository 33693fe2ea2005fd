/* shim_i.h - bs_call_*: a descriptor call made as the program's own call would be under the
 * shim, for the stdio layer (not installed). */
#ifndef BUFSHIM_SHIM_I_H
#define BUFSHIM_SHIM_I_H

#include <stddef.h>
#include <sys/types.h>

#include "descriptors_i.h" /* bs_fd_rescan */
#include "process_i.h"     /* bs_shim_active */

/*
 * Contract between the wrappers and the stdio layer above them (stdio/). The stdio
 * layer never calls libc's write/lseek/read/close for a stream's descriptor itself:
 * it calls these, which behave exactly as the program's own call of the same name
 * would under the shim (divert, barrier, pass through). Each is defined next to the
 * wrapper of its call: wrap_write.c, wrap_read.c, wrap_lseek.c, wrap_open.c.
 * Errno: none touches errno on success; on failure each sets it as the program's
 * call would. (bs_shim_active and bs_fd_rescan, which the stdio layer also uses,
 * keep it.)
 */

/* As write(2) under the shim: diverted bytes are buffered and len is returned. */
ssize_t bs_call_write(int fd, const void *buf, size_t len);

/*
 * Writes buf with bs_call_write as glibc's stdio writes a stream's buffer
 * (_IO_new_file_write): over short writes, stopping at the first error or write of
 * 0 (no retry of EINTR, errno as that write left it). Returns the bytes written.
 */
size_t bs_call_write_all(int fd, const void *buf, size_t len);

/* As read(2) under the shim: a barrier on a target, then the real read. */
ssize_t bs_call_read(int fd, void *buf, size_t len);

/* As lseek(2) under the shim: position queries answered virtually, moves are barriers. */
off_t bs_call_lseek(int fd, off_t offset, int whence);

/* As close(2) under the shim: forgets the descriptor, then closes it. */
int bs_call_close(int fd);

/*
 * As open(2)/openat(2) under the shim: opens with the real call, then registers
 * the descriptor when its path matches. Returns the fd or -1 with errno set.
 */
int bs_call_openat(int dirfd, const char *path, int flags, mode_t mode);

#endif /* BUFSHIM_SHIM_I_H */
