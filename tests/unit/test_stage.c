/* test_stage.c - unit tests of the stage: reservation, chunk growth, seal/wait/take, closing, reset. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer_i.h"
#include "stage_i.h"

#include "check.h"

/* The stage is large (a ring of 64 slots, 64-byte aligned words): one, static. */
static struct bs_stage st;

static unsigned next_slot_of(int i)
{
    return ((unsigned)i + 1) & (BS_STAGE_SLOTS - 1);
}

static int all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int append(struct bs_stage *s, const void *p, size_t n, int *first)
{
    unsigned full;
    int r = bs_stage_try_append(s, p, n, first, &full);
    if (r == 0 && bs_stage_grow(s, full, n) == 0)
        r = bs_stage_try_append(s, p, n, first, &full);
    return r;
}

/* Seals, waits and takes everything into out (single-threaded: no lock needed). */
static int drain(struct bs_stage *s, struct bs_buf *out, int closing, uint64_t *bytes,
                 uint64_t *records)
{
    int last = bs_stage_seal(s, closing);
    if (last < 0)
        return last;
    bs_stage_wait(s, (unsigned)last);
    return bs_stage_take(s, (unsigned)last, out, bytes, records, NULL, NULL);
}

static int test_reservation_and_take(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0, lb, lr;
    int first = -1;
    CHECK(bs_stage_init(&st, 1, NULL, 0) == 0);
    CHECK(st.slots[0].cap == 64 * 1024); /* a small request gets the minimum chunk */
    CHECK(!bs_stage_has_input(&st));
    /* Nothing appended: no seal, no swap. */
    CHECK(bs_stage_seal(&st, 0) == -1);
    unsigned full = 99;
    CHECK(bs_stage_try_append(&st, "abc", 3, &first, &full) == 1);
    CHECK(first == 1 && full == 99);
    CHECK(bs_stage_try_append(&st, "de", 2, &first, &full) == 1);
    CHECK(first == 0);
    CHECK(bs_stage_try_append(&st, "f\n", 2, &first, &full) == 1);
    CHECK(bs_stage_has_input(&st));
    bs_stage_live(&st, &lb, &lr);
    /* Live bytes are the calls' bytes, read off the records (no padding, no headers). */
    CHECK(lb == 7 && lr == 3);
    char *chunk = st.slots[0].data;
    /* Each call is a header and its bytes; the header checks at its offset only. */
    struct bs_record h;
    memcpy(&h, chunk, sizeof h);
    CHECK(h.len == 3 && h.check == bs_record_check(0, st.slots[0].gen, 0, 3));
    CHECK(h.check != bs_record_check(0, st.slots[0].gen, 16, 3));
    CHECK(h.check != bs_record_check(0, st.slots[0].gen + 1, 0, 3));
    CHECK(memcmp(chunk + BS_RECORD_HEAD, "abc", 3) == 0);
    CHECK(drain(&st, &out, 0, &bytes, &records) == 0);
    CHECK(bytes == 7 && records == 3);
    /* The batch compacts the records' bytes into out. */
    CHECK(bs_buf_pending(&out) == 7 && memcmp(out.data + out.off, "abcdef\n", 7) == 0);
    /* The drained chunk is kept as the spare for the next seal. */
    CHECK(st.spare.data == chunk);
    CHECK(!bs_stage_has_input(&st));
    bs_stage_live(&st, &lb, &lr);
    CHECK(lb == 0 && lr == 0);
    /* A length that could carry into the word's slot bits is refused outright. */
    CHECK(bs_stage_try_append(&st, "x", (size_t)1 << 40, &first, &full) == -ENOMEM);
    CHECK(bs_stage_try_append(&st, "x", (size_t)1 << 32, &first, &full) == -ENOMEM);
    CHECK(!bs_stage_has_input(&st));
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

static int test_double_buffer_swap(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0;
    int first;
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    CHECK(append(&st, "one\n", 4, &first) == 1);
    CHECK(drain(&st, &out, 0, &bytes, &records) == 0);
    /* The drained chunk becomes the next input chunk, its pages already touched. */
    char *drained = st.spare.data;
    CHECK(drained != NULL);
    /* ... and reads as zeros again: a batch tells a finished copy by its header, and an
       unwritten header must never be an older record's bytes. */
    CHECK(all_zero(drained, st.spare.cap));
    bs_buf_consume(&out, bs_buf_pending(&out));
    CHECK(append(&st, "two\n", 4, &first) == 1);
    int last = bs_stage_seal(&st, 0);
    CHECK(last >= 0);
    CHECK(st.slots[st.head].data == drained && st.spare.data == NULL);
    bs_stage_wait(&st, (unsigned)last);
    CHECK(bs_stage_take(&st, (unsigned)last, &out, &bytes, &records, NULL, NULL) == 0);
    CHECK(bytes == 8 && records == 2);
    CHECK(bs_buf_pending(&out) == 4 && memcmp(out.data + out.off, "two\n", 4) == 0);
    /* Taking into an out that still holds bytes appends behind them. */
    CHECK(append(&st, "three\n", 6, &first) == 1);
    CHECK(drain(&st, &out, 0, &bytes, &records) == 0);
    CHECK(bs_buf_pending(&out) == 10 && memcmp(out.data + out.off, "two\nthree\n", 10) == 0);
    CHECK(records == 3);
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

static int test_chunk_growth_keeps_order(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0;
    char rec[1000];
    int first;
    unsigned full = 99;
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    /* 65 records of 1000 bytes fit in 64 KiB; the 66th does not. */
    int n = 0;
    for (;; n++) {
        memset(rec, 'a' + n % 26, sizeof rec);
        int r = bs_stage_try_append(&st, rec, sizeof rec, &first, &full);
        if (r == 0)
            break;
        CHECK(r == 1);
        CHECK(first == (n == 0));
    }
    CHECK(n == 65 && full == 0);
    CHECK(bs_stage_grow(&st, full, sizeof rec) == 0);
    CHECK(st.head == 1 && st.slots[1].cap == 128 * 1024); /* twice the last */
    /* A second thread that saw the same full chunk finds it already replaced. */
    CHECK(bs_stage_grow(&st, full, sizeof rec) == 0);
    CHECK(st.head == 1);
    CHECK(bs_stage_try_append(&st, rec, sizeof rec, &first, &full) == 1);
    CHECK(first == 1); /* first of the new chunk */
    n++;
    /* An append larger than the current chunk gets a chunk of at least twice its size. */
    static char big[300000];
    memset(big, 'B', sizeof big);
    CHECK(bs_stage_try_append(&st, big, sizeof big, &first, &full) == 0);
    CHECK(full == 1);
    CHECK(bs_stage_grow(&st, full, sizeof big) == 0);
    CHECK(st.head == 2 && st.slots[2].cap >= 2 * sizeof big);
    CHECK(bs_stage_try_append(&st, big, sizeof big, &first, &full) == 1);
    CHECK(bs_stage_try_append(&st, "end\n", 4, &first, &full) == 1);
    uint64_t lb, lr;
    bs_stage_live(&st, &lb, &lr);
    CHECK(lr == (uint64_t)n + 2 && lb == (uint64_t)n * 1000 + sizeof big + 4);
    CHECK(drain(&st, &out, 0, &bytes, &records) == 0);
    /* The failed reservations count for nothing; every chunk comes out, oldest first. */
    CHECK(records == (uint64_t)n + 2);
    CHECK(bytes == (uint64_t)n * 1000 + sizeof big + 4);
    CHECK(bs_buf_pending(&out) == bytes);
    const char *p = out.data + out.off;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 1000; k++)
            CHECK(p[i * 1000 + k] == 'a' + i % 26);
    p += (size_t)n * 1000;
    CHECK(memcmp(p, big, sizeof big) == 0);
    CHECK(memcmp(p + sizeof big, "end\n", 4) == 0);
    CHECK(st.tail == st.head); /* every sealed chunk was taken */
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

static int test_closed_stage_refuses_appends(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0, lb, lr;
    int first;
    unsigned full;
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    CHECK(append(&st, "last words\n", 11, &first) == 1);
    CHECK(drain(&st, &out, 1, &bytes, &records) == 0);
    CHECK(bytes == 11 && records == 1);
    CHECK(memcmp(out.data + out.off, "last words\n", 11) == 0);
    /* After the final flush every append fails, and there is nothing more to seal. */
    CHECK(bs_stage_try_append(&st, "late", 4, &first, &full) == -ESHUTDOWN);
    CHECK(bs_stage_try_append(&st, "late", 4, &first, &full) == -ESHUTDOWN);
    CHECK(!bs_stage_has_input(&st));
    CHECK(bs_stage_seal(&st, 0) == -1);
    CHECK(bs_stage_seal(&st, 1) == -1);
    bs_stage_live(&st, &lb, &lr);
    CHECK(lb == 0 && lr == 0);
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

static int test_closing_with_nothing_appended(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0;
    int first;
    unsigned full;
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    int last = bs_stage_seal(&st, 1);
    CHECK(last == 0); /* the current chunk is sealed, empty */
    bs_stage_wait(&st, (unsigned)last);
    CHECK(bs_stage_take(&st, (unsigned)last, &out, &bytes, &records, NULL, NULL) == 0);
    CHECK(bytes == 0 && records == 0 && bs_buf_pending(&out) == 0);
    CHECK(bs_stage_try_append(&st, "x", 1, &first, &full) == -ESHUTDOWN);
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

static int test_reset_drops_everything_and_keeps_working(void)
{
    struct bs_buf out = {0};
    uint64_t bytes = 0, records = 0, lb, lr;
    int first;
    static char big[100000];
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    CHECK(append(&st, "parent's\n", 9, &first) == 1);
    CHECK(append(&st, big, sizeof big, &first) == 1); /* a second chunk */
    CHECK(st.head != st.tail);
    bs_stage_reset(&st);
    CHECK(!bs_stage_has_input(&st));
    bs_stage_live(&st, &lb, &lr);
    CHECK(lb == 0 && lr == 0);
    CHECK(st.tail == st.head && st.slots[st.head].data != NULL);
    /* The chunk kept holds none of the parent's records. */
    CHECK(all_zero(st.slots[st.head].data, st.slots[st.head].cap));
    CHECK(append(&st, "child's\n", 8, &first) == 1);
    CHECK(first == 1);
    CHECK(drain(&st, &out, 0, &bytes, &records) == 0);
    CHECK(bytes == 8 && records == 1);
    CHECK(bs_buf_pending(&out) == 8 && memcmp(out.data + out.off, "child's\n", 8) == 0);
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

/* Appenders race with batches: every record arrives once, each thread's in its order. */
#define THREADS 4
#define PER_THREAD 3000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int finished;
static atomic_int batches_taken; /* batches that took bytes, while the appenders ran */

static void *appender(void *arg)
{
    int t = (int)(long)arg;
    char rec[64];
    for (int i = 0; i < PER_THREAD; i++) {
        /* Halfway, wait for a batch to have taken bytes: appends and batches overlap
           however the threads are scheduled (under TSan the appenders could finish
           before the first batch ran). */
        while (i == PER_THREAD / 2 && atomic_load(&batches_taken) == 0)
            sched_yield();
        int n = snprintf(rec, sizeof rec, "t%d %d %.*s\n", t, i, i % 23, "xxxxxxxxxxxxxxxxxxxxxxx");
        int first;
        unsigned full;
        for (;;) {
            int r = bs_stage_try_append(&st, rec, (size_t)n, &first, &full);
            if (r == 1)
                break;
            if (r < 0)
                goto failed;
            pthread_mutex_lock(&lock);
            r = bs_stage_grow(&st, full, (size_t)n);
            pthread_mutex_unlock(&lock);
            if (r < 0)
                goto failed;
        }
    }
    atomic_fetch_add(&finished, 1);
    return NULL;
failed:
    atomic_fetch_add(&finished, 1);
    return (void *)1;
}

static int batch(struct bs_buf *out, struct bs_buf *all, int closing, uint64_t *bytes,
                 uint64_t *records)
{
    pthread_mutex_lock(&lock);
    int last = bs_stage_seal(&st, closing);
    pthread_mutex_unlock(&lock);
    if (last < 0)
        return 0;
    bs_stage_wait(&st, (unsigned)last);
    pthread_mutex_lock(&lock);
    int r = bs_stage_take(&st, (unsigned)last, out, bytes, records, NULL, NULL);
    pthread_mutex_unlock(&lock);
    if (r != 0 || bs_buf_append(all, out->data + out->off, bs_buf_pending(out)) != 0)
        return 1;
    bs_buf_consume(out, bs_buf_pending(out)); /* "written": the next seal reuses it */
    return 0;
}

static int test_concurrent_appends_and_batches(void)
{
    struct bs_buf out = {0}, all = {0};
    uint64_t bytes = 0, records = 0;
    pthread_t th[THREADS];
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 0x1234) == 0);
    for (long t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, appender, (void *)t) == 0);
    while (atomic_load(&finished) < THREADS) {
        uint64_t before = bytes;
        CHECK(batch(&out, &all, 0, &bytes, &records) == 0);
        if (bytes > before)
            atomic_fetch_add(&batches_taken, 1);
    }
    for (int t = 0; t < THREADS; t++) {
        void *r;
        CHECK(pthread_join(th[t], &r) == 0 && r == NULL);
    }
    CHECK(batch(&out, &all, 1, &bytes, &records) == 0);
    CHECK(records == THREADS * PER_THREAD);
    CHECK(bytes == all.len);
    int next[THREADS] = {0};
    CHECK(bs_buf_append(&all, "", 1) == 0); /* a NUL after the last line, for sscanf */
    char *p = all.data, *end = all.data + all.len - 1;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl != NULL);
        int t, i;
        CHECK(sscanf(p, "t%d %d ", &t, &i) == 2);
        CHECK(t >= 0 && t < THREADS && i == next[t]);
        next[t]++;
        p = nl + 1;
    }
    for (int t = 0; t < THREADS; t++)
        CHECK(next[t] == PER_THREAD);
    CHECK(atomic_load(&batches_taken) >= 1);
    bs_buf_free(&out);
    bs_buf_free(&all);
    bs_stage_free(&st);
    return 0;
}

