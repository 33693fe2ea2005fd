/* signals_i.h - flushing on termination signals at their default action. */
#ifndef BUFSHIM_SIGNALS_I_H
#define BUFSHIM_SIGNALS_I_H

/* Errno: bs_signals_init may change errno (the constructor keeps the program's); the
   stand-in handlers keep it. */

/*
 * Installs the stand-in handler for SIGTERM, SIGINT, SIGHUP and SIGQUIT where
 * they are at SIG_DFL. Called once by the constructor after the configuration
 * is known; does nothing when the shim is inert.
 */
void bs_signals_init(void);

#endif /* BUFSHIM_SIGNALS_I_H */
