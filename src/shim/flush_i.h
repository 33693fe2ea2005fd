/* flush_i.h - the process-wide flushes: every target at once. */
#ifndef BUFSHIM_FLUSH_I_H
#define BUFSHIM_FLUSH_I_H

/* Errno: every function here keeps errno. */

/* Flushes every target and syncs offsets: before fork, exec, spawn. Keeps errno. */
void bs_shim_flush_all(void);

/* Final flush (exit, _exit, destructor): afterwards every write passes through.
   Keeps errno. */
void bs_shim_final_flush(void);

/* The final flush of a process dying of a crash: waits for nothing that may hang (a
   target with a batch in flight is left, its loss reported). Keeps errno. */
void bs_shim_final_flush_urgent(void);

/* Before exec, fork, spawn: bs_shim_flush_all, unless the shim is off, itself running, or
   this is a vfork child. */
void bs_shim_before_exec(void);

/* Before _exit, _Exit, quick_exit: bs_shim_final_flush, on the same conditions. */
void bs_shim_before_exit(void);

#endif /* BUFSHIM_FLUSH_I_H */
