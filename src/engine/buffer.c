/* buffer.c - growable byte buffers that keep their capacity across swaps. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buffer_i.h"

#define BS_BUF_MIN (64u * 1024u)
#define BS_BUF_TRIM_ABOVE (1024u * 1024u)

int bs_buf_append(struct bs_buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        if (n > (size_t)-1 / 2 - b->len)
            return -ENOMEM;
        size_t want = b->cap ? b->cap : BS_BUF_MIN;
        while (want < b->len + n)
            want *= 2;
        char *d = realloc(b->data, want);
        if (!d)
            return -ENOMEM;
        b->data = d;
        b->cap = want;
    }
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
    size_t want = recent_need * 2 > BS_BUF_MIN ? recent_need * 2 : BS_BUF_MIN;
    char *d = realloc(b->data, want);
    if (d) {
        b->data = d;
        b->cap = want;
    }
}

void bs_buf_free(struct bs_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
