/* buffer.c - growable byte buffers that keep their capacity across swaps, and the
 * process-memory provider. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buffer_i.h"

#define BS_BUF_MIN (64u * 1024u)
#define BS_BUF_MIN_PROVIDED (4u * 1024u)
#define BS_BUF_TRIM_ABOVE (1024u * 1024u)

void *bs_mem_alloc(struct bs_mem *m, size_t cap, uint32_t *region)
{
    *region = 0;
    return m ? m->alloc(m, cap, region) : malloc(cap);
}

void *bs_mem_resize(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region)
{
    return m ? m->resize(m, p, old_cap, cap, region) : realloc(p, cap);
}

void bs_mem_release(struct bs_mem *m, void *p, size_t cap, uint32_t region)
{
    if (!p)
        return;
    if (m)
        m->release(m, p, cap, region);
    else
        free(p);
}

int bs_buf_reserve(struct bs_buf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    if (n > (size_t)-1 / 2 - b->len)
        return -ENOMEM;
    /* A provider's memory (a spool's) is reserved and zeroed when mapped: start small. */
    size_t want = b->cap ? b->cap : b->mem ? BS_BUF_MIN_PROVIDED : BS_BUF_MIN;
    while (want < b->len + n)
        want *= 2;
    char *d;
    if (b->data) {
        d = bs_mem_resize(b->mem, b->data, b->cap, want, b->region);
    } else {
        uint32_t region = 0;
        d = bs_mem_alloc(b->mem, want, &region);
        b->region = region;
    }
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = want;
    return 0;
}

int bs_buf_append(struct bs_buf *b, const void *p, size_t n)
{
    int r = bs_buf_reserve(b, n);
    if (r < 0)
        return r;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void bs_buf_consume(struct bs_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void bs_buf_trim(struct bs_buf *b, size_t recent_need)
{
    if (b->len != 0 || b->cap <= BS_BUF_TRIM_ABOVE || b->cap / 4 <= recent_need)
        return;
    size_t want = BS_BUF_MIN;
    while (want < recent_need * 2)
        want *= 2;
    char *d = bs_mem_resize(b->mem, b->data, b->cap, want, b->region);
    if (d) {
        b->data = d;
        b->cap = want;
    }
}

void bs_buf_free(struct bs_buf *b)
{
    bs_mem_release(b->mem, b->data, b->cap, b->region);
    struct bs_mem *m = b->mem;
    memset(b, 0, sizeof *b);
    b->mem = m;
}
