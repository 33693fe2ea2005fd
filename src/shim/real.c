/* real.c - resolves the real libc functions behind the shim's wrappers, once and lazily. */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>

#include "engine_i.h"

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
#define BS_REAL_RESOLVE(name, takes, class, ret, params, args) BS_REAL_RESOLVE_##class(name)
#define BS_REAL_RESOLVE_WRAPPED(name)                                                              \
    __atomic_store_n((void **)&bs_real_fns.name, dlsym(RTLD_NEXT, #name), __ATOMIC_RELAXED);
#define BS_REAL_RESOLVE_WRITE BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_QUERY BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_BARRIER BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_FLUSH BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_LOCK BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_ALL BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_TRACK BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_SIGNAL BS_REAL_RESOLVE_WRAPPED
#define BS_REAL_RESOLVE_PASS(name)
    BS_CALLS(BS_REAL_RESOLVE)
    if (bs_real_fns.syscall)
        bs_syscall = bs_real_fns.syscall; /* the shim's own raw calls skip its wrapper */
    bs_in_shim--;
    __atomic_store_n(&bs_real_ready, 1, __ATOMIC_RELEASE);
    errno = saved;
}
