/* meta_ops.c - appends to one file and changes its metadata in between (doc/behaviour.md §8).
 *
 * Usage: meta_ops PATH OP ARGS... [OP ARGS...]...
 * PATH is opened once with O_WRONLY|O_APPEND|O_CREAT (0644) before the first OP; every
 * descriptor operation below uses that descriptor. Each query prints one line on stdout,
 * so a run without and a run with the shim can be compared line by line.
 *
 *   reopen a|w           close the descriptor and open PATH again: a = O_APPEND|O_CREAT,
 *                        w = O_CREAT|O_TRUNC (an offset-based appending stream)
 *   rec N TAG            N write(2) calls of "TAG <i>\n"
 *   bytes N C            one write(2) of N bytes C
 *   utimensat | futimens | utimes | futimes | lutimes | futimesat | utime |
 *   sys_utimensat | sys_utimensat_fd
 *                        sets atime 1000000000.123456789, mtime 1100000000.987654321
 *                        (truncated to what the call can express); sys_* through syscall(2)
 *   chmod MODE | fchmod MODE             MODE in octal
 *   chown UID GID | fchown UID GID
 *   setxattr NAME VALUE | fsetxattr NAME VALUE
 *   setcap               fsetxattr security.capability, a v2 blob: cap_net_bind_service=ep
 *   posix_fallocate OFF LEN | fallocate_keep OFF LEN | ftruncate LEN
 *   stat                 stat(2) of PATH: "stat mode=... size=... uid=... gid=..."
 *   sys_fstat            the same through syscall(SYS_fstat)
 *   fstat                the same by fstat(2) on the descriptor
 *   times                stat(2) of PATH: "times atime=S.NS mtime=S.NS"
 *
 * Exit status: 0 when every operation ran, 1 when one failed, 77 when the kernel or the
 * file system refuses an operation outright (EOPNOTSUPP).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define A_SEC 1000000000L
#define A_NSEC 123456789L
#define M_SEC 1100000000L
#define M_NSEC 987654321L

static const char *path;
static int fd = -1;

static int fail(const char *what)
{
    int e = errno;
    fprintf(stderr, "meta_ops: %s: %s\n", what, strerror(e));
    exit(e == EOPNOTSUPP ? 77 : 1);
}

static void check(int rc, const char *what)
{
    if (rc != 0)
        fail(what);
}

static void write_all(const char *buf, size_t len)
{
    ssize_t n = write(fd, buf, len);
    if (n != (ssize_t)len)
        fail("write");
}

static int set_times(const char *op)
{
    struct timespec ts[2] = {{A_SEC, A_NSEC}, {M_SEC, M_NSEC}};
    struct timeval tv[2] = {{A_SEC, A_NSEC / 1000}, {M_SEC, M_NSEC / 1000}};
    if (strcmp(op, "utimensat") == 0)
        check(utimensat(AT_FDCWD, path, ts, 0), op);
    else if (strcmp(op, "futimens") == 0)
        check(futimens(fd, ts), op);
    else if (strcmp(op, "utimes") == 0)
        check(utimes(path, tv), op);
    else if (strcmp(op, "futimes") == 0)
        check(futimes(fd, tv), op);
    else if (strcmp(op, "lutimes") == 0)
        check(lutimes(path, tv), op);
    else if (strcmp(op, "futimesat") == 0)
        check(futimesat(AT_FDCWD, path, tv), op);
    else if (strcmp(op, "utime") == 0) {
        struct utimbuf ub = {A_SEC, M_SEC};
        check(utime(path, &ub), op);
    } else if (strcmp(op, "sys_utimensat") == 0)
        check((int)syscall(SYS_utimensat, AT_FDCWD, path, ts, 0), op);
    else if (strcmp(op, "sys_utimensat_fd") == 0)
        check((int)syscall(SYS_utimensat, fd, NULL, ts, 0), op);
    else
        return 0;
    return 1;
}

static void print_stat(const char *tag, const struct stat *st)
{
    printf("%s mode=%o size=%lld uid=%u gid=%u\n", tag, (unsigned)st->st_mode,
           (long long)st->st_size, (unsigned)st->st_uid, (unsigned)st->st_gid);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: meta_ops PATH OP ARGS...\n");
        return 1;
    }
    path = argv[1];
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        fail(path);
    for (int i = 2; i < argc; i++) {
        const char *op = argv[i];
        int left = argc - i - 1;
#define NEED(n)                                                                      \
    do {                                                                             \
        if (left < (n)) {                                                            \
            fprintf(stderr, "meta_ops: %s needs %d arguments\n", op, (n));          \
            return 1;                                                                \
        }                                                                            \
    } while (0)
        if (set_times(op)) {
            continue;
        } else if (strcmp(op, "reopen") == 0) {
            NEED(1);
            close(fd);
            int fl = argv[i + 1][0] == 'w' ? O_TRUNC : O_APPEND;
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | fl, 0644);
            if (fd < 0)
                fail(path);
            i += 1;
        } else if (strcmp(op, "rec") == 0) {
            NEED(2);
            long n = strtol(argv[i + 1], NULL, 10);
            for (long k = 0; k < n; k++) {
                char line[256];
                int len = snprintf(line, sizeof line, "%s %ld\n", argv[i + 2], k);
                write_all(line, (size_t)len);
            }
            i += 2;
        } else if (strcmp(op, "bytes") == 0) {
            NEED(2);
            size_t n = strtoul(argv[i + 1], NULL, 10);
            char *b = malloc(n ? n : 1);
            if (!b)
                fail("malloc");
            memset(b, argv[i + 2][0], n);
            write_all(b, n);
            free(b);
            i += 2;
        } else if (strcmp(op, "chmod") == 0 || strcmp(op, "fchmod") == 0) {
            NEED(1);
            mode_t m = (mode_t)strtoul(argv[i + 1], NULL, 8);
            check(op[0] == 'f' ? fchmod(fd, m) : chmod(path, m), op);
            i += 1;
        } else if (strcmp(op, "chown") == 0 || strcmp(op, "fchown") == 0) {
            NEED(2);
            uid_t u = (uid_t)strtoul(argv[i + 1], NULL, 10);
            gid_t g = (gid_t)strtoul(argv[i + 2], NULL, 10);
            check(op[0] == 'f' ? fchown(fd, u, g) : chown(path, u, g), op);
            i += 2;
        } else if (strcmp(op, "setxattr") == 0 || strcmp(op, "fsetxattr") == 0) {
            NEED(2);
            const char *v = argv[i + 2];
            check(op[0] == 'f' ? fsetxattr(fd, argv[i + 1], v, strlen(v), 0)
                               : setxattr(path, argv[i + 1], v, strlen(v), 0), op);
            i += 2;
        } else if (strcmp(op, "setcap") == 0) {
            /* struct vfs_cap_data, revision 2: magic_etc, then {permitted, inheritable}
             * for the low and high 32 capability bits. CAP_NET_BIND_SERVICE is 10;
             * VFS_CAP_FLAGS_EFFECTIVE (1) makes it "=ep". Little-endian on disk. */
            unsigned char blob[20] = {0};
            unsigned magic = 0x02000000u | 1u, perm = 1u << 10;
            for (int k = 0; k < 4; k++) {
                blob[k] = (unsigned char)(magic >> (8 * k));
                blob[4 + k] = (unsigned char)(perm >> (8 * k));
            }
            check(fsetxattr(fd, "security.capability", blob, sizeof blob, 0), op);
        } else if (strcmp(op, "posix_fallocate") == 0 || strcmp(op, "fallocate_keep") == 0) {
            NEED(2);
            off_t off = (off_t)strtoll(argv[i + 1], NULL, 10);
            off_t len = (off_t)strtoll(argv[i + 2], NULL, 10);
            if (op[0] == 'p') {
                int rc = posix_fallocate(fd, off, len);
                errno = rc;
                check(rc, op);
            } else {
                check(fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len), op);
            }
            i += 2;
        } else if (strcmp(op, "ftruncate") == 0) {
            NEED(1);
            check(ftruncate(fd, (off_t)strtoll(argv[i + 1], NULL, 10)), op);
            i += 1;
        } else if (strcmp(op, "stat") == 0 || strcmp(op, "fstat") == 0) {
            struct stat st;
            check(op[0] == 'f' ? fstat(fd, &st) : stat(path, &st), op);
            print_stat(op, &st);
        } else if (strcmp(op, "sys_fstat") == 0) {
            struct stat st;
            check((int)syscall(SYS_fstat, fd, &st), op);
            print_stat(op, &st);
        } else if (strcmp(op, "times") == 0) {
            struct stat st;
            check(stat(path, &st), op);
            printf("times atime=%lld.%09ld mtime=%lld.%09ld\n", (long long)st.st_atim.tv_sec,
                   st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        } else {
            fprintf(stderr, "meta_ops: unknown operation %s\n", op);
            return 1;
        }
    }
    fflush(stdout);
    return 0;
}
