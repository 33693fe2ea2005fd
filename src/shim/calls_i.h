/* calls_i.h - the table of every libc call the shim knows: what it takes and what the shim does. */
#ifndef BUFSHIM_CALLS_I_H
#define BUFSHIM_CALLS_I_H

/*
 * BS_CALLS(X) lists one call a line: X(name, takes, class, ret, params, args).
 *
 * takes: FD (a descriptor, named fd), FD2 (two: fd and fd2), PATH (a path,
 * following a final symlink), LPATH (not following it), AT (dirfd, path and
 * flags: AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH as the call defines them), STREAM
 * (a FILE *), AIOCB (a struct aiocb *), NONE.
 *
 * class, the rule of doc/behaviour.md §4 applied to the call (each hand-written
 * wrapper lives in the file named for its call, wrap_<call>.c, or for the family
 * its header names):
 *   WRITE    diverted output (wrap_write.c; stdio/: wrap_stdio.c, wrap_stdio_wide.c)
 *   QUERY    position and size answered as if the queued bytes were written
 *            (wrap_lseek.c, wrap_stat.c; ftell* and fgetpos* in stdio/wrap_stdio.c);
 *            isatty, ttyname*, tcgetattr answered for a stand-in descriptor of open
 *            elision as for the regular file it stands for (wrap_ioctl.c)
 *   BARRIER  flushes the target it names, then the real call: generated from
 *            ret, params and args by wrap_generated.c
 *   FLUSH    a barrier with more to do than the generated one (offsets to put
 *            right, descriptors to re-decide), hand-written: wrap_read.c (read*,
 *            pread*, preadv*), wrap_pwrite.c, wrap_truncate.c (truncate*,
 *            fallocate*), wrap_rename.c (rename*, unlink*, remove, link*),
 *            wrap_copy.c (sendfile*, splice, copy_file_range), wrap_mmap.c,
 *            wrap_ioctl.c, wrap_sendmsg.c (sendmsg, sendmmsg: descriptors passed
 *            over a socket); fseek*, rewind, fsetpos* in stdio/wrap_stdio.c
 *   LOCK     taking or releasing a lock: a barrier that also marks the target as
 *            locked (wrap_lock.c; fcntl's lock commands in wrap_open.c)
 *   ALL      flushes every target first: _exit, _Exit, quick_exit (wrap_exit.c),
 *            exec*, posix_spawn*, system, popen (wrap_exec.c), fork, vfork,
 *            _Fork, clone (wrap_fork.c), sync, syncfs (wrap_sync.c)
 *   TRACK    descriptor or stream bookkeeping: open, dup, fcntl, close, fchdir (wrap_open.c),
 *            syscall (wrap_syscall.c), the streams (stdio/wrap_stdio.c)
 *   SIGNAL   the signal layer (signals.c)
 *   EXIT     the process starts leaving: main returned, or exit was called; what
 *            the exit's own handlers close is written by the final flush that
 *            follows (wrap_exit.c)
 *   PASS     cannot read, change or depend on a target's data or metadata: not
 *            wrapped (listed so that the table accounts for every libc call that
 *            takes a descriptor or a path; tests/test_calls.py holds it to that)
 *
 * ret, params, args are used only by the generated barriers (`_` elsewhere).
 * Every name not PASS is exported by libbufshim.so (defined with BS_EXPORT, at the
 * base version: src/exports/README) and resolved into the table of real functions
 * (real_i.h); tests/test_exports.py and test_calls.py read this file, so each entry
 * stays on one line.
 */
