/* wrap_sync.c - sync and syncfs: every target is written first (fsync and fdatasync are
 * generated barriers, wrap_generated.c). */
#include "real_i.h"

#include "flush_i.h"

BS_EXPORT void sync(void)
{
    if (!bs_in_shim)
        bs_shim_flush_all();
    BS_REAL(sync)();
}

BS_EXPORT int syncfs(int fd)
{
    if (!bs_in_shim)
        bs_shim_flush_all();
    return BS_REAL(syncfs)(fd);
}
