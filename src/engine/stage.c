/* stage.c - lock-free reservation into a ring of chunks: the append side of a writer. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "stage_i.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Appenders to a fresh chunk fault its pages in a window ahead of themselves. */
#define BS_STAGE_AHEAD (256u * 1024u)

#define BS_STAGE_MIN_BITS 16 /* 64 KiB */
#define BS_STAGE_MAX_BITS 40 /* 1 TiB: a chunk never grows past it */

static inline unsigned slot_of(uint64_t word)
{
    return (unsigned)(word >> BS_STAGE_SLOT_SHIFT);
}

/* Capacity bits 0 mean a chunk of no bytes: installed when memory ran out, so that a
 * batch can still seal what was appended; every append then asks for a new chunk. */
static inline uint64_t cap_of(uint64_t word)
{
    unsigned bits = (word >> BS_STAGE_CAP_SHIFT) & 63;
    return bits ? 1ull << bits : 0;
}

static inline uint64_t off_of(uint64_t word)
{
    return word & BS_STAGE_OFF_MASK;
}

static inline uint64_t make_word(unsigned slot, unsigned bits)
{
    return (uint64_t)slot << BS_STAGE_SLOT_SHIFT | (uint64_t)bits << BS_STAGE_CAP_SHIFT;
}

static inline unsigned next_slot(unsigned i)
{
    return (i + 1) & (BS_STAGE_SLOTS - 1);
}

/* log2 of the largest power of two <= n (n >= 1). */
static unsigned floor_bits(size_t n)
{
    return 63u - (unsigned)__builtin_clzll((unsigned long long)n);
}

int bs_stage_init(struct bs_stage *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->sealed = -1;
    unsigned bits = cap > 1 ? floor_bits(cap) : 0;
    if (bits < BS_STAGE_MIN_BITS)
        bits = BS_STAGE_MIN_BITS;
    s->slots[0].data = malloc(1ull << bits);
    if (!s->slots[0].data)
        return -ENOMEM;
    s->slots[0].cap = 1ull << bits;
    s->slots[0].fresh = 1;
    atomic_init(&s->word, make_word(0, bits));
    return 0;
}

void bs_stage_free(struct bs_stage *s)
{
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++)
        free(s->slots[i].data);
    memset(s, 0, sizeof *s);
    s->sealed = -1;
}

/* Faults in the pages of [from, from + BS_STAGE_AHEAD) of a chunk; errors do not matter. */
static void prefault(struct bs_slot *sl, uint64_t from)
{
    if (from >= sl->cap)
        return;
    uint64_t to = from + BS_STAGE_AHEAD < sl->cap ? from + BS_STAGE_AHEAD : sl->cap;
    uintptr_t a = (uintptr_t)(sl->data + from) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)(sl->data + to) + 4095) & ~(uintptr_t)4095;
    madvise((void *)a, b - a, MADV_POPULATE_WRITE);
}

int bs_stage_try_append(struct bs_stage *s, const void *data, size_t len, int *first,
                        unsigned *full_slot)
{
    /* A length this large could carry into the slot bits of the word; no chunk holds it. */
    if (len >= (1ull << BS_STAGE_MAX_BITS))
        return -ENOMEM;
    /* acquire: pairs with the exchange that installed the chunk, so its pointer is seen. */
    uint64_t old = atomic_fetch_add_explicit(&s->word, len, memory_order_acquire);
    unsigned i = slot_of(old);
    if (i == BS_STAGE_CLOSED)
        return -ESHUTDOWN;
    struct bs_slot *sl = &s->slots[i];
    uint64_t off = off_of(old), cap = cap_of(old);
    if (off + len <= cap) {
        /* A page fault costs a microsecond or more; one call per window pays for the
           window after the next in a single system call, so the others find their pages
           there. Chunks that already carried a batch have all their pages. */
        if (sl->fresh && ((off ^ (off + len)) & ~(uint64_t)(BS_STAGE_AHEAD - 1)))
            prefault(sl, ((off + len) & ~(uint64_t)(BS_STAGE_AHEAD - 1)) + BS_STAGE_AHEAD);
        memcpy(sl->data + off, data, len);
        atomic_fetch_add_explicit(&sl->committed, (1ull << BS_STAGE_REC_SHIFT) | len,
                                  memory_order_release);
        *first = off == 0;
        return 1;
    }
    /* Reservations only grow, so the failed ones form a suffix: the first of them marks
       where the chunk ends, for the batch that drains it (which waits for this store). */
    if (off <= cap)
        atomic_store_explicit(&sl->valid, off + 1, memory_order_release);
    *full_slot = i;
    return 0;
}