/* An output provider that has no memory to give (allocation fails), and frees what it is
 * given back: the batch must still make progress. */
static void *no_alloc(struct bs_mem *m, size_t cap, uint32_t *region)
{
    (void)m, (void)cap, (void)region;
    return NULL;
}

static void *no_resize(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region)
{
    (void)m, (void)p, (void)old_cap, (void)cap, (void)region;
    return NULL;
}

static void plain_release(struct bs_mem *m, void *p, size_t cap, uint32_t region)
{
    (void)m, (void)cap, (void)region;
    free(p);
}

static int in_place_calls, adopted_calls;
static void hook_commit(void *ctx, uint64_t out_len, unsigned tail)
{
    (void)ctx, (void)out_len, (void)tail;
}
static void hook_in_place(void *ctx, int slot)
{
    (void)ctx;
    in_place_calls += slot >= 0;
}
static void hook_adopted(void *ctx, uint32_t region, uint64_t cap)
{
    (void)ctx, (void)region, (void)cap;
    adopted_calls++;
}

static int test_out_of_memory_compacts_in_place(void)
{
    struct bs_mem none = {no_alloc, no_resize, plain_release};
    struct bs_buf out = {.mem = &none};
    struct bs_stage_hooks hooks = {hook_commit, hook_in_place, hook_adopted};
    uint64_t bytes = 0, records = 0;
    int first;
    char rec[3000];
    CHECK(bs_stage_init(&st, 64 * 1024, NULL, 7) == 0);
    /* Two chunks' worth of records, numbered. */
    int n = 0;
    for (; n < 40; n++) {
        int k = snprintf(rec, sizeof rec, "r%d ", n);
        memset(rec + k, 'a' + n % 26, sizeof rec - (size_t)k - 1);
        rec[sizeof rec - 1] = '\n';
        CHECK(append(&st, rec, sizeof rec, &first) == 1);
    }
    CHECK(st.head != st.tail);
    int last = bs_stage_seal(&st, 0);
    CHECK(last >= 0);
    bs_stage_wait(&st, (unsigned)last);
    /* The output cannot grow: the oldest chunk is compacted where it is and becomes out. */
    char *chunk = st.slots[st.tail].data;
    CHECK(bs_stage_take(&st, (unsigned)last, &out, &bytes, &records, &hooks, NULL) == -ENOMEM);
    CHECK(in_place_calls == 1 && adopted_calls == 1);
    CHECK(out.data == chunk && bs_buf_pending(&out) == records * sizeof rec);
    uint64_t got = records;
    /* "Written": the next take compacts the next chunk the same way, until all is out. */
    for (int rounds = 0; rounds < 10 && got < (uint64_t)n; rounds++) {
        CHECK(memcmp(out.data, "r", 1) == 0);
        bs_buf_consume(&out, bs_buf_pending(&out));
        int r = bs_stage_take(&st, (unsigned)last, &out, &bytes, &records, &hooks, NULL);
        CHECK(r == 0 || r == -ENOMEM);
        got = records;
    }
    CHECK(records == (uint64_t)n && bytes == (uint64_t)n * sizeof rec);
    CHECK(st.tail == next_slot_of(last));
    bs_buf_free(&out);
    bs_stage_free(&st);
    return 0;
}

int main(void)
{
    int fails = 0, n = 0;
#define RUN(t) (n++, fails += check_run_isolated(t, #t)) /* check.h says why */
    RUN(test_reservation_and_take);
    RUN(test_double_buffer_swap);
    RUN(test_chunk_growth_keeps_order);
    RUN(test_closed_stage_refuses_appends);
    RUN(test_closing_with_nothing_appended);
    RUN(test_reset_drops_everything_and_keeps_working);
    RUN(test_out_of_memory_compacts_in_place);
    RUN(test_concurrent_appends_and_batches);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails ? 1 : 0;
}
