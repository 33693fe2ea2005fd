/* wrap_rename.c - the names of a file: rename*, unlink*, remove, link*. The bytes written so far
 * belong to the file under its old name. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"

BS_EXPORT int rename(const char *from, const char *to)
{
    struct bs_target *a = bs_barrier_path(AT_FDCWD, from, 1);
    struct bs_target *b = bs_barrier_path(AT_FDCWD, to, 1);
    int r = BS_REAL(rename)(from, to);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int renameat(int fromdir, const char *from, int todir, const char *to)
{
    struct bs_target *a = bs_barrier_path(fromdir, from, 1);
    struct bs_target *b = bs_barrier_path(todir, to, 1);
    int r = BS_REAL(renameat)(fromdir, from, todir, to);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int renameat2(int fromdir, const char *from, int todir, const char *to,
                        unsigned int flags)
{
    struct bs_target *a = bs_barrier_path(fromdir, from, 1);
    struct bs_target *b = bs_barrier_path(todir, to, 1);
    int r = BS_REAL(renameat2)(fromdir, from, todir, to, flags);
    bs_barrier_end(a);
    bs_barrier_end(b);
    return r;
}

BS_EXPORT int unlink(const char *path)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 1);
    int r = BS_REAL(unlink)(path);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
    struct bs_target *t = bs_barrier_path(dirfd, path, 1);
    int r = BS_REAL(unlinkat)(dirfd, path, flags);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int remove(const char *path)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, path, 1);
    int r = BS_REAL(remove)(path);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int link(const char *from, const char *to)
{
    struct bs_target *t = bs_barrier_path(AT_FDCWD, from, 1);
    int r = BS_REAL(link)(from, to);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int linkat(int fromdir, const char *from, int todir, const char *to, int flags)
{
    struct bs_target *t = bs_barrier_path(fromdir, from, !(flags & AT_SYMLINK_FOLLOW));
    int r = BS_REAL(linkat)(fromdir, from, todir, to, flags);
    bs_barrier_end(t);
    return r;
}
