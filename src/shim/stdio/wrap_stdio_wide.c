/* wrap_stdio_wide.c - wide-character output on diverting streams, as multibyte bytes. */

/*
 * A fopencookie stream has no wide-character state: glibc fixes it to byte
 * orientation, so fputwc, fputws and fwprintf on it would fail. On our streams
 * these wrappers convert to multibyte with the current LC_CTYPE (what glibc's
 * wide file streams do when they flush) and write the bytes; fwide reports the
 * orientation the program asked for. Other streams get the real function.
 * Differences, documented in the README: a stateful encoding (not UTF-8)
 * restarts its shift state at each call, and byte output after wide output on
 * the same stream works (glibc would refuse it; C calls that undefined).
 */

#include "real_i.h"

#include "stream_i.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

/* Writes the multibyte form of ws[0..n) to our stream fp. Returns 0, or -1
 * (errno EILSEQ for an unconvertible character, or the stream's error). */
static int put_wide(FILE *fp, const wchar_t *ws, size_t n, int locked)
{
    char stackbuf[512];
    char *buf = stackbuf;
    size_t cap = sizeof stackbuf, len = 0;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    if (bs_stdio_orientation(fp, 1) < 0) {
        fp->_flags |= BS_IO_ERR_SEEN;
        return -1; /* fwide(fp, -1) was asked: glibc refuses wide output */
    }
    for (size_t i = 0; i < n; i++) {
        if (cap - len < MB_LEN_MAX) {
            size_t ncap = cap * 2;
            char *nb = buf == stackbuf ? malloc(ncap) : realloc(buf, ncap);
            if (nb == NULL)
                goto fail;
            if (buf == stackbuf)
                memcpy(nb, stackbuf, len);
            buf = nb;
            cap = ncap;
        }
        size_t k = wcrtomb(buf + len, ws[i], &st);
        if (k == (size_t)-1) {
            fp->_flags |= BS_IO_ERR_SEEN;
            goto fail;
        }
        len += k;
    }
    size_t w = len == 0 ? 0
               : locked ? BS_REAL(fwrite_unlocked)(buf, 1, len, fp)
                        : BS_REAL(fwrite)(buf, 1, len, fp);
    if (buf != stackbuf)
        free(buf);
    return w == len ? 0 : -1;
fail:;
    int e = errno;
    if (buf != stackbuf)
        free(buf);
    errno = e;
    return -1;
}

static wint_t put_wc(wchar_t wc, FILE *fp, int locked)
{
    return put_wide(fp, &wc, 1, locked) == 0 ? (wint_t)wc : WEOF;
}

BS_WRAPPER(int, fwide, (FILE * fp, int mode))
{
    fp = bs_stdio_map(fp);
    if (bs_stdio_is_ours(fp))
        return bs_stdio_orientation(fp, mode);
    return BS_REAL(fwide)(fp, mode);
}

BS_WRAPPER(wint_t, fputwc, (wchar_t wc, FILE *fp))
{
    fp = bs_stdio_map(fp);
    return bs_stdio_is_ours(fp) ? put_wc(wc, fp, 0) : BS_REAL(fputwc)(wc, fp);
}

BS_WRAPPER(wint_t, fputwc_unlocked, (wchar_t wc, FILE *fp))
{
    fp = bs_stdio_map(fp);
    return bs_stdio_is_ours(fp) ? put_wc(wc, fp, 1) : BS_REAL(fputwc_unlocked)(wc, fp);
}

BS_WRAPPER(wint_t, putwc, (wchar_t wc, FILE *fp))
{
    fp = bs_stdio_map(fp);
    return bs_stdio_is_ours(fp) ? put_wc(wc, fp, 0) : BS_REAL(putwc)(wc, fp);
}

BS_WRAPPER(wint_t, putwc_unlocked, (wchar_t wc, FILE *fp))
{
    fp = bs_stdio_map(fp);
    return bs_stdio_is_ours(fp) ? put_wc(wc, fp, 1) : BS_REAL(putwc_unlocked)(wc, fp);
}

BS_WRAPPER(wint_t, putwchar, (wchar_t wc))
{
    return bs_wrap_fputwc(wc, stdout);
}

