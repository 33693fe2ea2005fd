/* wrap_stdio.c - stdio entry points: opening diverting streams, std-stream mapping, dprintf. */

/*
 * Output through a FILE needs no work here once the FILE diverts (see
 * stream.c): glibc's own code buffers and our cookie receives the
 * flushes. printf, puts, putchar, vprintf, perror and their FORTIFY forms read
 * the `stdout`/`stderr` variables, which bs_stdio_init points at diverting
 * streams, so they are not wrapped at all. The wrappers below exist for two
 * reasons only: to open diverting streams (fopen, fdopen, freopen), and to map
 * a saved pointer to an original std stream (libstdc++'s std::cout keeps the
 * `stdout` it saw at start-up; inline putc_unlocked ends in __overflow) to its
 * replacement. dprintf/vdprintf write to a descriptor through a private FILE
 * that no wrapper sees, so they format here and write through the shim.
 */

#include "real_i.h"

#include "descriptors_i.h"
#include "elide_i.h"
#include "errno_i.h"
#include "shim_i.h"
#include "stream_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- opening ---- */

/*
 * Whether a new stream should divert. Before the shim's constructors ran
 * (another library's constructor opening its log), the configuration is not
 * loaded yet: a stream is made diverting whenever BUFSHIM_PATHS is set, since
 * the start-up scan registers its descriptor and its later flushes must go
 * through the shim like every other write to that file. Should the
 * configuration turn out unusable, such a stream still behaves as glibc's.
 */
static int diverting(void)
{
    if (bs_in_shim || !bs_stdio_usable())
        return 0;
    if (bs_stdio_started())
        return bs_shim_active();
    const char *paths = getenv("BUFSHIM_PATHS");
    return paths != NULL && paths[0] != '\0';
}

/* fopen and fopen64 (identical on LP64): a diverting stream over a descriptor
 * opened through the shim, with glibc's side effects (the seek to the end of
 * an "a" stream). Wide ",ccs=" streams stay glibc's. */
static FILE *open_stream(const char *path, const char *mode, __typeof__(fopen) *real)
{
    struct bs_stdio_mode m;
    if (path == NULL || mode == NULL || !diverting())
        return real(path, mode);
    int pm = bs_stdio_parse_mode(mode, &m);
    if (pm < 0)
        return real(path, mode);
    if (pm > 0) {
        /* A wide ",ccs=" stream stays glibc's and bypasses the shim. Made
         * known to the shim, a zero-length read on its descriptor is a
         * barrier: what was written to the file before this open is there. */
        FILE *fp = real(path, mode);
        if (fp != NULL) {
            int saved = errno;
            char none;
            int fd = BS_REAL(fileno)(fp);
            bs_fd_rescan(fd);
            bs_call_read(fd, &none, 0);
            errno = saved;
        }
        return fp;
    }
    int saved = errno;
    int fd = bs_call_openat(AT_FDCWD, path, m.oflags, 0666);
    if (fd < 0)
        return NULL;
    if (m.appending && !m.reads && bs_call_lseek(fd, 0, SEEK_END) == (off_t)-1 && errno != ESPIPE)
        goto fail;
    FILE *fp = bs_stdio_stream_new(fd, m.cookie);
    if (fp == NULL)
        goto fail;
    errno = saved;
    return fp;
fail:;
    int e = errno;
    bs_call_close(fd);
    errno = e;
    return NULL;
}

BS_WRAPPER(FILE *, fopen, (const char *path, const char *mode))
{
    return open_stream(path, mode, BS_REAL(fopen));
}

BS_WRAPPER(FILE *, fopen64, (const char *path, const char *mode))
{
    return open_stream(path, mode, BS_REAL(fopen64));
}

/* As glibc's fdopen: access checked against F_GETFL, "a" adds O_APPEND (and
 * then seeks to the end), the descriptor is not closed on failure. */
