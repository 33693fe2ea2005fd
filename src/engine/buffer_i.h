/* buffer_i.h - a growable byte buffer with a consumed prefix (a writer's output), and the
 * memory providers that buffers and chunks come from. */
#ifndef BUFSHIM_BUFFER_I_H
#define BUFSHIM_BUFFER_I_H

#include <stddef.h>
#include <stdint.h>

/*
 * Errno: bs_buf_pending and bs_buf_consume keep errno; bs_buf_reserve, bs_buf_append,
 * bs_buf_trim and bs_buf_free may change it (allocation, system calls of a provider).
 * Errors are returned as -errno, never through errno.
 */

/*
 * Where memory comes from: process memory (NULL: malloc, realloc, free), or a provider,
 * such as a spool's regions (spool.c). alloc returns at least cap bytes (the capacity
 * asked, a power of two) and names the region it used; resize keeps the contents up to
 * the smaller of the two sizes (NULL on failure, p unchanged); release gives them back.
 */
struct bs_mem {
    void *(*alloc)(struct bs_mem *m, size_t cap, uint32_t *region);
    void *(*resize)(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region);
    void (*release)(struct bs_mem *m, void *p, size_t cap, uint32_t region);
};

void *bs_mem_alloc(struct bs_mem *m, size_t cap, uint32_t *region);
void *bs_mem_resize(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region);
void bs_mem_release(struct bs_mem *m, void *p, size_t cap, uint32_t region);

struct bs_buf {
    char *data;
    size_t len; /* bytes stored, including the consumed prefix */
    size_t off; /* bytes already consumed from the front */
    size_t cap;
    struct bs_mem *mem; /* NULL: process memory */
    uint32_t region;
};

/* Bytes stored and not yet consumed. */
static inline size_t bs_buf_pending(const struct bs_buf *b)
{
    return b->len - b->off;
}

/* Makes room for n more bytes (the capacity grows geometrically). Returns 0 or -ENOMEM. */
int bs_buf_reserve(struct bs_buf *b, size_t n);

/* Appends n bytes. Returns 0 or -ENOMEM (b unchanged). */
int bs_buf_append(struct bs_buf *b, const void *p, size_t n);

/* Marks n more bytes consumed; an emptied buffer is rewound, keeping its capacity. */
void bs_buf_consume(struct bs_buf *b, size_t n);

/*
 * Gives memory back after a burst: an empty buffer whose capacity exceeds both
 * 1 MiB and four times recent_need shrinks to max(64 KiB, 2 * recent_need).
 */
void bs_buf_trim(struct bs_buf *b, size_t recent_need);

/* Frees the storage; b becomes an empty buffer of the same provider. */
void bs_buf_free(struct bs_buf *b);

#endif /* BUFSHIM_BUFFER_I_H */