/* Makes slot i current with the given memory; returns the previous word. Lock held. */
static uint64_t install(struct bs_stage *s, unsigned i, char *data, unsigned bits, int fresh)
{
    struct bs_slot *sl = &s->slots[i];
    sl->data = data;
    sl->cap = 1ull << bits;
    sl->fresh = fresh;
    atomic_store_explicit(&sl->committed, 0, memory_order_relaxed);
    atomic_store_explicit(&sl->valid, 0, memory_order_relaxed);
    s->head = i;
    return atomic_exchange_explicit(&s->word, make_word(i, bits), memory_order_acq_rel);
}

/* Records the final length of the chunk whose word was just replaced by old's successor,
 * unless a failed reservation has (or will have) recorded it. */
static void seal_slot(struct bs_stage *s, uint64_t old)
{
    if (off_of(old) <= cap_of(old))
        atomic_store_explicit(&s->slots[slot_of(old)].valid, off_of(old) + 1, memory_order_release);
}

int bs_stage_grow(struct bs_stage *s, unsigned full_slot, size_t len)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (slot_of(w) != full_slot)
        return 0; /* already replaced (or closed): try again */
    unsigned n = next_slot(s->head);
    if (n == s->tail)
        return -ENOMEM; /* 64 chunks, each twice the last: memory is what ran out */
    unsigned bits = cap_of(w) ? floor_bits(cap_of(w)) + 1 : BS_STAGE_MIN_BITS;
    while ((1ull << bits) < 2 * (uint64_t)len && bits < BS_STAGE_MAX_BITS)
        bits++;
    if ((1ull << bits) < len)
        return -ENOMEM;
    char *d = malloc(1ull << bits);
    if (!d)
        return -ENOMEM;
    free(s->slots[n].data);
    /* Large chunks in huge pages where the system allows it (transparent_hugepage
       "madvise"): one fault per 2 MiB instead of 512. */
    if (bits >= 22) {
        uintptr_t a = ((uintptr_t)d + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
        uintptr_t b = ((uintptr_t)d + (1ull << bits)) & ~(uintptr_t)((2u << 20) - 1);
        if (b > a)
            madvise((void *)a, b - a, MADV_HUGEPAGE);
    }
    /* The first two windows now, under the lock that the other appenders wait for anyway. */
    s->slots[n].data = d;
    s->slots[n].cap = 1ull << bits;
    prefault(&s->slots[n], 0);
    prefault(&s->slots[n], BS_STAGE_AHEAD);
    seal_slot(s, install(s, n, d, bits, 1));
    return 0;
}

int bs_stage_has_input(const struct bs_stage *s)
{
    uint64_t w = atomic_load_explicit((_Atomic uint64_t *)&s->word, memory_order_relaxed);
    return s->sealed >= 0 || s->tail != s->head ||
           (slot_of(w) != BS_STAGE_CLOSED && off_of(w) != 0);
}

int bs_stage_seal(struct bs_stage *s, struct bs_buf *out, int closing)
{
    if (s->sealed >= 0)
        return s->sealed; /* an earlier take could not finish */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (slot_of(w) == BS_STAGE_CLOSED)
        return -1;
    if (closing) {
        uint64_t old =
            atomic_exchange_explicit(&s->word, make_word(BS_STAGE_CLOSED, 0), memory_order_acq_rel);
        seal_slot(s, old);
        s->sealed = (int)slot_of(old);
        return s->sealed;
    }
    if (off_of(w) == 0 && s->tail == s->head)
        return -1; /* nothing appended: no swap, no I/O */
    unsigned n = next_slot(s->head);
    if (n == s->tail)
        return -1; /* full ring (grow keeps this from happening) */
    char *d;
    unsigned bits;
    int fresh = 0;
    if (out->len == out->off && out->data && out->cap >= (1u << BS_STAGE_MIN_BITS)) {
        /* The double buffer: the emptied output becomes the input, pages already touched. */
        d = out->data;
        bits = floor_bits(out->cap);
        out->data = NULL;
        out->cap = out->len = out->off = 0;
    } else {
        uint64_t cap = s->slots[s->head].cap;
        bits = cap ? floor_bits(cap) : BS_STAGE_MIN_BITS;
        d = malloc(1ull << bits);
        fresh = 1;
        if (!d)
            bits = 0; /* an empty chunk: what was appended is still sealed and written */
    }
    free(s->slots[n].data);
    unsigned last = s->head;
    seal_slot(s, install(s, n, d, bits, fresh));
    s->sealed = (int)last;
    return s->sealed;
}

