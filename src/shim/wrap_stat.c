/* wrap_stat.c - the stat family and statx: sizes answered as if queued bytes were written
 * (doc/behaviour.md §4). */
#include "real_i.h"

#include <errno.h>
#include <sys/sysmacros.h>

#include "engine_i.h"
#include "errno_i.h"
#include "descriptors_i.h"
#include "shim_i.h"

/*
 * The stat family. The real call runs inside bs_target_vsize's snapshot (it may
 * run twice) and st_size then gets the target's queued bytes added. On LP64
 * glibc, struct stat and struct stat64 have the same layout.
 */
enum stat_kind {
    K_FSTAT,
    K_FSTAT64,
    K_STAT,
    K_STAT64,
    K_LSTAT,
    K_LSTAT64,
    K_AT,
    K_AT64,
    K_FX,
    K_FX64,
    K_X,
    K_X64,
    K_LX,
    K_LX64,
    K_FXAT,
    K_FXAT64
};

struct stat_call {
    enum stat_kind kind;
    int ver, fd, flags;
    const char *path;
    void *buf;
    int ret;
};

static int64_t stat_once(void *arg)
{
    struct stat_call *c = arg;
    switch (c->kind) {
    case K_FSTAT:
        c->ret = BS_REAL(fstat)(c->fd, c->buf);
        break;
    case K_FSTAT64:
        c->ret = BS_REAL(fstat64)(c->fd, c->buf);
        break;
    case K_STAT:
        c->ret = BS_REAL(stat)(c->path, c->buf);
        break;
    case K_STAT64:
        c->ret = BS_REAL(stat64)(c->path, c->buf);
        break;
    case K_LSTAT:
        c->ret = BS_REAL(lstat)(c->path, c->buf);
        break;
    case K_LSTAT64:
        c->ret = BS_REAL(lstat64)(c->path, c->buf);
        break;
    case K_AT:
        c->ret = BS_REAL(fstatat)(c->fd, c->path, c->buf, c->flags);
        break;
    case K_AT64:
        c->ret = BS_REAL(fstatat64)(c->fd, c->path, c->buf, c->flags);
        break;
    case K_FX:
        c->ret = BS_REAL(__fxstat)(c->ver, c->fd, c->buf);
        break;
    case K_FX64:
        c->ret = BS_REAL(__fxstat64)(c->ver, c->fd, c->buf);
        break;
    case K_X:
        c->ret = BS_REAL(__xstat)(c->ver, c->path, c->buf);
        break;
    case K_X64:
        c->ret = BS_REAL(__xstat64)(c->ver, c->path, c->buf);
        break;
    case K_LX:
        c->ret = BS_REAL(__lxstat)(c->ver, c->path, c->buf);
        break;
    case K_LX64:
        c->ret = BS_REAL(__lxstat64)(c->ver, c->path, c->buf);
        break;
    case K_FXAT:
        c->ret = BS_REAL(__fxstatat)(c->ver, c->fd, c->path, c->buf, c->flags);
        break;
    case K_FXAT64:
        c->ret = BS_REAL(__fxstatat64)(c->ver, c->fd, c->path, c->buf, c->flags);
        break;
    }
    return c->ret == 0 ? (int64_t)((struct stat *)c->buf)->st_size : -1;
}

static int by_fd(enum stat_kind k)
{
    return k == K_FSTAT || k == K_FSTAT64 || k == K_FX || k == K_FX64;
}

static int stat_call(struct stat_call *c)
{
    struct bs_target *t = NULL;
    int ref = 0;
    if (!bs_in_shim && bs_target_any()) {
        int fd = -1;
        if (by_fd(c->kind))
            fd = c->fd;
        else if ((c->flags & AT_EMPTY_PATH) && c->path && !c->path[0])
            fd = c->fd;
        struct bs_ofd *o = fd >= 0 ? bs_slot_ofd(bs_fd_slot(fd)) : NULL;
        if (o)
            t = o->t;
    }
    if (!t) {
        stat_once(c);
        if (c->ret != 0 || bs_in_shim || !bs_target_any())
            return c->ret;
        struct stat *st = c->buf;
        if (!S_ISREG(st->st_mode))
            return c->ret;
        BS_SAVE_ERRNO(t = bs_target_acquire(st->st_dev, st->st_ino, 0, -1, NULL, 0));
        if (!t)
            return c->ret;
        ref = 1;
    }
    int saved = errno;
    /*
     * By path the first stat only found the target: its size may predate bytes
     * the sink wrote since, so the answer always comes from the snapshot. By
     * descriptor nothing queued means nothing to add.
     */
    if (t->regular && (ref || bs_target_pending(t) > 0)) {
        int64_t v = bs_target_vsize(t, stat_once, c);
        if (v >= 0)
            ((struct stat *)c->buf)->st_size = (off_t)v;
    } else if (!ref) {
        stat_once(c);
    }
    if (ref)
        bs_target_release(t);
    if (c->ret == 0)
        errno = saved;
    return c->ret;
}

