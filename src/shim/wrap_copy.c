/* wrap_copy.c - kernel-side copies: sendfile, splice, copy_file_range. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"

BS_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    bs_barrier_tracked(in);
    struct bs_target *t = bs_barrier_tracked_all(out);
    ssize_t r = BS_REAL(sendfile)(out, in, off, n);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    bs_barrier_tracked(in);
    struct bs_target *t = bs_barrier_tracked_all(out);
    ssize_t r = BS_REAL(sendfile64)(out, in, off, n);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t splice(int in, off64_t *inoff, int out, off64_t *outoff, size_t n,
                         unsigned int flags)
{
    bs_barrier_tracked(in);
    struct bs_target *t = bs_barrier_tracked_all(out);
    ssize_t r = BS_REAL(splice)(in, inoff, out, outoff, n, flags);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}

BS_EXPORT ssize_t copy_file_range(int in, off64_t *inoff, int out, off64_t *outoff, size_t n,
                                  unsigned int flags)
{
    bs_barrier_tracked(in);
    struct bs_target *t = bs_barrier_tracked_all(out);
    ssize_t r = BS_REAL(copy_file_range)(in, inoff, out, outoff, n, flags);
    if (t && r > 0)
        bs_barrier_redecide(t);
    return r;
}
