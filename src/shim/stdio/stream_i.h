/* stream_i.h - diverting FILE streams (stream.c), shared by the stdio layer's files. */
#ifndef BUFSHIM_STDIO_STREAM_I_H
#define BUFSHIM_STDIO_STREAM_I_H

#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <unistd.h>
#include <wchar.h>

/*
 * Errno: the stream functions here set errno only where the stdio call they serve
 * would (a failed open, close or reopen); the registry look-ups do not touch it.
 */

/*
 * Bits of FILE._flags that the stdio layer reads or sets. They are glibc's
 * libio values (libio/libio.h), unchanged since glibc 2.1 and relied upon by
 * the inline putc/getc of every compiled program; bs_stdio_init checks them on
 * a fresh stream and leaves stdio alone if they do not match.
 */
#define BS_IO_MAGIC_MASK 0xFFFF0000
#define BS_IO_MAGIC 0xFBAD0000
#define BS_IO_UNBUFFERED 0x0002
#define BS_IO_NO_READS 0x0004
#define BS_IO_NO_WRITES 0x0008
#define BS_IO_EOF_SEEN 0x0010
#define BS_IO_ERR_SEEN 0x0020
#define BS_IO_LINE_BUF 0x0200
#define BS_IO_CURRENTLY_PUTTING 0x0800
#define BS_IO_IS_APPENDING 0x1000

/*
 * Declares and begins the definition of the wrapper exported as NAME. The C
 * name is bs_wrap_NAME and the symbol name is given by an asm label, so the
 * header's _FILE_OFFSET_BITS=64 renames (fopen -> fopen64) and its extern
 * inline definitions (putchar, fputc_unlocked, ...) cannot touch it. BS_EXPORT is
 * real_i.h's, included first by every shim source.
 */
#define BS_WRAPPER(ret, name, params)                                                              \
    BS_EXPORT ret bs_wrap_##name params __asm__(#name);                                            \
    BS_EXPORT ret bs_wrap_##name params


/*
 * The original std streams (&_IO_2_1_stdout_, ... as they were before
 * bs_stdio_init) and their diverting replacements, indexed by fd (1, 2).
 * Written once by bs_stdio_init and cleared by fclose; read by every wrapper.
 */
extern FILE *bs_stdio_orig[3];
extern FILE *bs_stdio_repl[3];

/* The stream a FILE* argument really means: a saved original std stream
 * (captured by std::cout or a constructor before we ran) maps to its
 * replacement; anything else to itself. */
static inline FILE *bs_stdio_map(FILE *fp)
{
    for (int k = 1; k <= 2; k++) {
        FILE *o = __atomic_load_n(&bs_stdio_orig[k], __ATOMIC_ACQUIRE);
        if (__builtin_expect(fp == o && o != NULL, 0)) {
            FILE *r = __atomic_load_n(&bs_stdio_repl[k], __ATOMIC_ACQUIRE);
            return r != NULL ? r : fp;
        }
    }
    return fp;
}

/* The parsed mode string of fopen/fdopen/freopen (glibc's rules). */
struct bs_stdio_mode {
    int oflags;         /* open(2) flags for fopen/freopen */
    int appending;      /* 'a' */
    int reads, writes;  /* access of the stream */
    const char *cookie; /* mode for fopencookie: "r", "w", "a", "r+", ... */
};

/* Parses MODE as fopen does ('+', 'x', 'b', 'e', 'm', 'c'). Returns 0, or -1
 * when the mode is invalid (fopen fails with EINVAL), or 1 when it asks for a
 * wide ",ccs=" stream (not diverted: the real function handles it). */
int bs_stdio_parse_mode(const char *mode, struct bs_stdio_mode *m);

/*
 * A new diverting stream over descriptor fd (already registered with the shim
 * core) with glibc's default buffering for that descriptor. Does not close fd
 * on failure. Returns NULL with errno set.
 */
FILE *bs_stdio_stream_new(int fd, const char *cookie_mode);

/* Detaches fp (ours) from its descriptor without closing it, then fcloses it. */
void bs_stdio_stream_discard(FILE *fp);

/* 1 when glibc's FILE looks as this layer expects (probed once); when 0,
 * stdio is left to glibc and not diverted. */
int bs_stdio_usable(void);

/* 1 once the shim's own constructors have begun (the configuration is loaded
 * right after): before that, the environment decides. */
int bs_stdio_started(void);

/* 1 when fp is a diverting stream made by this layer. */
int bs_stdio_is_ours(FILE *fp);

/* Remembers that the program chose fp's buffering itself. */
void bs_stdio_note_user_buffer(FILE *fp);

/* freopen on a diverting stream, in place (fp keeps its address and fd). */
FILE *bs_stdio_stream_reopen(FILE *fp, const char *path, const char *mode);

/* fclose with the bookkeeping of std replacements and failed reopens. */
int bs_stdio_stream_close(FILE *fp);

/* Orientation bookkeeping for fwide on diverting streams: sets it when
 * unset and want != 0, returns the current one (-1 byte, 0 none, 1 wide). */
int bs_stdio_orientation(FILE *fp, int want);

#endif /* BUFSHIM_STDIO_STREAM_I_H */