BS_WRAPPER(FILE *, fdopen, (int fd, const char *mode))
{
    int reads = 0, writes = 0, appending = 0;
    if (mode == NULL || !diverting()) {
        /* glibc's stream reaches the kernel through fd itself. */
        BS_SAVE_ERRNO(bs_fd_materialize_path(fd));
        return BS_REAL(fdopen)(fd, mode);
    }
    switch (mode[0]) {
    case 'r':
        reads = 1;
        break;
    case 'w':
        writes = 1;
        break;
    case 'a':
        writes = appending = 1;
        break;
    default:
        errno = EINVAL;
        return NULL;
    }
    for (int i = 1; i < 5 && mode[i] != '\0'; i++) {
        if (mode[i] == '+') {
            reads = writes = 1;
            break;
        }
    }
    int saved = errno;
    int fl = bs_fd_status_flags(fd);
    if (fl == -1)
        return NULL;
    if (((fl & O_ACCMODE) == O_RDONLY && writes) || ((fl & O_ACCMODE) == O_WRONLY && reads)) {
        errno = EINVAL;
        return NULL;
    }
    int do_seek = 0;
    if (appending && !(fl & O_APPEND)) {
        do_seek = 1;
        if (BS_REAL(fcntl)(fd, F_SETFL, fl | O_APPEND) == -1)
            return NULL;
    }
    bs_fd_rescan(fd);
    const char *cmode = reads && writes ? (mode[0] == 'r'   ? "r+"
                                           : mode[0] == 'w' ? "w+"
                                                            : "a+")
                                        : (mode[0] == 'r'   ? "r"
                                           : mode[0] == 'w' ? "w"
                                                            : "a");
    FILE *fp = bs_stdio_stream_new(fd, cmode);
    if (fp == NULL)
        return NULL;
    if (do_seek && !reads && bs_call_lseek(fd, 0, SEEK_END) == (off_t)-1 && errno != ESPIPE) {
        int e = errno;
        bs_stdio_stream_discard(fp);
        errno = e;
        return NULL;
    }
    errno = saved;
    return fp;
}

/* freopen on a diverting stream is done in place; a glibc stream (opened
 * before the shim was active, or a wide ",ccs=" stream) stays glibc's. */
static FILE *reopen_stream(const char *path, const char *mode, FILE *fp, __typeof__(freopen) *real)
{
    fp = bs_stdio_map(fp);
    if (mode != NULL && !bs_in_shim && bs_stdio_is_ours(fp))
        return bs_stdio_stream_reopen(fp, path, mode);
    return real(path, mode, fp);
}

BS_WRAPPER(FILE *, freopen, (const char *path, const char *mode, FILE *fp))
{
    return reopen_stream(path, mode, fp, BS_REAL(freopen));
}

BS_WRAPPER(FILE *, freopen64, (const char *path, const char *mode, FILE *fp))
{
    return reopen_stream(path, mode, fp, BS_REAL(freopen64));
}

BS_WRAPPER(int, fclose, (FILE * fp))
{
    return bs_stdio_stream_close(bs_stdio_map(fp));
}

/* ---- output through a FILE*: map a saved original std stream ---- */

BS_WRAPPER(size_t, fwrite, (const void *p, size_t size, size_t n, FILE *fp))
{
    return BS_REAL(fwrite)(p, size, n, bs_stdio_map(fp));
}

BS_WRAPPER(size_t, fwrite_unlocked, (const void *p, size_t size, size_t n, FILE *fp))
{
    return BS_REAL(fwrite_unlocked)(p, size, n, bs_stdio_map(fp));
}

BS_WRAPPER(int, fputs, (const char *s, FILE *fp))
{
    return BS_REAL(fputs)(s, bs_stdio_map(fp));
}

BS_WRAPPER(int, fputs_unlocked, (const char *s, FILE *fp))
{
    return BS_REAL(fputs_unlocked)(s, bs_stdio_map(fp));
}

BS_WRAPPER(int, fputc, (int c, FILE *fp))
{
    return BS_REAL(fputc)(c, bs_stdio_map(fp));
}

BS_WRAPPER(int, fputc_unlocked, (int c, FILE *fp))
{
    return BS_REAL(fputc_unlocked)(c, bs_stdio_map(fp));
}

BS_WRAPPER(int, putc, (int c, FILE *fp))
{
    return BS_REAL(putc)(c, bs_stdio_map(fp));
}

BS_WRAPPER(int, putc_unlocked, (int c, FILE *fp))
{
    return BS_REAL(putc_unlocked)(c, bs_stdio_map(fp));
}

