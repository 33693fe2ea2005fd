/* test_buffer.c - unit tests of the growable double-buffer halves. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "buffer_i.h"

#include "check.h"

static int test_growth_and_reuse(void)
{
    struct bs_buf b = {0};
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 200; i++)
        CHECK(bs_buf_append(&b, chunk, sizeof chunk) == 0);
    CHECK(b.len == 200000);
    CHECK(b.cap >= b.len);
    CHECK(bs_buf_pending(&b) == 200000);
    size_t cap = b.cap;
    char *data = b.data;
    bs_buf_consume(&b, 200000);
    CHECK(b.len == 0 && b.off == 0);
    /* Capacity is kept across an emptying: no new allocation in steady state. */
    CHECK(b.cap == cap && b.data == data);
    CHECK(bs_buf_append(&b, chunk, 10) == 0);
    CHECK(b.data == data);
    bs_buf_free(&b);
    CHECK(b.data == NULL && b.cap == 0);
    return 0;
}

static int test_partial_consume(void)
{
    struct bs_buf b = {0};
    CHECK(bs_buf_append(&b, "abcdef", 6) == 0);
    bs_buf_consume(&b, 2);
    CHECK(bs_buf_pending(&b) == 4);
    CHECK(memcmp(b.data + b.off, "cdef", 4) == 0);
    CHECK(bs_buf_append(&b, "gh", 2) == 0);
    CHECK(memcmp(b.data + b.off, "cdefgh", 6) == 0);
    bs_buf_free(&b);
    return 0;
}

static int test_trim_after_burst(void)
{
    struct bs_buf b = {0};
    static char big[8 << 20];
    CHECK(bs_buf_append(&b, big, sizeof big) == 0);
    CHECK(b.cap >= sizeof big);
    bs_buf_consume(&b, sizeof big);
    bs_buf_trim(&b, 100);
    CHECK(b.cap == 64 * 1024);
    /* A buffer in steady use at its size is left alone. */
    CHECK(bs_buf_append(&b, big, 60000) == 0);
    bs_buf_consume(&b, 60000);
    bs_buf_trim(&b, 60000);
    CHECK(b.cap == 64 * 1024);
    bs_buf_free(&b);
    return 0;
}

int main(void)
{
    int fails = 0;
    fails += test_growth_and_reuse();
    fails += test_partial_consume();
    fails += test_trim_after_burst();
    printf("%d passed, %d failed\n", 3 - fails, fails);
    return fails ? 1 : 0;
}
