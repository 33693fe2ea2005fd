/* slowfs_i.h - internal interface between slowfs's parts (ops, control, event log). */
#ifndef SLOWFS_I_H
#define SLOWFS_I_H

#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Every operation slowfs logs, and can delay or fail. The names (sfs_op_name) are the
 * words used in control lines and in the event log. */
enum sfs_op {
    SFS_OP_GETATTR,
    SFS_OP_READDIR,
    SFS_OP_OPEN,
    SFS_OP_CREATE,
    SFS_OP_READ,
    SFS_OP_WRITE,
    SFS_OP_FLUSH,
    SFS_OP_RELEASE,
    SFS_OP_FSYNC,
    SFS_OP_TRUNCATE,
    SFS_OP_UNLINK,
    SFS_OP_RENAME,
    SFS_OP_MKDIR,
    SFS_OP_RMDIR,
    SFS_OP_SYMLINK,
    SFS_OP_READLINK,
    SFS_OP_LINK,
    SFS_OP_CHMOD,
    SFS_OP_CHOWN,
    SFS_OP_UTIMENS,
    SFS_OP_STATFS,
    SFS_OP_FALLOCATE,
    SFS_OP_CTL, /* a command written to the control file: logged, never delayed */
    SFS_OP_COUNT
};

/* One operation in flight: what the event log records about it. Fields that do not
 * apply to an operation stay at their "absent" values (has_* = 0, path2 = NULL). */
struct sfs_call {
    enum sfs_op op;
    const char *path;  /* relative to the mount root, starting with '/'; NULL once unlinked */
    const char *path2; /* rename/link target, symlink text */
    const char *cmd;   /* control command text (SFS_OP_CTL) */
    size_t cmd_len;
    pid_t pid;  /* the caller's id as the kernel reports it (a thread id) */
    pid_t tgid; /* its process id, or -1 when it is already gone */
    int has_fh, has_off, has_size, has_flags;
    uint64_t fh;
    int64_t off;
    uint64_t size;
    int flags;
    struct timespec start_mono, start_wall;
};

/* Name of an operation ("write"), or NULL for an out-of-range value. */
const char *sfs_op_name(enum sfs_op op);

/* eventlog.c */

/* Opens (creating, appending) the JSON-lines event log. Returns 0 or -errno. */
int sfs_log_open(const char *path);

/* Starts a call: records the caller and the start times. */
void sfs_call_begin(struct sfs_call *c, enum sfs_op op, const char *path);

/* Ends a call: records the end times and writes its log line (one write(2), lines in
 * the order of their end times). Returns result unchanged, for tail calls. */
int64_t sfs_call_end(struct sfs_call *c, int64_t result);

/* control.c */

/* Sets the initial latencies from a --latency value. Returns 0 or -EINVAL (with a
 * message in err). */
int sfs_control_init(const char *latency_spec, char *err, size_t errlen);

/* Applies the commands in text (one per line). All or nothing: when one line is
 * invalid nothing is applied, a message goes to err and -EINVAL is returned. */
int sfs_control_apply(const char *text, size_t len, char *err, size_t errlen);

/* Writes the current settings, one line each, into buf (NUL-terminated, truncated to
 * cap). Returns the length it would have had untruncated. */
size_t sfs_control_status(char *buf, size_t cap);

/* Applies what the current settings say to a call that is about to run: waits while
 * it hangs, sleeps its latency, then returns -errno for an injected failure or 0. For
 * a write, *size may be reduced to make it short. size may be NULL for other ops. */
int sfs_control_inject(struct sfs_call *c, size_t *size);

/* Wakes every hung call for good: the filesystem is going away. */
void sfs_control_shutdown(void);

/* ops.c */

/* How the filesystem serves its files. */
struct sfs_options {
    int backing_fd; /* the backing directory, open */
    /* Go through the kernel page cache (shared mmap works, writes split at page
     * boundaries); by default files are opened for direct I/O: each write(2) up to 1 MiB
     * reaches slowfs as one write, never cached or split. */
    int page_cache;
    /* Let signals interrupt hung calls (EINTR), as on an NFS "intr" mount. */
    int intr;
};

/* The pass-through operations over the backing directory. */
const struct fuse_operations *sfs_ops(const struct sfs_options *options);

#endif
