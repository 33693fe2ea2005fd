/* ops.c - the pass-through operations over the backing directory, and the control file. */
#include "slowfs_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CTL_DIR "/.slowfs"
#define CTL_FILE "/.slowfs/ctl"
#define CTL_DIR_NAME ".slowfs"
/* libfuse's name for a file unlinked while open (see sfs_init). */
#define HIDDEN_PREFIX ".fuse_hidden"
/* The file handle of an open control file; real handles are descriptors (>= 0). */
#define CTL_FH UINT64_MAX

static int backing = -1;
static int direct_io = 1;
static int intr;

/* The path relative to the backing directory, for the *at() calls. A NULL path (a
 * removed file) becomes "", which the *at() calls refuse with ENOENT. */
static const char *rel(const char *path)
{
    if (!path)
        return "";
    return path[1] ? path + 1 : ".";
}

static int is_ctl_dir(const char *path)
{
    return path && !strcmp(path, CTL_DIR);
}

static int is_ctl_file(const char *path)
{
    return path && !strcmp(path, CTL_FILE);
}

/* Anything under /.slowfs: not part of the pass-through view. */
static int in_ctl(const char *path)
{
    return path && !strncmp(path, CTL_DIR, sizeof CTL_DIR - 1) &&
           (path[sizeof CTL_DIR - 1] == '\0' || path[sizeof CTL_DIR - 1] == '/');
}

static int neg_errno(int rc)
{
    return rc < 0 ? -errno : rc;
}

static void call_fh(struct sfs_call *c, const struct fuse_file_info *fi)
{
    if (fi) {
        c->has_fh = 1;
        c->fh = fi->fh;
    }
}

static void *sfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* The kernel must ask for everything: no attribute or name caching (files change in
     * the backing directory behind its back), no writeback cache (each write(2) must
     * arrive as its own write, not merged pages). */
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->use_ino = 1;
    /* A file unlinked while open is renamed to .fuse_hidden* until its last close, as
     * NFS does (.nfs*): fstat and writes on it keep working. (hard_remove would make
     * libfuse fail fstat with ESTALE.) The hidden names stay out of listings. */
    cfg->hard_remove = 0;
    cfg->nullpath_ok = 0;
    cfg->intr = intr;
    cfg->intr_signal = SIGUSR1; /* main.c installs its handler */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* Up to 1 MiB per write request: a bigger write(2) arrives split into chunks. (Through
     * the page cache, --page-cache, a write is also split where it crosses a page
     * boundary at an unaligned offset: that is why direct I/O is the default.) */
    if (conn->max_write < (1u << 20))
        conn->max_write = 1u << 20;
    return NULL;
}

static void sfs_destroy(void *data)
{
    (void)data;
    sfs_control_shutdown();
}

static void ctl_stat(const char *path, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_nlink = 1;
    if (is_ctl_dir(path)) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0666;
    }
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (fi && fi->fh == CTL_FH) {
        ctl_stat(CTL_FILE, st);
        return 0;
    }
    if (in_ctl(path)) {
        if (!is_ctl_dir(path) && !is_ctl_file(path))
            return -ENOENT;
        ctl_stat(path, st);
        return 0;
    }
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_GETATTR, path);
    call_fh(&c, fi);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        if (fi)
            rc = neg_errno(fstat((int)fi->fh, st));
        else
            rc = neg_errno(fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW));
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)fi;
    (void)flags;
    if (!path)
        return -ENOENT; /* a directory removed while open */
    if (is_ctl_dir(path)) {
        filler(buf, ".", NULL, 0, 0);
        filler(buf, "..", NULL, 0, 0);
        filler(buf, "ctl", NULL, 0, 0);
        return 0;
    }
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_READDIR, path);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            rc = -errno;
            if (fd >= 0)
                close(fd);
        } else {
            int root = !strcmp(path, "/");
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                /* The control directory and unlinked open files never show in the
                 * pass-through view. */
                if (root && !strcmp(de->d_name, CTL_DIR_NAME))
                    continue;
                if (!strncmp(de->d_name, HIDDEN_PREFIX, sizeof HIDDEN_PREFIX - 1))
                    continue;
                struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type)};
                if (filler(buf, de->d_name, &st, 0, 0))
                    break;
            }
            closedir(d);
        }
    }
    return (int)sfs_call_end(&c, rc);
}

