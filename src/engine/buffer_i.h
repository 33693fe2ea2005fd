/* buffer_i.h - a growable byte buffer with a consumed prefix (one half of a double buffer). */
#ifndef BUFSHIM_BUFFER_I_H
#define BUFSHIM_BUFFER_I_H

#include <stddef.h>

/*
 * Errno: bs_buf_pending and bs_buf_consume keep errno; bs_buf_append, bs_buf_trim and
 * bs_buf_free may change it (realloc, free). Errors are returned as -errno, never
 * through errno.
 */

struct bs_buf {
    char *data;
    size_t len; /* bytes stored, including the consumed prefix */
    size_t off; /* bytes already consumed from the front */
    size_t cap;
};

/* Bytes stored and not yet consumed. */
static inline size_t bs_buf_pending(const struct bs_buf *b)
{
    return b->len - b->off;
}

/* Appends n bytes; the capacity grows geometrically. Returns 0 or -ENOMEM (b unchanged). */
int bs_buf_append(struct bs_buf *b, const void *p, size_t n);

/* Marks n more bytes consumed; an emptied buffer is rewound, keeping its capacity. */
void bs_buf_consume(struct bs_buf *b, size_t n);

/*
 * Gives memory back after a burst: an empty buffer whose capacity exceeds both
 * 1 MiB and four times recent_need shrinks to max(64 KiB, 2 * recent_need).
 */
void bs_buf_trim(struct bs_buf *b, size_t recent_need);

/* Frees the storage; b becomes an empty buffer. */
void bs_buf_free(struct bs_buf *b);

#endif /* BUFSHIM_BUFFER_I_H */