#define STAT_FD(name, k, type)                                                                     \
    BS_EXPORT int name(int fd, type *buf)                                                          \
    {                                                                                              \
        struct stat_call c = {.kind = k, .fd = fd, .buf = buf};                                    \
        return stat_call(&c);                                                                      \
    }
#define STAT_PATH(name, k, type)                                                                   \
    BS_EXPORT int name(const char *path, type *buf)                                                \
    {                                                                                              \
        struct stat_call c = {.kind = k, .fd = AT_FDCWD, .path = path, .buf = buf};                \
        return stat_call(&c);                                                                      \
    }
#define STAT_AT(name, k, type)                                                                     \
    BS_EXPORT int name(int fd, const char *path, type *buf, int flags)                             \
    {                                                                                              \
        struct stat_call c = {.kind = k, .fd = fd, .path = path, .buf = buf, .flags = flags};      \
        return stat_call(&c);                                                                      \
    }
#define XSTAT_FD(name, k, type)                                                                    \
    BS_EXPORT int name(int ver, int fd, type *buf)                                                 \
    {                                                                                              \
        struct stat_call c = {.kind = k, .ver = ver, .fd = fd, .buf = buf};                        \
        return stat_call(&c);                                                                      \
    }
#define XSTAT_PATH(name, k, type)                                                                  \
    BS_EXPORT int name(int ver, const char *path, type *buf)                                       \
    {                                                                                              \
        struct stat_call c = {.kind = k, .ver = ver, .fd = AT_FDCWD, .path = path, .buf = buf};    \
        return stat_call(&c);                                                                      \
    }
#define XSTAT_AT(name, k, type)                                                                    \
    BS_EXPORT int name(int ver, int fd, const char *path, type *buf, int flags)                    \
    {                                                                                              \
        struct stat_call c = {                                                                     \
            .kind = k, .ver = ver, .fd = fd, .path = path, .buf = buf, .flags = flags};            \
        return stat_call(&c);                                                                      \
    }

/* glibc >= 2.33 exports these; older programs call the __*xstat* names below. */
STAT_FD(fstat, K_FSTAT, struct stat)
STAT_FD(fstat64, K_FSTAT64, struct stat64)
STAT_PATH(stat, K_STAT, struct stat)
STAT_PATH(stat64, K_STAT64, struct stat64)
STAT_PATH(lstat, K_LSTAT, struct stat)
STAT_PATH(lstat64, K_LSTAT64, struct stat64)
STAT_AT(fstatat, K_AT, struct stat)
STAT_AT(fstatat64, K_AT64, struct stat64)
XSTAT_FD(__fxstat, K_FX, struct stat)
XSTAT_FD(__fxstat64, K_FX64, struct stat64)
XSTAT_PATH(__xstat, K_X, struct stat)
XSTAT_PATH(__xstat64, K_X64, struct stat64)
XSTAT_PATH(__lxstat, K_LX, struct stat)
XSTAT_PATH(__lxstat64, K_LX64, struct stat64)
XSTAT_AT(__fxstatat, K_FXAT, struct stat)
XSTAT_AT(__fxstatat64, K_FXAT64, struct stat64)

struct statx_call {
    int dirfd, flags;
    unsigned mask;
    const char *path;
    struct statx *buf;
    int ret;
};

static int64_t statx_once(void *arg)
{
    struct statx_call *c = arg;
    c->ret = BS_REAL(statx)(c->dirfd, c->path, c->flags, c->mask, c->buf);
    return c->ret == 0 ? (int64_t)c->buf->stx_size : -1;
}

BS_EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf)
{
    struct statx_call c = {dirfd, flags, mask, path, buf, 0};
    statx_once(&c);
    if (c.ret != 0 || bs_in_shim || !bs_target_any() || !(buf->stx_mask & STATX_SIZE) ||
        !S_ISREG(buf->stx_mode))
        return c.ret;
    BS_KEEP_ERRNO();
    struct bs_target *t = bs_target_acquire(makedev(buf->stx_dev_major, buf->stx_dev_minor),
                                            buf->stx_ino, 0, -1, NULL, 0);
    if (t) {
        int64_t v = bs_target_vsize(t, statx_once, &c); /* see stat_call */
        if (v >= 0)
            buf->stx_size = (uint64_t)v;
        bs_target_release(t);
    }
    return c.ret;
}
