/* keeper_link_i.h - the shim's side of the keeper: makes sure one runs for the process's spools,
 * started where the program cannot see it. */
#ifndef BUFSHIM_KEEPER_LINK_I_H
#define BUFSHIM_KEEPER_LINK_I_H

/*
 * Errno: bs_keeper_link_init keeps errno, and so do the two hooks it installs.
 *
 * Registers the engine's spool hooks (the shim's start, once):
 *  - the first spool of a process: when no keeper holds the spool folder's lock, one is
 *    started (detached: not a child of the program, no descriptor of it left in the
 *    program's table, no signal to it, LD_PRELOAD left out of its environment);
 *  - at most once a second after a batch, on a writer thread: when the lock is free (the
 *    keeper died or was killed), one line on stderr and one new keeper (once per process).
 * A keeper that cannot be started costs the program one stderr line, nothing else.
 */
void bs_keeper_link_init(void);

#endif /* BUFSHIM_KEEPER_LINK_I_H */
