/* stream.c - diverting FILE streams: glibc's own buffering, our sink (no wrapper: those are in
 * wrap_stdio.c and wrap_stdio_wide.c). */

/*
 * Why fopencookie: glibc's file streams write through an internal __write that
 * no wrapper sees, and it rejects foreign vtables. A fopencookie stream runs
 * glibc's own file-buffer code (_IO_file_xsputn, _IO_file_overflow,
 * _IO_file_sync) and calls our cookie functions exactly where a file stream
 * would call write/read/lseek/close. Giving it glibc's default buffer for the
 * descriptor (fstat/isatty, decided as _IO_file_doallocate does) makes every
 * flush happen at the same byte as without the shim, so stdio output
 * interleaves with direct write()s exactly as it would.
 */

#include "real_i.h"

#include "errno_i.h"
#include "shim_i.h"
#include "stdio_i.h"
#include "stream_i.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *bs_stdio_orig[3];
FILE *bs_stdio_repl[3];

/* One diverting stream: the cookie of its fopencookie FILE. */
struct bs_stream {
    FILE *fp;
    int fd;          /* -1 once detached (failed freopen, discard) */
    char *buf;       /* the buffer we gave glibc, or NULL */
    int user_buffer; /* the program chose the buffering: never recompute */
    int orientation; /* what fwide reports: -1, 0, 1 */
    struct bs_stream *next;
};

/* 0 when glibc's FILE does not look as expected: stdio is then left alone. */
static int layout_ok = -1;

/* ---- registry of our streams (a spinlock never held across I/O) ---- */

#define REG_BUCKETS 64
static struct bs_stream *streams_table[REG_BUCKETS];
static int streams_lock;

