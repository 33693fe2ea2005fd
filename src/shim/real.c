/* real.c - resolves the real libc functions behind the shim's wrappers, once and lazily. */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>

#include "errno_i.h"
#include "engine_i.h"

struct bs_real_table bs_real_fns;
__thread int bs_in_shim __attribute__((tls_model("initial-exec")));

void *bs_real_resolve(void **slot, const char *name)
{
    BS_KEEP_ERRNO();
    bs_in_shim++; /* dlsym may call wrapped functions (it can allocate, read files) */
    void *p = dlsym(RTLD_NEXT, name);
    bs_in_shim--;
    if (p)
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    return p;
}

void bs_real_init(void)
{
    if (&BS_REAL(syscall))
        bs_syscall = bs_real_fns.syscall; /* the shim's own raw calls skip its wrapper */
}