// clang-format off
#define BS_CALLS(X) \
    /* --- output --- */ \
    X(write, FD, WRITE, _, _, _) \
    X(writev, FD, WRITE, _, _, _) \
    X(fwrite, STREAM, WRITE, _, _, _) \
    X(fwrite_unlocked, STREAM, WRITE, _, _, _) \
    X(fputs, STREAM, WRITE, _, _, _) \
    X(fputs_unlocked, STREAM, WRITE, _, _, _) \
    X(fputc, STREAM, WRITE, _, _, _) \
    X(fputc_unlocked, STREAM, WRITE, _, _, _) \
    X(putc, STREAM, WRITE, _, _, _) \
    X(putc_unlocked, STREAM, WRITE, _, _, _) \
    X(putw, STREAM, WRITE, _, _, _) \
    X(__overflow, STREAM, WRITE, _, _, _) \
    X(fprintf, STREAM, WRITE, _, _, _) \
    X(vfprintf, STREAM, WRITE, _, _, _) \
    X(__fprintf_chk, STREAM, WRITE, _, _, _) \
    X(__vfprintf_chk, STREAM, WRITE, _, _, _) \
    X(dprintf, FD, WRITE, _, _, _) \
    X(vdprintf, FD, WRITE, _, _, _) \
    X(__dprintf_chk, FD, WRITE, _, _, _) \
    X(__vdprintf_chk, FD, WRITE, _, _, _) \
    X(fputwc, STREAM, WRITE, _, _, _) \
    X(fputwc_unlocked, STREAM, WRITE, _, _, _) \
    X(putwc, STREAM, WRITE, _, _, _) \
    X(putwc_unlocked, STREAM, WRITE, _, _, _) \
    X(putwchar, NONE, WRITE, _, _, _) \
    X(putwchar_unlocked, NONE, WRITE, _, _, _) \
    X(fputws, STREAM, WRITE, _, _, _) \
    X(fputws_unlocked, STREAM, WRITE, _, _, _) \
    X(fwprintf, STREAM, WRITE, _, _, _) \
    X(vfwprintf, STREAM, WRITE, _, _, _) \
    X(__fwprintf_chk, STREAM, WRITE, _, _, _) \
    X(__vfwprintf_chk, STREAM, WRITE, _, _, _) \
    X(wprintf, NONE, WRITE, _, _, _) \
    X(vwprintf, NONE, WRITE, _, _, _) \
    X(__wprintf_chk, NONE, WRITE, _, _, _) \
    X(__vwprintf_chk, NONE, WRITE, _, _, _) \
    /* --- streams: buffering, position, state --- */ \
    X(fopen, PATH, TRACK, _, _, _) \
    X(fopen64, PATH, TRACK, _, _, _) \
    X(fdopen, FD, TRACK, _, _, _) \
    X(freopen, PATH, TRACK, _, _, _) \
    X(freopen64, PATH, TRACK, _, _, _) \
    X(fclose, STREAM, TRACK, _, _, _) \
    X(fflush, STREAM, TRACK, _, _, _) \
    X(fflush_unlocked, STREAM, TRACK, _, _, _) \
    X(setvbuf, STREAM, TRACK, _, _, _) \
    X(setbuf, STREAM, TRACK, _, _, _) \
    X(setbuffer, STREAM, TRACK, _, _, _) \
    X(setlinebuf, STREAM, TRACK, _, _, _) \
    X(fileno, STREAM, TRACK, _, _, _) \
    X(fileno_unlocked, STREAM, TRACK, _, _, _) \
    X(ferror, STREAM, TRACK, _, _, _) \
    X(ferror_unlocked, STREAM, TRACK, _, _, _) \
    X(feof, STREAM, TRACK, _, _, _) \
    X(feof_unlocked, STREAM, TRACK, _, _, _) \
    X(clearerr, STREAM, TRACK, _, _, _) \
    X(clearerr_unlocked, STREAM, TRACK, _, _, _) \
    X(__fpending, STREAM, TRACK, _, _, _) \
    X(__fbufsize, STREAM, TRACK, _, _, _) \
    X(__flbf, STREAM, TRACK, _, _, _) \
    X(__fpurge, STREAM, TRACK, _, _, _) \
    X(__fwriting, STREAM, TRACK, _, _, _) \
    X(fwide, STREAM, TRACK, _, _, _) \
    X(flockfile, STREAM, TRACK, _, _, _) \
    X(funlockfile, STREAM, TRACK, _, _, _) \
    X(ftrylockfile, STREAM, TRACK, _, _, _) \
    X(ftell, STREAM, QUERY, _, _, _) \
    X(ftello, STREAM, QUERY, _, _, _) \
    X(ftello64, STREAM, QUERY, _, _, _) \
    X(fgetpos, STREAM, QUERY, _, _, _) \
    X(fgetpos64, STREAM, QUERY, _, _, _) \
    X(fseek, STREAM, FLUSH, _, _, _) \
    X(fseeko, STREAM, FLUSH, _, _, _) \
    X(fseeko64, STREAM, FLUSH, _, _, _) \
    X(rewind, STREAM, FLUSH, _, _, _) \
    X(fsetpos, STREAM, FLUSH, _, _, _) \
    X(fsetpos64, STREAM, FLUSH, _, _, _) \
    /* --- descriptors --- */ \
    X(open, PATH, TRACK, _, _, _) \
    X(open64, PATH, TRACK, _, _, _) \
    X(__open_2, PATH, TRACK, _, _, _) \
    X(__open64_2, PATH, TRACK, _, _, _) \
    X(openat, AT, TRACK, _, _, _) \
    X(openat64, AT, TRACK, _, _, _) \
    X(__openat_2, AT, TRACK, _, _, _) \
    X(__openat64_2, AT, TRACK, _, _, _) \
    X(creat, PATH, TRACK, _, _, _) \
    X(creat64, PATH, TRACK, _, _, _) \
    X(open_by_handle_at, FD, TRACK, _, _, _) \
    X(close, FD, TRACK, _, _, _) \
    X(close_range, FD2, TRACK, _, _, _) \
    X(closefrom, FD, TRACK, _, _, _) \
    X(dup, FD, TRACK, _, _, _) \
    X(dup2, FD2, TRACK, _, _, _) \
    X(dup3, FD2, TRACK, _, _, _) \
    X(fcntl, FD, TRACK, _, _, _) \
    X(fcntl64, FD, TRACK, _, _, _) \
    X(syscall, NONE, TRACK, _, _, _) \
    X(fchdir, FD, TRACK, _, _, _) \
    /* --- queries answered virtually --- */ \
    X(lseek, FD, QUERY, _, _, _) \
    X(lseek64, FD, QUERY, _, _, _) \
    X(fstat, FD, QUERY, _, _, _) \
    X(fstat64, FD, QUERY, _, _, _) \
    X(stat, PATH, QUERY, _, _, _) \
    X(stat64, PATH, QUERY, _, _, _) \
    X(lstat, LPATH, QUERY, _, _, _) \
    X(lstat64, LPATH, QUERY, _, _, _) \
    X(fstatat, AT, QUERY, _, _, _) \
    X(fstatat64, AT, QUERY, _, _, _) \
    X(__fxstat, FD, QUERY, _, _, _) \
    X(__fxstat64, FD, QUERY, _, _, _) \
    X(__xstat, PATH, QUERY, _, _, _) \
    X(__xstat64, PATH, QUERY, _, _, _) \
    X(__lxstat, LPATH, QUERY, _, _, _) \
    X(__lxstat64, LPATH, QUERY, _, _, _) \
    X(__fxstatat, AT, QUERY, _, _, _) \
    X(__fxstatat64, AT, QUERY, _, _, _) \
    X(statx, AT, QUERY, _, _, _) \
    /* --- reads, positional writes, sizes, names, kernel copies, mappings --- */ \
    X(read, FD, FLUSH, _, _, _) \
    X(readv, FD, FLUSH, _, _, _) \
    X(__read_chk, FD, FLUSH, _, _, _) \
    X(pread, FD, FLUSH, _, _, _) \
    X(pread64, FD, FLUSH, _, _, _) \
    X(__pread_chk, FD, FLUSH, _, _, _) \
    X(__pread64_chk, FD, FLUSH, _, _, _) \
    X(preadv, FD, FLUSH, _, _, _) \
    X(preadv64, FD, FLUSH, _, _, _) \
    X(preadv2, FD, FLUSH, _, _, _) \
    X(preadv64v2, FD, FLUSH, _, _, _) \
    X(pwrite, FD, FLUSH, _, _, _) \
    X(pwrite64, FD, FLUSH, _, _, _) \
    X(pwritev, FD, FLUSH, _, _, _) \
    X(pwritev64, FD, FLUSH, _, _, _) \
    X(pwritev2, FD, FLUSH, _, _, _) \
    X(pwritev64v2, FD, FLUSH, _, _, _) \
    X(ftruncate, FD, FLUSH, _, _, _) \
    X(ftruncate64, FD, FLUSH, _, _, _) \
    X(truncate, PATH, FLUSH, _, _, _) \
    X(truncate64, PATH, FLUSH, _, _, _) \
    X(fallocate, FD, FLUSH, _, _, _) \
    X(fallocate64, FD, FLUSH, _, _, _) \
    X(posix_fallocate, FD, FLUSH, _, _, _) \
    X(posix_fallocate64, FD, FLUSH, _, _, _) \
    X(rename, PATH, FLUSH, _, _, _) \
    X(renameat, AT, FLUSH, _, _, _) \
    X(renameat2, AT, FLUSH, _, _, _) \
    X(unlink, LPATH, FLUSH, _, _, _) \
    X(unlinkat, AT, FLUSH, _, _, _) \
    X(remove, LPATH, FLUSH, _, _, _) \
    X(link, LPATH, FLUSH, _, _, _) \
    X(linkat, AT, FLUSH, _, _, _) \
    X(sendfile, FD2, FLUSH, _, _, _) \
    X(sendfile64, FD2, FLUSH, _, _, _) \
    X(splice, FD2, FLUSH, _, _, _) \
    X(copy_file_range, FD2, FLUSH, _, _, _) \
    X(mmap, FD, FLUSH, _, _, _) \
    X(mmap64, FD, FLUSH, _, _, _) \
    X(ioctl, FD, FLUSH, _, _, _) \
    X(sendmsg, FD, FLUSH, _, _, _) \
    X(sendmmsg, FD, FLUSH, _, _, _) \
    /* --- durability --- */ \
    X(fsync, FD, BARRIER, int, (int fd), (fd)) \
    X(fdatasync, FD, BARRIER, int, (int fd), (fd)) \
    X(sync_file_range, FD, BARRIER, int, (int fd, off64_t off, off64_t n, unsigned int fl), (fd, off, n, fl)) \
    X(sync, NONE, ALL, _, _, _) \
    X(syncfs, FD, ALL, _, _, _) \
    /* --- metadata: times, mode, owner, extended attributes --- */ \
    X(utime, PATH, BARRIER, int, (const char *path, const struct utimbuf *tb), (path, tb)) \
    X(utimes, PATH, BARRIER, int, (const char *path, const struct timeval tv[2]), (path, tv)) \
    X(lutimes, LPATH, BARRIER, int, (const char *path, const struct timeval tv[2]), (path, tv)) \
    X(futimes, FD, BARRIER, int, (int fd, const struct timeval tv[2]), (fd, tv)) \
    X(futimens, FD, BARRIER, int, (int fd, const struct timespec ts[2]), (fd, ts)) \
    X(utimensat, AT, BARRIER, int, (int dirfd, const char *path, const struct timespec ts[2], int flags), (dirfd, path, ts, flags)) \
    X(futimesat, AT, BARRIER, int, (int dirfd, const char *path, const struct timeval tv[2]), (dirfd, path, tv)) \
    X(chmod, PATH, BARRIER, int, (const char *path, mode_t mode), (path, mode)) \
    X(lchmod, LPATH, BARRIER, int, (const char *path, mode_t mode), (path, mode)) \
    X(fchmod, FD, BARRIER, int, (int fd, mode_t mode), (fd, mode)) \
    X(fchmodat, AT, BARRIER, int, (int dirfd, const char *path, mode_t mode, int flags), (dirfd, path, mode, flags)) \
    X(chown, PATH, BARRIER, int, (const char *path, uid_t u, gid_t g), (path, u, g)) \
    X(lchown, LPATH, BARRIER, int, (const char *path, uid_t u, gid_t g), (path, u, g)) \
    X(fchown, FD, BARRIER, int, (int fd, uid_t u, gid_t g), (fd, u, g)) \
    X(fchownat, AT, BARRIER, int, (int dirfd, const char *path, uid_t u, gid_t g, int flags), (dirfd, path, u, g, flags)) \
    X(setxattr, PATH, BARRIER, int, (const char *path, const char *n, const void *v, size_t s, int fl), (path, n, v, s, fl)) \
    X(lsetxattr, LPATH, BARRIER, int, (const char *path, const char *n, const void *v, size_t s, int fl), (path, n, v, s, fl)) \
    X(fsetxattr, FD, BARRIER, int, (int fd, const char *n, const void *v, size_t s, int fl), (fd, n, v, s, fl)) \
    X(getxattr, PATH, BARRIER, ssize_t, (const char *path, const char *n, void *v, size_t s), (path, n, v, s)) \
    X(lgetxattr, LPATH, BARRIER, ssize_t, (const char *path, const char *n, void *v, size_t s), (path, n, v, s)) \
    X(fgetxattr, FD, BARRIER, ssize_t, (int fd, const char *n, void *v, size_t s), (fd, n, v, s)) \
    X(listxattr, PATH, BARRIER, ssize_t, (const char *path, char *l, size_t s), (path, l, s)) \
    X(llistxattr, LPATH, BARRIER, ssize_t, (const char *path, char *l, size_t s), (path, l, s)) \
    X(flistxattr, FD, BARRIER, ssize_t, (int fd, char *l, size_t s), (fd, l, s)) \
    X(removexattr, PATH, BARRIER, int, (const char *path, const char *n), (path, n)) \
    X(lremovexattr, LPATH, BARRIER, int, (const char *path, const char *n), (path, n)) \
    X(fremovexattr, FD, BARRIER, int, (int fd, const char *n), (fd, n)) \
    /* --- hints, space, terminals, sockets: their effect depends on what was written --- */ \
    X(posix_fadvise, FD, BARRIER, int, (int fd, off_t off, off_t len, int adv), (fd, off, len, adv)) \
    X(posix_fadvise64, FD, BARRIER, int, (int fd, off64_t off, off64_t len, int adv), (fd, off, len, adv)) \
    X(readahead, FD, BARRIER, ssize_t, (int fd, off64_t off, size_t n), (fd, off, n)) \
    X(fstatfs, FD, BARRIER, int, (int fd, struct statfs *b), (fd, b)) \
    X(fstatfs64, FD, BARRIER, int, (int fd, struct statfs64 *b), (fd, b)) \
    X(fstatvfs, FD, BARRIER, int, (int fd, struct statvfs *b), (fd, b)) \
    X(fstatvfs64, FD, BARRIER, int, (int fd, struct statvfs64 *b), (fd, b)) \
    X(statfs, PATH, BARRIER, int, (const char *path, struct statfs *b), (path, b)) \
    X(statfs64, PATH, BARRIER, int, (const char *path, struct statfs64 *b), (path, b)) \
    X(statvfs, PATH, BARRIER, int, (const char *path, struct statvfs *b), (path, b)) \
    X(statvfs64, PATH, BARRIER, int, (const char *path, struct statvfs64 *b), (path, b)) \
    X(tcdrain, FD, BARRIER, int, (int fd), (fd)) \
    X(tcflush, FD, BARRIER, int, (int fd, int q), (fd, q)) \
    X(tcflow, FD, BARRIER, int, (int fd, int a), (fd, a)) \
    X(tcsendbreak, FD, BARRIER, int, (int fd, int d), (fd, d)) \
    X(tcsetattr, FD, BARRIER, int, (int fd, int a, const struct termios *t), (fd, a, t)) \
    X(send, FD, BARRIER, ssize_t, (int fd, const void *b, size_t n, int fl), (fd, b, n, fl)) \
    X(sendto, FD, BARRIER, ssize_t, (int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t al), (fd, b, n, fl, a, al)) \
    X(shutdown, FD, BARRIER, int, (int fd, int how), (fd, how)) \
    X(vmsplice, FD, BARRIER, ssize_t, (int fd, const struct iovec *v, size_t n, unsigned int fl), (fd, v, n, fl)) \
    X(tee, FD2, BARRIER, ssize_t, (int fd, int fd2, size_t n, unsigned int fl), (fd, fd2, n, fl)) \
    X(aio_write, AIOCB, BARRIER, int, (struct aiocb *cb), (cb)) \
    X(aio_write64, AIOCB, BARRIER, int, (struct aiocb64 *cb), (cb)) \
    X(aio_read, AIOCB, BARRIER, int, (struct aiocb *cb), (cb)) \
    X(aio_read64, AIOCB, BARRIER, int, (struct aiocb64 *cb), (cb)) \
    X(aio_fsync, AIOCB, BARRIER, int, (int op, struct aiocb *cb), (op, cb)) \
    X(aio_fsync64, AIOCB, BARRIER, int, (int op, struct aiocb64 *cb), (op, cb)) \
    /* --- locks --- */ \
    X(flock, FD, LOCK, _, _, _) \
    X(lockf, FD, LOCK, _, _, _) \
    X(lockf64, FD, LOCK, _, _, _) \
    /* --- process lifecycle: every target first --- */ \
    X(exit, NONE, EXIT, _, _, _) \
    X(__libc_start_main, NONE, EXIT, _, _, _) \
    X(_exit, NONE, ALL, _, _, _) \
    X(_Exit, NONE, ALL, _, _, _) \
    X(quick_exit, NONE, ALL, _, _, _) \
    X(execve, PATH, ALL, _, _, _) \
    X(execv, PATH, ALL, _, _, _) \
    X(execvp, PATH, ALL, _, _, _) \
    X(execvpe, PATH, ALL, _, _, _) \
    X(fexecve, FD, ALL, _, _, _) \
    X(execveat, AT, ALL, _, _, _) \
    X(execl, PATH, ALL, _, _, _) \
    X(execlp, PATH, ALL, _, _, _) \
    X(execle, PATH, ALL, _, _, _) \
    X(fork, NONE, ALL, _, _, _) \
    X(vfork, NONE, ALL, _, _, _) \
    X(_Fork, NONE, ALL, _, _, _) \
    X(clone, NONE, ALL, _, _, _) \
    X(posix_spawn, PATH, ALL, _, _, _) \
    X(posix_spawnp, PATH, ALL, _, _, _) \
    X(system, NONE, ALL, _, _, _) \
    X(popen, NONE, ALL, _, _, _) \
    X(sigaction, NONE, SIGNAL, _, _, _) \
    X(signal, NONE, SIGNAL, _, _, _) \
    X(bsd_signal, NONE, SIGNAL, _, _, _) \
    X(ssignal, NONE, SIGNAL, _, _, _) \
    X(sysv_signal, NONE, SIGNAL, _, _, _) \
    X(__sysv_signal, NONE, SIGNAL, _, _, _) \
    /* --- PASS: names, folders, sockets' own business, terminals' state, handles --- */ \
    X(access, PATH, PASS, _, _, _) \
    X(eaccess, PATH, PASS, _, _, _) \
    X(euidaccess, PATH, PASS, _, _, _) \
    X(faccessat, AT, PASS, _, _, _) \
    X(accept, FD, PASS, _, _, _) \
    X(accept4, FD, PASS, _, _, _) \
    X(bind, FD, PASS, _, _, _) \
    X(connect, FD, PASS, _, _, _) \
    X(listen, FD, PASS, _, _, _) \
    X(getpeername, FD, PASS, _, _, _) \
    X(getsockname, FD, PASS, _, _, _) \
    X(getsockopt, FD, PASS, _, _, _) \
    X(setsockopt, FD, PASS, _, _, _) \
    X(sockatmark, FD, PASS, _, _, _) \
    X(isfdtype, FD, PASS, _, _, _) \
    X(recv, FD, PASS, _, _, _) \
    X(recvfrom, FD, PASS, _, _, _) \
    X(recvmsg, FD, PASS, _, _, _) \
    X(recvmmsg, FD, PASS, _, _, _) \
    X(acct, PATH, PASS, _, _, _) \
    X(aio_cancel, FD, PASS, _, _, _) \
    X(aio_cancel64, FD, PASS, _, _, _) \
    X(canonicalize_file_name, PATH, PASS, _, _, _) \
    X(realpath, PATH, PASS, _, _, _) \
    X(readlink, LPATH, PASS, _, _, _) \
    X(readlinkat, AT, PASS, _, _, _) \
    X(chdir, PATH, PASS, _, _, _) \
    X(chroot, PATH, PASS, _, _, _) \
    X(mkdir, PATH, PASS, _, _, _) \
    X(mkdirat, AT, PASS, _, _, _) \
    X(rmdir, PATH, PASS, _, _, _) \
    X(mkfifo, PATH, PASS, _, _, _) \
    X(mkfifoat, AT, PASS, _, _, _) \
    X(mknod, PATH, PASS, _, _, _) \
    X(mknodat, AT, PASS, _, _, _) \
    X(symlink, PATH, PASS, _, _, _) \
    X(symlinkat, AT, PASS, _, _, _) \
    X(opendir, PATH, PASS, _, _, _) \
    X(fdopendir, FD, PASS, _, _, _) \
    X(scandir, PATH, PASS, _, _, _) \
    X(scandir64, PATH, PASS, _, _, _) \
    X(scandirat, AT, PASS, _, _, _) \
    X(scandirat64, AT, PASS, _, _, _) \
    X(getdents64, FD, PASS, _, _, _) \
    X(getdirentries, FD, PASS, _, _, _) \
    X(getdirentries64, FD, PASS, _, _, _) \
    X(ftw, PATH, PASS, _, _, _) \
    X(ftw64, PATH, PASS, _, _, _) \
    X(nftw, PATH, PASS, _, _, _) \
    X(nftw64, PATH, PASS, _, _, _) \
    X(pathconf, PATH, PASS, _, _, _) \
    X(fpathconf, FD, PASS, _, _, _) \
    X(tempnam, PATH, PASS, _, _, _) \
    X(isatty, FD, QUERY, _, _, _) \
    X(ttyname, FD, QUERY, _, _, _) \
    X(ttyname_r, FD, QUERY, _, _, _) \
    X(ptsname, FD, PASS, _, _, _) \
    X(ptsname_r, FD, PASS, _, _, _) \
    X(grantpt, FD, PASS, _, _, _) \
    X(unlockpt, FD, PASS, _, _, _) \
    X(tcgetattr, FD, QUERY, _, _, _) \
    X(tcgetpgrp, FD, PASS, _, _, _) \
    X(tcsetpgrp, FD, PASS, _, _, _) \
    X(tcgetsid, FD, PASS, _, _, _) \
    X(revoke, PATH, PASS, _, _, _) \
    X(epoll_ctl, FD, PASS, _, _, _) \
    X(eventfd_read, FD, PASS, _, _, _) \
    X(eventfd_write, FD, PASS, _, _, _) \
    X(signalfd, FD, PASS, _, _, _) \
    X(inotify_add_watch, PATH, PASS, _, _, _) \
    X(inotify_rm_watch, FD, PASS, _, _, _) \
    X(fanotify_mark, AT, PASS, _, _, _) \
    X(name_to_handle_at, AT, PASS, _, _, _) \
    X(mount, PATH, PASS, _, _, _) \
    X(mount_setattr, AT, PASS, _, _, _) \
    X(open_tree, AT, PASS, _, _, _) \
    X(fsconfig, FD, PASS, _, _, _) \
    X(fsmount, FD, PASS, _, _, _) \
    X(fspick, AT, PASS, _, _, _) \
    X(setns, FD, PASS, _, _, _) \
    X(shm_open, PATH, PASS, _, _, _) \
    X(shm_unlink, PATH, PASS, _, _, _) \
    X(posix_spawn_file_actions_addopen, PATH, PASS, _, _, _) \
    X(posix_spawn_file_actions_addclose, FD, PASS, _, _, _) \
    X(posix_spawn_file_actions_adddup2, FD2, PASS, _, _, _) \
    X(posix_spawn_file_actions_addchdir_np, PATH, PASS, _, _, _) \
    X(posix_spawn_file_actions_addfchdir_np, FD, PASS, _, _, _) \
    X(getenv, NONE, PASS, _, _, _) \
    X(secure_getenv, NONE, PASS, _, _, _) \
    X(setenv, NONE, PASS, _, _, _) \
    X(unsetenv, NONE, PASS, _, _, _) \
    X(sethostname, NONE, PASS, _, _, _) \
    X(setdomainname, NONE, PASS, _, _, _) \
    X(setlogin, NONE, PASS, _, _, _)
// clang-format on

#endif /* BUFSHIM_CALLS_I_H */
