/* errno_i.h - keeping the program's errno across the engine's and the shim's own work. */
#ifndef BUFSHIM_ERRNO_I_H
#define BUFSHIM_ERRNO_I_H

#include <errno.h>

/*
 * The engine and the shim run inside the program's calls (and in its signal
 * handlers): what they do for themselves must not change the errno the program
 * sees. Each header says which of its functions keep errno and which may change
 * it; these two helpers replace the hand-written `int saved = errno; ...
 * errno = saved;` pairs.
 */

static inline void bs_errno_restore_(const int *saved)
{
    errno = *saved;
}

/*
 * Declares a hidden variable holding errno's value now; errno gets it back when
 * the enclosing block is left, whichever way (a return included). For a function
 * that keeps errno on every path.
 */
#define BS_KEEP_ERRNO()                                                                            \
    int bs_kept_errno_ __attribute__((cleanup(bs_errno_restore_), unused)) = errno

/* Runs the statements and gives errno back its value from before (libuv's SAVE_ERRNO). */
#define BS_SAVE_ERRNO(...)                                                                         \
    do {                                                                                           \
        BS_KEEP_ERRNO();                                                                           \
        __VA_ARGS__;                                                                               \
    } while (0)

#endif /* BUFSHIM_ERRNO_I_H */
