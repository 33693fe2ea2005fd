/* private_fds_i.h - the shim's own descriptors, kept in a table the program cannot see. */
#ifndef BUFSHIM_PRIVATE_FDS_I_H
#define BUFSHIM_PRIVATE_FDS_I_H

#include <sys/types.h>

/*
 * The shim never keeps a descriptor in the program's descriptor table. Its writer
 * threads run with a descriptor table of their own (the first one unshares it,
 * the others inherit it), and every descriptor the shim opens or holds (a batch's
 * open by path, a target's held descriptor) lives there. So the program's
 * /proc/self/fd, its descriptor counts under a lowered RLIMIT_NOFILE and its
 * children see nothing of the shim; closing the shim's descriptors never drops the
 * program's POSIX record locks, which belong to the program's table; and the
 * program's table never grows because of the shim.
 *
 * Functions here that touch the private table must run on a writer thread
 * (bs_engine_call gets there); all keep errno.
 */

/* Installs the writer-thread start hook and the log output (constructor). */
void bs_private_init(void);

/*
 * Generation of the private table: it changes whenever a new table is made (the
 * writer threads all ended, or a forked child started its own), which invalidates
 * every descriptor number kept from the old one.
 */
unsigned bs_private_gen(void);

/* 1 when the writer threads' table is really private (0 if unsharing failed). */
int bs_private_ok(void);

/*
 * On a writer thread: a private descriptor to what the program's descriptor pfd
 * refers to, or -errno. reopen: preferably a new open file description
 * (O_WRONLY|O_APPEND) through /proc, else the program's very description
 * (pidfd_getfd); not reopen: the other way round (sockets cannot be reopened).
 * *shared is set when the result shares the program's description (and its
 * offset). tid: a program thread blocked meanwhile (its table is the program's),
 * or 0.
 */
int bs_private_from_program(int pfd, pid_t tid, int reopen, int *shared);

/*
 * From a program thread: a pidfd, in the program's table at its lowest free number,
 * of a writer thread alive now (PIDFD_THREAD: pidfd_getfd through it reaches the
 * private table), or -errno (no writer thread, or a kernel before Linux 6.9).
 */
int bs_private_thread_pidfd(void);

/* pidfd_getfd(pidfd, privfd): a copy of the private table's privfd in the caller's table
   (close-on-exec, at its lowest free number), or -errno. */
int bs_private_getfd(int pidfd, int privfd);

/* In a forked child: no writer thread of the parent's is ours. */
void bs_private_fork_child(void);

#endif /* BUFSHIM_PRIVATE_FDS_I_H */
