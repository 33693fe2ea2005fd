/* signals_i.h - flushing on fatal signals at their default action. */
#ifndef BUFSHIM_SIGNALS_I_H
#define BUFSHIM_SIGNALS_I_H

/* Errno: bs_signals_init may change errno (the constructor keeps the program's); the
   stand-in handlers keep it. */

#include <stdatomic.h>

/* Makes the sigaction wrappers work for the shim: the constructor, once the
   configuration is known. Installs nothing (bs_signals_arm does). */
void bs_signals_init(void);

/* 1 once the stand-ins are installed. */
extern atomic_int bs_signals_armed;

/*
 * Installs the stand-in handler of every flushing signal (signals.c: the termination
 * signals, the crashes, SIGPIPE) that is at SIG_DFL, once: at the first diverted
 * append. Does nothing while the process exits or when the shim is inert.
 */
void bs_signals_arm(void);

/* The fork child's reset of the lock between arming and the program's sigaction calls. */
void bs_signals_fork_child(void);

#endif /* BUFSHIM_SIGNALS_I_H */
