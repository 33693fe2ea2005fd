/* real.c - resolves the real libc functions behind the shim's wrappers, once and lazily. */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>

struct bs_real_table bs_real_fns;
int bs_real_ready;
__thread int bs_in_shim __attribute__((tls_model("initial-exec")));

/*
 * Fills the table with dlsym(RTLD_NEXT). Two threads racing here both store the
 * same pointers, so no lock is needed (and none could be taken safely this early:
 * another library's constructor may be the caller). errno is preserved.
 */
void bs_real_init(void)
{
    if (__atomic_load_n(&bs_real_ready, __ATOMIC_ACQUIRE))
        return;
    int saved = errno;
    bs_in_shim++;
#define BS_REAL_RESOLVE(name, ret, params)                                                         \
    __atomic_store_n((void **)&bs_real_fns.name, dlsym(RTLD_NEXT, #name), __ATOMIC_RELAXED);
    BS_REAL_FUNCTIONS(BS_REAL_RESOLVE)
#undef BS_REAL_RESOLVE
#define BS_REAL_RESOLVE_TYPED(name)                                                                \
    __atomic_store_n((void **)&bs_real_fns.name, dlsym(RTLD_NEXT, #name), __ATOMIC_RELAXED);
    BS_REAL_STDIO_FUNCTIONS(BS_REAL_RESOLVE_TYPED)
#undef BS_REAL_RESOLVE_TYPED
    bs_in_shim--;
    __atomic_store_n(&bs_real_ready, 1, __ATOMIC_RELEASE);
    errno = saved;
}