static void streams_acquire(void)
{
    while (__atomic_exchange_n(&streams_lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void streams_release(void)
{
    __atomic_store_n(&streams_lock, 0, __ATOMIC_RELEASE);
}

static unsigned streams_hash(const FILE *fp)
{
    uintptr_t v = (uintptr_t)fp;
    return (unsigned)((v >> 4) ^ (v >> 12)) % REG_BUCKETS;
}

static void streams_add(struct bs_stream *s)
{
    unsigned h = streams_hash(s->fp);
    streams_acquire();
    s->next = streams_table[h];
    streams_table[h] = s;
    streams_release();
}

static void streams_remove(struct bs_stream *s)
{
    unsigned h = streams_hash(s->fp);
    streams_acquire();
    for (struct bs_stream **p = &streams_table[h]; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    streams_release();
}

/* Our stream for fp, or NULL. The result stays valid while the caller owns fp
 * (only fclose of fp frees it). */
static struct bs_stream *streams_find(const FILE *fp)
{
    struct bs_stream *s;
    if (fp == NULL)
        return NULL;
    streams_acquire();
    for (s = streams_table[streams_hash(fp)]; s != NULL; s = s->next)
        if (s->fp == fp)
            break;
    streams_release();
    return s;
}

int bs_stdio_is_ours(FILE *fp)
{
    return streams_find(fp) != NULL;
}

/* ---- cookie functions: where glibc would call write/read/lseek/close ---- */

static ssize_t cookie_write(void *cookie, const char *buf, size_t len)
{
    struct bs_stream *s = cookie;
    /* A short count makes glibc set the stream's error flag. */
    return (ssize_t)bs_call_write_all(s->fd, buf, len);
}

static ssize_t cookie_read(void *cookie, char *buf, size_t len)
{
    struct bs_stream *s = cookie;
    return bs_call_read(s->fd, buf, len);
}

static int cookie_seek(void *cookie, off64_t *pos, int whence)
{
    struct bs_stream *s = cookie;
    off_t r = bs_call_lseek(s->fd, (off_t)*pos, whence);
    if (r == (off_t)-1)
        return -1;
    *pos = (off64_t)r;
    return 0;
}

/* Called by glibc from fclose (after its final flush) and never again: glibc
 * does not touch the user buffer after this (_IO_setb skips _IO_USER_BUF). */
static int cookie_close(void *cookie)
{
    struct bs_stream *s = cookie;
    int r = 0;
    if (s->fd >= 0)
        r = bs_call_close(s->fd);
    streams_remove(s);
    int saved = errno;
    free(s->buf);
    free(s);
    errno = saved;
    return r;
}

static const cookie_io_functions_t cookie_functions = {
    .read = cookie_read,
    .write = cookie_write,
    .seek = cookie_seek,
    .close = cookie_close,
};

/* ---- buffering exactly as glibc's _IO_file_doallocate decides it ---- */

/* glibc's default for a stream on fd: BUFSIZ unless 0 < st_blksize < BUFSIZ;
 * line buffered on a terminal. Returns _IOFBF or _IOLBF. */
static int default_buffering(int fd, size_t *size)
{
    struct stat st;
    int mode = _IOFBF;
    int saved = errno;
    *size = BUFSIZ;
    if (fd >= 0 && BS_REAL(fstat)(fd, &st) == 0) {
        if (S_ISCHR(st.st_mode) && isatty(fd))
            mode = _IOLBF;
        if (st.st_blksize > 0 && st.st_blksize < BUFSIZ)
            *size = (size_t)st.st_blksize;
    }
    errno = saved;
    return mode;
}

/* Gives s->fp a buffer of our own (freed by cookie_close) in MODE. With no
 * memory the stream keeps what it has: glibc then allocates BUFSIZ itself. */
static void set_buffer(struct bs_stream *s, int mode, size_t size)
{
    int saved = errno;
    if (mode == _IONBF) {
        BS_REAL(setvbuf)(s->fp, NULL, _IONBF, 0);
    } else {
        char *buf = malloc(size);
        if (buf != NULL) {
            BS_REAL(setvbuf)(s->fp, buf, mode, size);
            free(s->buf);
            s->buf = buf;
        }
    }
    errno = saved;
}

/* ---- creation, reopen, close ---- */

int bs_stdio_parse_mode(const char *mode, struct bs_stdio_mode *m)
{
    int omode;
    memset(m, 0, sizeof *m);
    switch (mode[0]) {
    case 'r':
        omode = O_RDONLY;
        m->reads = 1;
        break;
    case 'w':
        omode = O_WRONLY;
        m->oflags = O_CREAT | O_TRUNC;
        m->writes = 1;
        break;
    case 'a':
        omode = O_WRONLY;
        m->oflags = O_CREAT | O_APPEND;
        m->writes = 1;
        m->appending = 1;
        break;
    default:
        return -1;
    }
    /* glibc looks at up to six more characters and ignores unknown ones. */
    for (int i = 1; i < 7 && mode[i] != '\0'; i++) {
        switch (mode[i]) {
        case '+':
            omode = O_RDWR;
            m->reads = m->writes = 1;
            break;
        case 'x':
            m->oflags |= O_EXCL;
            break;
        case 'e':
            m->oflags |= O_CLOEXEC;
            break;
        default: /* 'b', 'm' (mmap reads: plain reads here, each a barrier), 'c' */
            break;
        }
    }
    m->oflags |= omode;
    /* Wide streams stay glibc's. */
    if (strstr(mode + 1, ",ccs=") != NULL)
        return 1;
    if (m->reads && m->writes)
        m->cookie = mode[0] == 'r' ? "r+" : mode[0] == 'w' ? "w+" : "a+";
    else
        m->cookie = mode[0] == 'r' ? "r" : mode[0] == 'w' ? "w" : "a";
    return 0;
}

FILE *bs_stdio_stream_new(int fd, const char *cookie_mode)
{
    struct bs_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->fd = fd;
    FILE *fp = fopencookie(s, cookie_mode, cookie_functions);
    if (fp == NULL) {
        int e = errno;
        free(s);
        errno = e;
        return NULL;
    }
    s->fp = fp;
    /* fopencookie marks its FILE with fileno -2; glibc's file code only asks
     * that it be != -1, so the real descriptor keeps fileno(), isatty(),
     * fstat(), flock() and fsync() on the stream working. */
    fp->_fileno = fd;
    streams_add(s);
    size_t size;
    int mode = default_buffering(fd, &size);
    set_buffer(s, mode, size);
    return fp;
}

void bs_stdio_stream_discard(FILE *fp)
{
    struct bs_stream *s = streams_find(fp);
    int saved = errno;
    if (s != NULL)
        s->fd = -1;
    BS_REAL(fclose)(fp);
    errno = saved;
}

void bs_stdio_note_user_buffer(FILE *fp)
{
    struct bs_stream *s = streams_find(fp);
    if (s != NULL)
        s->user_buffer = 1;
}

int bs_stdio_orientation(FILE *fp, int want)
{
    struct bs_stream *s = streams_find(fp);
    if (s == NULL)
        return 0;
    if (s->orientation == 0 && want != 0)
        s->orientation = want > 0 ? 1 : -1;
    return s->orientation;
}

/*
 * As glibc's freopen: flush, open the new file, keep the stream's descriptor
 * number (dup3 onto it, as glibc does for every stream since 2.x), reset the
 * stream's mode, errors, orientation and buffering. On failure the stream is
 * closed (its descriptor too) and NULL returned.
 */
FILE *bs_stdio_stream_reopen(FILE *fp, const char *path, const char *mode)
{
    struct bs_stream *s = streams_find(fp);
    struct bs_stdio_mode m;
    char procpath[64];
    FILE *result = NULL;
    int saved = errno;

    BS_REAL(flockfile)(fp);
    BS_REAL(fflush_unlocked)(fp);
    errno = saved;
    int fd = s->fd;
    if (path == NULL) {
        snprintf(procpath, sizeof procpath, "/proc/self/fd/%d", fd);
        path = procpath;
    }
    int newfd = -1;
    int pm = bs_stdio_parse_mode(mode, &m);
    if (pm < 0)
        errno = EINVAL;
    else
        newfd = bs_call_openat(AT_FDCWD, path, m.oflags, 0666);
    if (newfd >= 0 && fd >= 0 && newfd != fd) {
        if (BS_REAL(dup3)(newfd, fd, (m.oflags & O_CLOEXEC) ? O_CLOEXEC : 0) == -1) {
            int e = errno;
            bs_call_close(newfd);
            errno = e;
            newfd = -1;
        } else {
            bs_fd_rescan(fd);
            int e = errno;
            bs_call_close(newfd);
            errno = e;
            newfd = fd;
        }
    }
    if (newfd < 0) {
        int e = errno;
        if (fd >= 0)
            bs_call_close(fd);
        s->fd = -1;
        fp->_fileno = -1;
        fp->_flags |= BS_IO_NO_READS | BS_IO_NO_WRITES;
        errno = e;
        goto out;
    }
    s->fd = newfd;
    fp->_fileno = newfd;
    fp->_flags &= ~(BS_IO_NO_READS | BS_IO_NO_WRITES | BS_IO_IS_APPENDING | BS_IO_EOF_SEEN |
                    BS_IO_ERR_SEEN | BS_IO_LINE_BUF | BS_IO_UNBUFFERED | BS_IO_CURRENTLY_PUTTING);
    if (!m.reads)
        fp->_flags |= BS_IO_NO_READS;
    if (!m.writes)
        fp->_flags |= BS_IO_NO_WRITES;
    if (m.appending)
        fp->_flags |= BS_IO_IS_APPENDING;
    s->orientation = 0;
    s->user_buffer = 0;
    size_t size;
    int bufmode = default_buffering(newfd, &size);
    set_buffer(s, bufmode, size);
    if (m.appending && !m.reads)
        bs_call_lseek(newfd, 0, SEEK_END);
    errno = saved;
    result = fp;
out:
    BS_REAL(funlockfile)(fp);
    return result;
}

int bs_stdio_stream_close(FILE *fp)
{
    int k = 0;
    for (int i = 1; i <= 2; i++)
        if (fp != NULL && fp == __atomic_load_n(&bs_stdio_repl[i], __ATOMIC_ACQUIRE))
            k = i;
    struct bs_stream *s = streams_find(fp);
    int detached = s != NULL && s->fd < 0;
    if (detached) {
        /* A failed freopen left fileno -1: glibc will not call cookie_close. */
        streams_remove(s);
    }
    /* A glibc stream (a wide one, or opened while the shim was off) closes
     * its descriptor where the shim cannot see it: look at the number again
     * afterwards so that the shim forgets it. */
    int glibc_fd = -1;
    if (s == NULL && fp != NULL && !bs_in_shim && bs_shim_active()) {
        int saved = errno;
        glibc_fd = BS_REAL(fileno)(fp); /* EBADF for memory streams */
        errno = saved;
    }
    int r = BS_REAL(fclose)(fp);
    if (glibc_fd >= 0)
        BS_SAVE_ERRNO(bs_fd_rescan(glibc_fd));
    if (detached) {
        free(s->buf);
        free(s);
    }
    if (k != 0) {
        /* glibc never frees its std streams: after fclose(stdout) the
         * variable still points at a closed stream and printf fails with
         * EBADF. Give the program back the original, closed the same way
         * (its descriptor is already closed by cookie_close). */
        FILE *o = __atomic_exchange_n(&bs_stdio_orig[k], NULL, __ATOMIC_ACQ_REL);
        __atomic_store_n(&bs_stdio_repl[k], NULL, __ATOMIC_RELEASE);
        if (o == NULL)
            return r;
        int saved = errno;
        o->_fileno = -1;
        o->_flags |= BS_IO_NO_READS | BS_IO_NO_WRITES;
        BS_REAL(fclose)(o);
        errno = saved;
        if (k == 1 && stdout == fp)
            stdout = o;
        if (k == 2 && stderr == fp)
            stderr = o;
    }
    return r;
}

/* ---- the std streams ---- */

/* glibc's list of open streams (exported by libc.so.6 since 2.1, with its
 * lock): exit and fflush(NULL) flush in list order. */
extern FILE *_IO_list_all;
void _IO_list_lock(void);
void _IO_list_unlock(void);

/*
 * Moves the new stream fp (at the head of glibc's list) to just before orig in
 * it. glibc's std streams are the oldest, so exit and fflush(NULL) flush them
 * after every other stream, including streams opened by constructors that ran
 * before ours; the replacements must keep that place.
 */
static void take_place_of(FILE *fp, FILE *orig)
{
    _IO_list_lock();
    FILE **link = &_IO_list_all;
    while (*link != NULL && *link != fp)
        link = &(*link)->_chain;
    if (*link == fp) {
        *link = fp->_chain;
        FILE **at = &_IO_list_all;
        while (*at != NULL && *at != orig)
            at = &(*at)->_chain;
        fp->_chain = *at;
        *at = fp;
    }
    _IO_list_unlock();
}

static void replace_std(int fd)
{
    FILE *orig = fd == 1 ? stdout : stderr;
    /* A wide std stream stays glibc's (see README), and so does a stream a
     * constructor assigned to the variable that is not over fd 1/2. */
    if (orig == NULL || orig->_fileno != fd || BS_REAL(fwide)(orig, 0) > 0)
        return;
    /* fd itself is looked at when first used (bs_fd_slot). */
    FILE *fp = bs_stdio_stream_new(fd, "w");
    if (fp == NULL)
        return;
    struct bs_stream *s = streams_find(fp);
    /* Keep what the original had become: stderr's unbuffered flag, or a
     * buffer already chosen (used or setvbuf'd by a constructor before us). */
    if (orig->_flags & BS_IO_UNBUFFERED) {
        set_buffer(s, _IONBF, 0);
        s->user_buffer = fd != 2;
    } else if (orig->_IO_buf_base != NULL) {
        set_buffer(s, (orig->_flags & BS_IO_LINE_BUF) ? _IOLBF : _IOFBF,
                   (size_t)(orig->_IO_buf_end - orig->_IO_buf_base));
        s->user_buffer = 1;
    } else if (orig->_flags & BS_IO_LINE_BUF) {
        /* setvbuf(stdout, NULL, _IOLBF, 0) before any output (stdbuf -oL):
         * glibc keeps the flag and allocates its default size later. */
        size_t size;
        default_buffering(fd, &size);
        set_buffer(s, _IOLBF, size);
        s->user_buffer = 1;
    }
    /* Bytes a constructor left in the original's buffer move to the
     * replacement's buffer: flushing them now would put them in the file
     * before writes that, without the shim, come first. */
    BS_REAL(flockfile)(orig);
    if (orig->_IO_write_ptr > orig->_IO_write_base) {
        size_t n = (size_t)(orig->_IO_write_ptr - orig->_IO_write_base);
        BS_REAL(fwrite_unlocked)(orig->_IO_write_base, 1, n, fp);
        orig->_IO_write_ptr = orig->_IO_write_base;
    }
    BS_REAL(funlockfile)(orig);
    take_place_of(fp, orig);
    __atomic_store_n(&bs_stdio_repl[fd], fp, __ATOMIC_RELEASE);
    __atomic_store_n(&bs_stdio_orig[fd], orig, __ATOMIC_RELEASE);
    if (fd == 1)
        stdout = fp;
    else
        stderr = fp;
    /* Unbuffered, the original's inline putc_unlocked always calls
     * __overflow, whose wrapper maps it to the replacement. */
    BS_REAL(setvbuf)(orig, NULL, _IONBF, 0);
}

static void streams_fork_prepare(void)
{
    streams_acquire();
}

int bs_stdio_usable(void)
{
    int ok = __atomic_load_n(&layout_ok, __ATOMIC_RELAXED);
    if (ok >= 0)
        return ok;
    /* Probe the FILE layout once on a throwaway stream. */
    int saved = errno;
    struct bs_stream probe_cookie = {.fd = -1};
    FILE *probe = fopencookie(&probe_cookie, "r", (cookie_io_functions_t){0});
    ok = probe != NULL && probe->_fileno == -2 &&
         (probe->_flags & BS_IO_MAGIC_MASK) == BS_IO_MAGIC &&
         (probe->_flags & BS_IO_NO_READS) == 0 && (probe->_flags & BS_IO_NO_WRITES) != 0;
    if (probe != NULL)
        BS_REAL(fclose)(probe);
    __atomic_store_n(&layout_ok, ok, __ATOMIC_RELAXED);
    errno = saved;
    return ok;
}

static int started;

/*
 * Runs among the shim's own constructors, next to the core's one that loads
 * the configuration; nothing in this library opens streams in between, so
 * from here on bs_shim_active() answers for the configuration.
 */
__attribute__((constructor)) static void stdio_start(void)
{
    __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
}

int bs_stdio_started(void)
{
    return __atomic_load_n(&started, __ATOMIC_ACQUIRE);
}

void bs_stdio_init(void)
{
    static int done;
    if (__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
        return;
    if (!bs_shim_active() || !bs_stdio_usable())
        return;
    int saved = errno;
    pthread_atfork(streams_fork_prepare, streams_release, streams_release);
    /* From here on the wrappers tell this layer of a new file under fd 1 or 2. */
    __atomic_store_n(&bs_std_fd_changed_hook, bs_stdio_fd_changed, __ATOMIC_RELEASE);
    replace_std(1);
    replace_std(2);
    errno = saved;
}

void bs_stdio_fd_changed(int fd)
{
    if (fd != 1 && fd != 2)
        return;
    FILE *fp = __atomic_load_n(&bs_stdio_repl[fd], __ATOMIC_ACQUIRE);
    if (fp == NULL)
        return;
    struct bs_stream *s = streams_find(fp);
    if (s == NULL)
        return;
    BS_REAL(flockfile)(fp);
    /* glibc picks the buffering at the first output; until then a new file
     * under the descriptor decides it. */
    if (!s->user_buffer && !(fp->_flags & (BS_IO_CURRENTLY_PUTTING | BS_IO_UNBUFFERED))) {
        size_t size;
        int mode = default_buffering(fd, &size);
        set_buffer(s, mode, size);
    }
    BS_REAL(funlockfile)(fp);
}