BS_WRAPPER(int, putw, (int w, FILE *fp))
{
    return BS_REAL(putw)(w, bs_stdio_map(fp));
}

/* Called by the inline putc_unlocked/fputc_unlocked of compiled programs when
 * the stream's buffer is full. */
BS_WRAPPER(int, __overflow, (FILE * fp, int ch))
{
    return BS_REAL(__overflow)(bs_stdio_map(fp), ch);
}

BS_WRAPPER(int, fprintf, (FILE * fp, const char *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = BS_REAL(vfprintf)(bs_stdio_map(fp), fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, vfprintf, (FILE * fp, const char *fmt, va_list ap))
{
    return BS_REAL(vfprintf)(bs_stdio_map(fp), fmt, ap);
}

BS_WRAPPER(int, __fprintf_chk, (FILE * fp, int flag, const char *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = BS_REAL(__vfprintf_chk)(bs_stdio_map(fp), flag, fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, __vfprintf_chk, (FILE * fp, int flag, const char *fmt, va_list ap))
{
    return BS_REAL(__vfprintf_chk)(bs_stdio_map(fp), flag, fmt, ap);
}

/* ---- dprintf: format, then one write through the shim ---- */

/* As glibc's vdprintf: fails (EBADF) on a bad descriptor before formatting;
 * FLAG >= 0 applies FORTIFY's checks as __vdprintf_chk does. Returns the
 * number of bytes, or -1 when formatting or the write failed. */
static int fd_vprintf(int fd, int flag, const char *fmt, va_list ap)
{
    char stackbuf[1024];
    char *buf = stackbuf;
    int saved = errno;
    if (bs_call_lseek(fd, 0, SEEK_CUR) == (off_t)-1 && errno != ESPIPE)
        return -1;
    errno = saved;
    va_list again;
    va_copy(again, ap);
    int n = flag < 0 ? vsnprintf(buf, sizeof stackbuf, fmt, ap)
                     : __vsnprintf_chk(buf, sizeof stackbuf, flag, sizeof stackbuf, fmt, ap);
    if (n >= 0 && (size_t)n >= sizeof stackbuf) {
        buf = malloc((size_t)n + 1);
        if (buf == NULL)
            n = -1;
        else if (flag < 0)
            n = vsnprintf(buf, (size_t)n + 1, fmt, again);
        else
            n = __vsnprintf_chk(buf, (size_t)n + 1, flag, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    size_t done = n > 0 ? bs_call_write_all(fd, buf, (size_t)n) : 0;
    int r = n >= 0 && done == (size_t)n ? n : -1;
    if (buf != stackbuf && buf != NULL) {
        int e = errno;
        free(buf);
        errno = e;
    }
    if (r >= 0)
        errno = saved;
    return r;
}

BS_WRAPPER(int, vdprintf, (int fd, const char *fmt, va_list ap))
{
    if (bs_in_shim || !bs_shim_active())
        return BS_REAL(vdprintf)(fd, fmt, ap);
    return fd_vprintf(fd, -1, fmt, ap);
}

BS_WRAPPER(int, dprintf, (int fd, const char *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = !bs_in_shim && bs_shim_active() ? fd_vprintf(fd, -1, fmt, ap)
                                            : BS_REAL(vdprintf)(fd, fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, __vdprintf_chk, (int fd, int flag, const char *fmt, va_list ap))
{
    if (bs_in_shim || !bs_shim_active())
        return BS_REAL(__vdprintf_chk)(fd, flag, fmt, ap);
    return fd_vprintf(fd, flag, fmt, ap);
}

BS_WRAPPER(int, __dprintf_chk, (int fd, int flag, const char *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = !bs_in_shim && bs_shim_active() ? fd_vprintf(fd, flag, fmt, ap)
                                            : BS_REAL(__vdprintf_chk)(fd, flag, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- stream control on a saved original std stream: map it ---- */

BS_WRAPPER(int, fflush, (FILE * fp))
{
    return BS_REAL(fflush)(fp == NULL ? NULL : bs_stdio_map(fp));
}

BS_WRAPPER(int, fflush_unlocked, (FILE * fp))
{
    return BS_REAL(fflush_unlocked)(fp == NULL ? NULL : bs_stdio_map(fp));
}

BS_WRAPPER(int, setvbuf, (FILE * fp, char *buf, int mode, size_t size))
{
    fp = bs_stdio_map(fp);
    int r = BS_REAL(setvbuf)(fp, buf, mode, size);
    if (r == 0)
        bs_stdio_note_user_buffer(fp);
    return r;
}

BS_WRAPPER(void, setbuf, (FILE * fp, char *buf))
{
    fp = bs_stdio_map(fp);
    BS_REAL(setbuf)(fp, buf);
    bs_stdio_note_user_buffer(fp);
}

BS_WRAPPER(void, setbuffer, (FILE * fp, char *buf, size_t size))
{
    fp = bs_stdio_map(fp);
    BS_REAL(setbuffer)(fp, buf, size);
    bs_stdio_note_user_buffer(fp);
}

BS_WRAPPER(void, setlinebuf, (FILE * fp))
{
    fp = bs_stdio_map(fp);
    BS_REAL(setlinebuf)(fp);
    bs_stdio_note_user_buffer(fp);
}

#define BS_MAP1(ret, name)                                                                         \
    BS_WRAPPER(ret, name, (FILE * fp))                                                             \
    {                                                                                              \
        return BS_REAL(name)(bs_stdio_map(fp));                                              \
    }

BS_MAP1(int, fileno)
BS_MAP1(int, fileno_unlocked)
BS_MAP1(int, ferror)
BS_MAP1(int, ferror_unlocked)
BS_MAP1(int, feof)
BS_MAP1(int, feof_unlocked)
BS_MAP1(size_t, __fpending)
BS_MAP1(size_t, __fbufsize)
BS_MAP1(int, __flbf)
BS_MAP1(int, __fwriting)
BS_MAP1(long, ftell)
BS_MAP1(off_t, ftello)
BS_MAP1(off64_t, ftello64)
BS_MAP1(int, ftrylockfile)

BS_WRAPPER(void, clearerr, (FILE * fp))
{
    BS_REAL(clearerr)(bs_stdio_map(fp));
}

BS_WRAPPER(void, clearerr_unlocked, (FILE * fp))
{
    BS_REAL(clearerr_unlocked)(bs_stdio_map(fp));
}

BS_WRAPPER(void, __fpurge, (FILE * fp))
{
    BS_REAL(__fpurge)(bs_stdio_map(fp));
}

BS_WRAPPER(void, rewind, (FILE * fp))
{
    BS_REAL(rewind)(bs_stdio_map(fp));
}

BS_WRAPPER(void, flockfile, (FILE * fp))
{
    BS_REAL(flockfile)(bs_stdio_map(fp));
}

BS_WRAPPER(void, funlockfile, (FILE * fp))
{
    BS_REAL(funlockfile)(bs_stdio_map(fp));
}

BS_WRAPPER(int, fseek, (FILE * fp, long off, int whence))
{
    return BS_REAL(fseek)(bs_stdio_map(fp), off, whence);
}

BS_WRAPPER(int, fseeko, (FILE * fp, off_t off, int whence))
{
    return BS_REAL(fseeko)(bs_stdio_map(fp), off, whence);
}

BS_WRAPPER(int, fseeko64, (FILE * fp, off64_t off, int whence))
{
    return BS_REAL(fseeko64)(bs_stdio_map(fp), off, whence);
}

BS_WRAPPER(int, fgetpos, (FILE * fp, fpos_t *pos))
{
    return BS_REAL(fgetpos)(bs_stdio_map(fp), pos);
}

BS_WRAPPER(int, fgetpos64, (FILE * fp, fpos64_t *pos))
{
    return BS_REAL(fgetpos64)(bs_stdio_map(fp), pos);
}

BS_WRAPPER(int, fsetpos, (FILE * fp, const fpos_t *pos))
{
    return BS_REAL(fsetpos)(bs_stdio_map(fp), pos);
}

BS_WRAPPER(int, fsetpos64, (FILE * fp, const fpos64_t *pos))
{
    return BS_REAL(fsetpos64)(bs_stdio_map(fp), pos);
}