static int open_common(enum sfs_op op, const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (is_ctl_file(path)) {
        fi->fh = CTL_FH;
        fi->direct_io = 1;
        fi->nonseekable = 1;
        return 0;
    }
    if (in_ctl(path))
        return is_ctl_dir(path) ? -EISDIR : -EACCES;
    struct sfs_call c;
    sfs_call_begin(&c, op, path);
    c.has_flags = 1;
    c.flags = fi->flags;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        int flags = fi->flags | O_CLOEXEC;
        int fd = op == SFS_OP_CREATE ? openat(backing, rel(path), flags | O_CREAT, mode)
                                     : openat(backing, rel(path), flags);
        rc = fd < 0 ? -errno : 0;
        if (fd >= 0) {
            fi->fh = (uint64_t)fd;
            fi->direct_io = direct_io;
        }
        call_fh(&c, fd >= 0 ? fi : NULL);
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_open(const char *path, struct fuse_file_info *fi)
{
    return open_common(SFS_OP_OPEN, path, 0, fi);
}

static int sfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    return open_common(SFS_OP_CREATE, path, mode, fi);
}

static int sfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH) {
        char status[16384];
        size_t len = sfs_control_status(status, sizeof status);
        if (len >= sizeof status)
            len = sizeof status - 1;
        if (off < 0 || (size_t)off >= len)
            return 0;
        size_t n = len - (size_t)off < size ? len - (size_t)off : size;
        memcpy(buf, status + off, n);
        return (int)n;
    }
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_READ, path);
    call_fh(&c, fi);
    c.has_off = c.has_size = 1;
    c.off = off;
    c.size = size;
    ssize_t rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        rc = pread((int)fi->fh, buf, size, off);
        if (rc < 0)
            rc = -errno;
    }
    return (int)sfs_call_end(&c, rc);
}

static int ctl_write(const char *buf, size_t size)
{
    char err[256] = "";
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_CTL, CTL_FILE);
    c.cmd = buf;
    c.cmd_len = size;
    c.has_size = 1;
    c.size = size;
    int rc = sfs_control_apply(buf, size, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "slowfs: control: %s\n", err);
    return (int)sfs_call_end(&c, rc < 0 ? rc : (int64_t)size);
}

static int sfs_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH)
        return ctl_write(buf, size);
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_WRITE, path);
    call_fh(&c, fi);
    c.has_off = c.has_size = 1;
    c.off = off;
    c.size = size;
    size_t n = size;
    ssize_t rc = sfs_control_inject(&c, &n);
    if (rc == 0) {
        /* On an O_APPEND descriptor Linux's pwrite appends whatever the offset: the
         * bytes go to the backing file's real end, as the kernel client asked. */
        rc = pwrite((int)fi->fh, buf, n, off);
        if (rc < 0)
            rc = -errno;
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_flush(const char *path, struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH)
        return 0;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_FLUSH, path);
    call_fh(&c, fi);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        /* close() of a duplicate reports what close() of the backing file would,
         * without giving the descriptor up (release does that). */
        int fd = dup((int)fi->fh);
        rc = fd < 0 ? -errno : neg_errno(close(fd));
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_release(const char *path, struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH)
        return 0;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_RELEASE, path);
    call_fh(&c, fi);
    int rc = sfs_control_inject(&c, NULL);
    /* The descriptor goes whatever was injected: the kernel has forgotten the handle. */
    int closed = neg_errno(close((int)fi->fh));
    return (int)sfs_call_end(&c, rc ? rc : closed);
}

static int sfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH)
        return 0;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_FSYNC, path);
    call_fh(&c, fi);
    c.has_flags = 1;
    c.flags = datasync;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if ((fi && fi->fh == CTL_FH) || is_ctl_file(path))
        return 0; /* "echo cmd > ctl" truncates first */
    if (in_ctl(path))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_TRUNCATE, path);
    call_fh(&c, fi);
    c.has_size = 1;
    c.size = (uint64_t)size;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0 && fi) {
        rc = neg_errno(ftruncate((int)fi->fh, size));
    } else if (rc == 0) {
        int fd = openat(backing, rel(path), O_WRONLY | O_CLOEXEC);
        rc = fd < 0 ? -errno : neg_errno(ftruncate(fd, size));
        if (fd >= 0)
            close(fd);
    }
    return (int)sfs_call_end(&c, rc);
}

