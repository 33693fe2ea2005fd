/* lifecycle.c - the shim's start (the constructor: configuration, tables, std streams, signals)
 * and stop (the destructor: the final flush). */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "errno_i.h"
#include "config_i.h"
#include "engine_i.h"
#include "spool_i.h"
#include "descriptors_i.h"
#include "flush_i.h"
#include "process_i.h"
#include "shim_i.h"
#include "fork_i.h"
#include "stdio/stdio_i.h"
#include "signals_i.h"
#include "keeper_link_i.h"
#include "report_i.h"

/*
 * Another copy of the library ahead of this one (LD_PRELOAD naming two paths, or a
 * program linked with one and preloaded with another): its wrappers see every
 * call first. Decision: this copy stays inert, its wrappers pass straight on, so
 * that no byte is buffered twice and the shims' own I/O never loops through both.
 */
static int another_copy_first(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "bufshim_flush");
    if (!sym)
        return 0;
    /* Compared by object: within this copy, bufshim_flush itself would resolve to the
       first copy's too. _dl_find_object (glibc >= 2.35) is a lookup in a sorted table;
       dladdr, the fallback, also searches the object's symbols (about 10 us here). */
    struct dl_find_object first, mine;
    if (_dl_find_object(sym, &first) == 0 &&
        _dl_find_object((void *)another_copy_first, &mine) == 0)
        return first.dlfo_link_map != mine.dlfo_link_map;
    Dl_info a, b;
    return dladdr(sym, &a) && dladdr((void *)another_copy_first, &b) && a.dli_fbase != b.dli_fbase;
}

/* Runs before main (after the libraries we depend on); wrappers pass through until it is done. */
__attribute__((constructor)) static void bs_shim_start(void)
{
    BS_KEEP_ERRNO();
    bs_real_init();
    bs_config_load();
    if (bs_cfg.active && another_copy_first()) {
        if (bs_cfg.debug)
            bs_log("another copy of libbufshim is loaded ahead of this one; this one stays out "
                   "of the way");
        bs_cfg.active = 0;
    }
    if (bs_cfg.active) {
        if (bs_fdtab_init() < 0) {
            bs_log("cannot map the descriptor table; buffering is off");
            bs_cfg.active = 0;
        } else {
            bs_spool_configure(bs_cfg.spool_dir, bs_cfg.crashsafe);
            bs_target_init();
            bs_fork_init();
            /* Inherited descriptors are looked at when first used (bs_fd_slot);
               the std streams' set-up looks at 1 and 2 now. */
            bs_stdio_init();
            bs_signals_init();
            bs_keeper_link_init();
            bs_report_init();
        }
    }
}

/*
 * Final flush: runs from _dl_fini, after the program's atexit handlers. stdio
 * buffers that glibc flushes after destructors then find every descriptor in
 * pass-through, at its end of file (doc/behaviour.md §9).
 */
__attribute__((destructor)) static void bs_shim_stop(void)
{
    if (bs_cfg.active && bs_is_owner())
        bs_shim_final_flush();
}