BS_WRAPPER(wint_t, putwchar_unlocked, (wchar_t wc))
{
    return bs_wrap_fputwc_unlocked(wc, stdout);
}

BS_WRAPPER(int, fputws, (const wchar_t *ws, FILE *fp))
{
    fp = bs_stdio_map(fp);
    if (!bs_stdio_is_ours(fp))
        return BS_REAL(fputws)(ws, fp);
    return put_wide(fp, ws, wcslen(ws), 0) == 0 ? 1 : EOF;
}

BS_WRAPPER(int, fputws_unlocked, (const wchar_t *ws, FILE *fp))
{
    fp = bs_stdio_map(fp);
    if (!bs_stdio_is_ours(fp))
        return BS_REAL(fputws_unlocked)(ws, fp);
    return put_wide(fp, ws, wcslen(ws), 1) == 0 ? 1 : EOF;
}

int __vswprintf_chk(wchar_t *s, size_t maxlen, int flag, size_t slen, const wchar_t *fmt,
                    va_list ap);

/* Formats with glibc's own wide printf into a growing buffer, then writes the
 * bytes. FLAG >= 0: FORTIFY's checks as __vfwprintf_chk. (Not open_wmemstream:
 * a sanitizer's stream bookkeeping would see it opened but never closed.) */
static int wide_vprintf(FILE *fp, int flag, const wchar_t *fmt, va_list ap)
{
    wchar_t stackbuf[256];
    wchar_t *buf = stackbuf;
    size_t cap = sizeof stackbuf / sizeof stackbuf[0];
    int n;
    for (;;) {
        va_list again;
        va_copy(again, ap);
        n = flag < 0 ? vswprintf(buf, cap, fmt, again)
                     : __vswprintf_chk(buf, cap, flag, cap, fmt, again);
        va_end(again);
        /* -1 means too small, or a character that cannot be converted:
         * retry larger a bounded number of times. */
        if (n >= 0 || cap >= ((size_t)1 << 26))
            break;
        cap *= 4;
        wchar_t *nb = buf == stackbuf ? malloc(cap * sizeof *nb) : realloc(buf, cap * sizeof *nb);
        if (nb == NULL)
            break;
        buf = nb;
    }
    if (n >= 0 && put_wide(fp, buf, (size_t)n, 0) != 0)
        n = -1;
    if (buf != stackbuf) {
        int e = errno;
        free(buf);
        errno = e;
    }
    return n;
}

BS_WRAPPER(int, vfwprintf, (FILE * fp, const wchar_t *fmt, va_list ap))
{
    fp = bs_stdio_map(fp);
    if (!bs_stdio_is_ours(fp))
        return BS_REAL(vfwprintf)(fp, fmt, ap);
    return wide_vprintf(fp, -1, fmt, ap);
}

BS_WRAPPER(int, __vfwprintf_chk, (FILE * fp, int flag, const wchar_t *fmt, va_list ap))
{
    fp = bs_stdio_map(fp);
    if (!bs_stdio_is_ours(fp))
        return BS_REAL(__vfwprintf_chk)(fp, flag, fmt, ap);
    return wide_vprintf(fp, flag, fmt, ap);
}

BS_WRAPPER(int, fwprintf, (FILE * fp, const wchar_t *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = bs_wrap_vfwprintf(fp, fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, __fwprintf_chk, (FILE * fp, int flag, const wchar_t *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = bs_wrap___vfwprintf_chk(fp, flag, fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, vwprintf, (const wchar_t *fmt, va_list ap))
{
    return bs_wrap_vfwprintf(stdout, fmt, ap);
}

BS_WRAPPER(int, __vwprintf_chk, (int flag, const wchar_t *fmt, va_list ap))
{
    return bs_wrap___vfwprintf_chk(stdout, flag, fmt, ap);
}

BS_WRAPPER(int, wprintf, (const wchar_t *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = bs_wrap_vfwprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}

BS_WRAPPER(int, __wprintf_chk, (int flag, const wchar_t *fmt, ...))
{
    va_list ap;
    va_start(ap, fmt);
    int r = bs_wrap___vfwprintf_chk(stdout, flag, fmt, ap);
    va_end(ap);
    return r;
}
