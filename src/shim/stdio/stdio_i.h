/* stdio_i.h - what the lifecycle calls in the stdio layer (stdio/). */
#ifndef BUFSHIM_STDIO_I_H
#define BUFSHIM_STDIO_I_H

/* Errno: both functions keep errno. */

/*
 * Replaces the `stdout` and `stderr` variables by diverting streams over fd 1
 * and fd 2 (after flushing the originals) when bs_shim_active(). Call once,
 * from the shim's constructor, after the configuration and the descriptors
 * inherited at start are known. Does nothing when the shim is not active.
 */
void bs_stdio_init(void);

/*
 * Tells the stdio layer that descriptor fd now refers to another open file
 * (dup2/dup3/close+open onto 0, 1 or 2). A std stream that has not been used
 * yet recomputes its buffering mode from the new file, as glibc decides it at
 * the first output. Cheap and safe to call for any fd, at any time.
 */
void bs_stdio_fd_changed(int fd);

#endif /* BUFSHIM_STDIO_I_H */
