/* flush.c - the process-wide flushes: every target before fork, exec and spawn, and the final
 * flush at exit, after which every write passes through. */
#include "real_i.h"

#include <errno.h>

#include "errno_i.h"
#include "config_i.h"
#include "descriptors_i.h"
#include "engine_i.h"
#include "flush_i.h"
#include "process_i.h"
#include "report_i.h"
#include "stats_i.h"

void bs_shim_flush_all(void)
{
    if (!bs_cfg.active)
        return;
    BS_KEEP_ERRNO();
    bs_in_shim++;
    bs_engine_flush_all();
    bs_in_shim--;
    bs_fd_sync_offsets(NULL);
}

static void final_flush(int urgent)
{
    static atomic_int done;
    if (!bs_cfg.active || atomic_exchange(&done, 1))
        return;
    BS_KEEP_ERRNO();
    bs_in_shim++;
    if (urgent) {
        atomic_store(&bs_dying, 1);
        bs_engine_shutdown_now();
    } else {
        bs_engine_shutdown();
        bs_engine_release_threads(); /* no batch comes now: they end while the exit goes on */
    }
    bs_in_shim--;
    bs_fd_sync_offsets(NULL);
    /* From now on every write goes straight to the kernel at the right offset. */
    for (int fd = 0; fd <= atomic_load(&bs_fdtab_max); fd++) {
        struct bs_ofd *o = bs_slot_ofd(bs_fd_slot_raw(fd));
        if (o)
            atomic_fetch_and(&o->flags, ~(BS_OFD_DIVERTED | BS_OFD_STALEPOS));
    }
    if (bs_cfg.stats)
        bs_stats_report(bs_cfg.stats);
    if (!urgent)
        bs_report_final();
}

void bs_shim_final_flush(void)
{
    final_flush(0);
}

void bs_shim_final_flush_urgent(void)
{
    final_flush(1);
}

void bs_shim_before_exec(void)
{
    if (bs_cfg.active && !bs_in_shim && bs_is_owner())
        bs_shim_flush_all();
}

void bs_shim_before_exit(void)
{
    if (bs_cfg.active && !bs_in_shim && bs_is_owner())
        bs_shim_final_flush();
}