/* 1 once the slot's final length is known and every byte before it has been copied. */
static int complete(struct bs_slot *sl)
{
    uint64_t v = atomic_load_explicit(&sl->valid, memory_order_acquire);
    uint64_t c = atomic_load_explicit(&sl->committed, memory_order_acquire);
    return v != 0 && (c & BS_STAGE_BYTES_MASK) == v - 1;
}

void bs_stage_wait(struct bs_stage *s, unsigned last)
{
    for (unsigned i = s->tail;; i = next_slot(i)) {
        /* A copy takes nanoseconds; an appender preempted in the middle of one takes a
           time slice, and holds up only this batch. */
        for (int spins = 0; !complete(&s->slots[i]); spins++)
            if (spins > 64)
                sched_yield();
        if (i == last)
            break;
    }
}

int bs_stage_take(struct bs_stage *s, unsigned last, struct bs_buf *out, uint64_t *bytes,
                  uint64_t *records)
{
    int closed = slot_of(atomic_load(&s->word)) == BS_STAGE_CLOSED;
    for (;;) {
        unsigned i = s->tail;
        struct bs_slot *sl = &s->slots[i];
        uint64_t len = atomic_load_explicit(&sl->valid, memory_order_acquire) - 1;
        uint64_t c = atomic_load_explicit(&sl->committed, memory_order_relaxed);
        if (out->len == out->off && len > 0) {
            /* out adopts the chunk's memory: no copy, and no allocation, so a batch
               always makes progress even when memory has run out. */
            free(out->data);
            out->data = sl->data;
            out->cap = sl->cap;
            out->len = len;
            out->off = 0;
            sl->data = NULL;
        } else if (len > 0 && bs_buf_append(out, sl->data, len) != 0) {
            return -ENOMEM; /* slots from tail on stay for the next batch */
        }
        free(sl->data);
        sl->data = NULL;
        sl->cap = 0;
        atomic_store_explicit(&sl->committed, 0, memory_order_relaxed);
        atomic_store_explicit(&sl->valid, 0, memory_order_relaxed);
        *bytes += len;
        *records += c >> BS_STAGE_REC_SHIFT;
        s->tail = next_slot(i);
        if (i == last)
            break;
    }
    if (closed)
        s->head = s->tail; /* nothing is current any more */
    s->sealed = -1;
    return 0;
}

void bs_stage_live(struct bs_stage *s, uint64_t *bytes, uint64_t *records)
{
    *bytes = *records = 0;
    if (s->tail == s->head && slot_of(atomic_load(&s->word)) == BS_STAGE_CLOSED)
        return;
    for (unsigned i = s->tail;; i = next_slot(i)) {
        uint64_t c = atomic_load_explicit(&s->slots[i].committed, memory_order_acquire);
        *bytes += c & BS_STAGE_BYTES_MASK;
        *records += c >> BS_STAGE_REC_SHIFT;
        if (i == s->head)
            break;
    }
}

void bs_stage_reset(struct bs_stage *s)
{
    uint64_t w = atomic_load(&s->word);
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++) {
        if (i != s->head || slot_of(w) == BS_STAGE_CLOSED) {
            free(s->slots[i].data);
            s->slots[i].data = NULL;
            s->slots[i].cap = 0;
        }
        atomic_store(&s->slots[i].committed, 0);
        atomic_store(&s->slots[i].valid, 0);
    }
    s->tail = s->head;
    s->sealed = -1;
    if (slot_of(w) != BS_STAGE_CLOSED) {
        size_t cap = s->slots[s->head].cap;
        atomic_store(&s->word, make_word(s->head, cap ? floor_bits(cap) : 0));
    }
}