/* The operations that take one or two paths and no handle share this shape. */
static int path_op(enum sfs_op op, const char *path, const char *path2, mode_t mode)
{
    if (in_ctl(path) || in_ctl(path2))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, op, path);
    c.path2 = path2;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0) {
        switch (op) {
        case SFS_OP_UNLINK:
            rc = unlinkat(backing, rel(path), 0);
            break;
        case SFS_OP_RMDIR:
            rc = unlinkat(backing, rel(path), AT_REMOVEDIR);
            break;
        case SFS_OP_MKDIR:
            rc = mkdirat(backing, rel(path), mode);
            break;
        case SFS_OP_LINK:
            rc = linkat(backing, rel(path), backing, rel(path2), 0);
            break;
        default:
            rc = -1;
            errno = ENOSYS;
            break;
        }
        rc = neg_errno(rc);
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_unlink(const char *path)
{
    return path_op(SFS_OP_UNLINK, path, NULL, 0);
}

static int sfs_rmdir(const char *path)
{
    return path_op(SFS_OP_RMDIR, path, NULL, 0);
}

static int sfs_mkdir(const char *path, mode_t mode)
{
    return path_op(SFS_OP_MKDIR, path, NULL, mode);
}

static int sfs_link(const char *from, const char *to)
{
    return path_op(SFS_OP_LINK, from, to, 0);
}

static int sfs_rename(const char *from, const char *to, unsigned int flags)
{
    if (in_ctl(from) || in_ctl(to))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_RENAME, from);
    c.path2 = to;
    c.has_flags = 1;
    c.flags = (int)flags;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(renameat2(backing, rel(from), backing, rel(to), flags));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_symlink(const char *target, const char *path)
{
    if (in_ctl(path))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_SYMLINK, path);
    c.path2 = target;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(symlinkat(target, backing, rel(path)));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_readlink(const char *path, char *buf, size_t size)
{
    if (in_ctl(path))
        return -EINVAL;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_READLINK, path);
    ssize_t rc = sfs_control_inject(&c, NULL);
    if (rc == 0 && size > 0) {
        rc = readlinkat(backing, rel(path), buf, size - 1);
        if (rc < 0) {
            rc = -errno;
        } else {
            buf[rc] = '\0';
            rc = 0;
        }
    }
    return (int)sfs_call_end(&c, rc);
}

static int sfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (in_ctl(path) || (fi && fi->fh == CTL_FH))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_CHMOD, path);
    call_fh(&c, fi);
    c.has_flags = 1;
    c.flags = (int)mode;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(fi ? fchmod((int)fi->fh, mode) : fchmodat(backing, rel(path), mode, 0));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    if (in_ctl(path) || (fi && fi->fh == CTL_FH))
        return -EPERM;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_CHOWN, path);
    call_fh(&c, fi);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(fi ? fchown((int)fi->fh, uid, gid)
                          : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if ((fi && fi->fh == CTL_FH) || in_ctl(path))
        return 0; /* "touch ctl" is harmless */
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_UTIMENS, path);
    call_fh(&c, fi);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(fi ? futimens((int)fi->fh, tv)
                          : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_statfs(const char *path, struct statvfs *st)
{
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_STATFS, path);
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(fstatvfs(backing, st));
    return (int)sfs_call_end(&c, rc);
}

static int sfs_fallocate(const char *path, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    if (fi->fh == CTL_FH)
        return -EOPNOTSUPP;
    struct sfs_call c;
    sfs_call_begin(&c, SFS_OP_FALLOCATE, path);
    call_fh(&c, fi);
    c.has_off = c.has_size = c.has_flags = 1;
    c.off = off;
    c.size = (uint64_t)len;
    c.flags = mode;
    int rc = sfs_control_inject(&c, NULL);
    if (rc == 0)
        rc = neg_errno(fallocate((int)fi->fh, mode, off, len));
    return (int)sfs_call_end(&c, rc);
}

static const struct fuse_operations ops = {
    .init = sfs_init,
    .destroy = sfs_destroy,
    .getattr = sfs_getattr,
    .readdir = sfs_readdir,
    .open = sfs_open,
    .create = sfs_create,
    .read = sfs_read,
    .write = sfs_write,
    .flush = sfs_flush,
    .release = sfs_release,
    .fsync = sfs_fsync,
    .truncate = sfs_truncate,
    .unlink = sfs_unlink,
    .rmdir = sfs_rmdir,
    .mkdir = sfs_mkdir,
    .link = sfs_link,
    .rename = sfs_rename,
    .symlink = sfs_symlink,
    .readlink = sfs_readlink,
    .chmod = sfs_chmod,
    .chown = sfs_chown,
    .utimens = sfs_utimens,
    .statfs = sfs_statfs,
    .fallocate = sfs_fallocate,
};

const struct fuse_operations *sfs_ops(const struct sfs_options *options)
{
    backing = options->backing_fd;
    direct_io = !options->page_cache;
    intr = options->intr;
    return &ops;
}
