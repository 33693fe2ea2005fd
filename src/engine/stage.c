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
/* A writer's first chunk, made at its first append: a short process's few lines should not
   pay for 64 KiB of it (a spool's memory is a file's, reserved up front; process memory
   comes zeroed from calloc, which clears all of it); chunks double from there. */
#define BS_STAGE_FIRST_BITS 12 /* 4 KiB */
#define BS_STAGE_MAX_BITS 40 /* 1 TiB: a chunk never grows past it */

#define slot_of bs_stage_word_slot
#define cap_of bs_stage_word_cap
#define off_of bs_stage_word_off

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

static uint64_t install(struct bs_stage *s, unsigned i, char *data, unsigned bits, int fresh,
                        uint32_t region);

/*
 * A chunk of 2^bits bytes from the stage's provider, or NULL. Every chunk a slot is given
 * reads as zeros where nothing was appended in it (stage_i.h: a batch tells a finished copy
 * by its header, and an unwritten header must read 0, never stale bytes): process memory
 * comes from calloc (fresh pages are not written again, recycled heap memory costs a memset
 * instead of the page faults fresh memory would), a spool's regions are zero by its contract
 * (spool.c), and the stage zeroes what it reuses itself (zero_used: the spare, the chunk a
 * forked child keeps).
 */
static char *chunk_alloc(struct bs_stage *s, unsigned bits, uint32_t *region)
{
    if (!s->mem) {
        *region = 0;
        return calloc(1, (size_t)1 << bits);
    }
    return bs_mem_alloc(s->mem, (size_t)1 << bits, region);
}

/* Zeroes the first len bytes of a chunk that goes back into use (its records are taken). */
static void zero_used(struct bs_slot *sl, uint64_t len)
{
    if (sl->data)
        memset(sl->data, 0, len < sl->cap ? len : sl->cap);
}

static void chunk_release(struct bs_stage *s, struct bs_slot *sl)
{
    bs_mem_release(s->mem, sl->data, sl->cap, sl->region);
    sl->data = NULL;
    sl->cap = 0;
    sl->region = 0;
}

int bs_stage_init(struct bs_stage *s, size_t cap, struct bs_mem *mem, uint64_t salt)
{
    memset(s, 0, sizeof *s);
    s->sealed = -1;
    s->mem = mem;
    s->salt = salt;
    unsigned bits = cap > 1 ? floor_bits(cap) : 0;
    unsigned min_bits = mem ? BS_STAGE_FIRST_BITS : BS_STAGE_MIN_BITS;
    if (bits < min_bits)
        bits = min_bits;
    uint32_t region;
    s->slots[0].data = chunk_alloc(s, bits, &region);
    if (!s->slots[0].data)
        return -ENOMEM;
    s->slots[0].cap = 1ull << bits;
    s->slots[0].fresh = 1;
    s->slots[0].region = region;
    s->slots[0].gen = ++s->gen;
    atomic_init(&s->word, make_word(0, bits));
    return 0;
}

void bs_stage_init_pending(struct bs_stage *s)
{
    memset(s, 0, sizeof *s);
    s->sealed = -1;
    atomic_init(&s->word, make_word(BS_STAGE_PENDING, 0));
}

int bs_stage_is_pending(const struct bs_stage *s)
{
    return slot_of(atomic_load((_Atomic uint64_t *)&s->word)) == BS_STAGE_PENDING;
}

int bs_stage_activate(struct bs_stage *s, size_t cap)
{
    unsigned bits = cap > 1 ? floor_bits(cap) : 0;
    if (bits < BS_STAGE_FIRST_BITS)
        bits = BS_STAGE_FIRST_BITS;
    uint32_t region;
    char *d = chunk_alloc(s, bits, &region);
    if (!d)
        return -ENOMEM;
    /* Appenders may be adding to the pending word meanwhile: the exchange replaces it. */
    install(s, 0, d, bits, 1, region);
    return 0;
}

void bs_stage_free(struct bs_stage *s)
{
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++)
        chunk_release(s, &s->slots[i]);
    chunk_release(s, &s->spare);
    struct bs_mem *m = s->mem;
    memset(s, 0, sizeof *s);
    s->mem = m;
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
    /* A length this large could carry into the slot bits of the word; no chunk holds it,
       and a record's header has 32 bits for it. */
    if (len > BS_RECORD_MAX)
        return -ENOMEM;
    uint64_t need = BS_RECORD_SIZE(len);
    /* acquire: pairs with the exchange that installed the chunk, so its pointer is seen. */
    uint64_t old = atomic_fetch_add_explicit(&s->word, need, memory_order_acquire);
    unsigned i = slot_of(old);
    if (i == BS_STAGE_CLOSED)
        return -ESHUTDOWN;
    if (i == BS_STAGE_PENDING) {
        *full_slot = i;
        return 0;
    }
    struct bs_slot *sl = &s->slots[i];
    uint64_t off = off_of(old), cap = cap_of(old);
    if (off + need <= cap) {
        /* A page fault costs a microsecond or more; one call per window pays for the
           window after the next in a single system call, so the others find their pages
           there. Chunks that already carried a batch have all their pages. */
        if (sl->fresh && ((off ^ (off + need)) & ~(uint64_t)(BS_STAGE_AHEAD - 1)))
            prefault(sl, ((off + need) & ~(uint64_t)(BS_STAGE_AHEAD - 1)) + BS_STAGE_AHEAD);
        char *rec = sl->data + off;
        memcpy(rec + BS_RECORD_HEAD, data, len);
        /* The header last: a valid one says the bytes before it are all there. */
        struct bs_record h = {(uint32_t)len, bs_record_check(s->salt, sl->gen, off, (uint32_t)len)};
        uint64_t hv;
        memcpy(&hv, &h, sizeof hv);
        atomic_store_explicit((_Atomic uint64_t *)(void *)rec, hv, memory_order_release);
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

/* Makes slot i current with the given memory; returns the previous word. Lock held. The
 * slot's fields are in place before the exchange publishes it (a reader of a dead
 * process's spool relies on that too). */
static uint64_t install(struct bs_stage *s, unsigned i, char *data, unsigned bits, int fresh,
                        uint32_t region)
{
    struct bs_slot *sl = &s->slots[i];
    sl->data = data;
    sl->cap = data ? 1ull << bits : 0;
    sl->fresh = fresh;
    sl->region = region;
    sl->gen = ++s->gen;
    atomic_store_explicit(&sl->valid, 0, memory_order_relaxed);
    s->head = i;
    return atomic_exchange_explicit(&s->word, make_word(i, data ? bits : 0), memory_order_acq_rel);
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
    if (full_slot == BS_STAGE_PENDING)
        return -EAGAIN; /* the writer makes the stage (writer.c) */
    if (len > BS_RECORD_MAX)
        return -ENOMEM;
    uint64_t need = BS_RECORD_SIZE(len);
    unsigned n = next_slot(s->head);
    if (n == s->tail)
        return -ENOMEM; /* 64 chunks, each twice the last: memory is what ran out */
    unsigned bits = cap_of(w) ? floor_bits(cap_of(w)) + 1 : BS_STAGE_MIN_BITS;
    while ((1ull << bits) < 2 * need && bits < BS_STAGE_MAX_BITS)
        bits++;
    if ((1ull << bits) < need)
        return -ENOMEM;
    uint32_t region;
    char *d = chunk_alloc(s, bits, &region);
    if (!d)
        return -ENOMEM;
    chunk_release(s, &s->slots[n]);
    /* Large chunks in huge pages where the system allows it (transparent_hugepage
       "madvise"): one fault per 2 MiB instead of 512. */
    if (bits >= 22 && !s->mem) {
        uintptr_t a = ((uintptr_t)d + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
        uintptr_t b = ((uintptr_t)d + (1ull << bits)) & ~(uintptr_t)((2u << 20) - 1);
        if (b > a)
            madvise((void *)a, b - a, MADV_HUGEPAGE);
    }
    /* The first two windows now, under the lock that the other appenders wait for anyway. */
    struct bs_slot probe = {.data = d, .cap = 1ull << bits};
    prefault(&probe, 0);
    prefault(&probe, BS_STAGE_AHEAD);
    seal_slot(s, install(s, n, d, bits, 1, region));
    return 0;
}

int bs_stage_has_input(const struct bs_stage *s)
{
    uint64_t w = atomic_load_explicit((_Atomic uint64_t *)&s->word, memory_order_relaxed);
    return s->sealed >= 0 || s->tail != s->head ||
           (slot_of(w) != BS_STAGE_CLOSED && slot_of(w) != BS_STAGE_PENDING && off_of(w) != 0);
}

int bs_stage_seal(struct bs_stage *s, int closing)
{
    if (s->sealed >= 0)
        return s->sealed; /* an earlier take could not finish */
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (slot_of(w) == BS_STAGE_PENDING && closing) {
        /* Nothing was ever appended: closed all the same, so that a writer opened after
           the final flush refuses appends (its caller writes through) rather than make a
           stage that no flush would take. */
        atomic_store_explicit(&s->word, make_word(BS_STAGE_CLOSED, 0), memory_order_release);
        return -1;
    }
    if (slot_of(w) == BS_STAGE_CLOSED || slot_of(w) == BS_STAGE_PENDING)
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
    uint32_t region = 0;
    int fresh = 0;
    if (s->spare.data) {
        /* The double buffer: the chunk the last batch drained, pages already touched. */
        d = s->spare.data;
        bits = floor_bits(s->spare.cap);
        region = s->spare.region;
        s->spare.data = NULL;
        s->spare.cap = 0;
        s->spare.region = 0;
    } else {
        uint64_t cap = s->slots[s->head].cap;
        bits = cap ? floor_bits(cap) : BS_STAGE_MIN_BITS;
        d = chunk_alloc(s, bits, &region);
        fresh = 1;
        /* NULL: an empty chunk; what was appended is still sealed and written. */
    }
    chunk_release(s, &s->slots[n]);
    unsigned last = s->head;
    seal_slot(s, install(s, n, d, bits, fresh, region));
    s->sealed = (int)last;
    return s->sealed;
}

/* A copy takes nanoseconds; an appender preempted in the middle of one takes a time slice,
   and holds up only the batch that waits for it. */
static void pause_for_copy(int *spins)
{
    if (++*spins > 64)
        sched_yield();
}

/* A sealed or full slot's final length, stored by the seal or by the first reservation that
   did not fit (right after its failed add): waits for that store. */
static uint64_t final_len(struct bs_slot *sl, int *spins)
{
    uint64_t v;
    while ((v = atomic_load_explicit(&sl->valid, memory_order_acquire)) == 0)
        pause_for_copy(spins);
    return v - 1;
}

void bs_stage_wait(struct bs_stage *s, unsigned last)
{
    for (unsigned i = s->tail;; i = next_slot(i)) {
        struct bs_slot *sl = &s->slots[i];
        int spins = 0;
        /* Every reservation below the final length fitted, and its header, stored after its
           bytes, is what says the copy is done: walk the records, waiting at one not whole
           yet. */
        for (uint64_t pos = 0, end = final_len(sl, &spins); pos < end;) {
            uint32_t n = bs_record_at(sl->data, pos, end, s->salt, sl->gen);
            if (n)
                pos += BS_RECORD_SIZE(n);
            else
                pause_for_copy(&spins);
        }
        if (i == last)
            break;
    }
}

/* Moves the records' bytes of slot sl (len bytes used) to to, which has room for len
 * bytes (to may be the chunk itself: records only move towards its start); counts them.
 * Returns the bytes moved. */
static uint64_t compact(struct bs_stage *s, struct bs_slot *sl, uint64_t len, char *to,
                        uint64_t *bytes, uint64_t *records)
{
    uint64_t pos = 0, at = 0;
    uint32_t n;
    /* A position without a whole record cannot happen once every copy is complete. */
    while ((n = bs_record_at(sl->data, pos, len, s->salt, sl->gen)) != 0) {
        memmove(to + at, sl->data + pos + BS_RECORD_HEAD, n);
        at += n;
        *bytes += n;
        *records += 1;
        pos += BS_RECORD_SIZE(n);
    }
    return at;
}

int bs_stage_take(struct bs_stage *s, unsigned last, struct bs_buf *out, uint64_t *bytes,
                  uint64_t *records, const struct bs_stage_hooks *hooks, void *ctx)
{
    int closed = slot_of(atomic_load(&s->word)) == BS_STAGE_CLOSED;
    /* Compact every sealed chunk whose bytes fit in out; publish; then reuse them. */
    unsigned end = s->tail, moved = 0;
    int done = 0, err = 0, in_place = 0;
    for (;;) {
        unsigned i = end;
        struct bs_slot *sl = &s->slots[i];
        uint64_t len = atomic_load_explicit(&sl->valid, memory_order_acquire) - 1;
        if (len > 0) {
            if (bs_buf_reserve(out, len) == 0) {
                out->len += compact(s, sl, len, out->data + out->len, bytes, records);
            } else if (moved == 0 && out->len == out->off && sl->data) {
                /* Out of memory, and out holds nothing: the chunk becomes out, its records
                   compacted where they are (they only move towards its start). */
                bs_buf_free(out);
                if (hooks)
                    hooks->in_place(ctx, (int)i);
                in_place = 1;
                out->data = sl->data;
                out->cap = sl->cap;
                out->region = sl->region;
                out->off = 0;
                out->len = compact(s, sl, len, sl->data, bytes, records);
                sl->data = NULL;
                sl->cap = 0;
                sl->region = 0;
                if (hooks)
                    hooks->adopted(ctx, out->region, out->cap);
            } else {
                err = -ENOMEM; /* slots from here on stay for the next batch */
                break;
            }
        }
        end = next_slot(i);
        moved++;
        if (i == last) {
            done = 1;
            break;
        }
        if (in_place)
            break; /* out is that chunk now: the next batch takes the rest */
    }
    if (moved == 0)
        return err;
    if (hooks)
        hooks->commit(ctx, out->len, end);
    if (in_place && hooks)
        hooks->in_place(ctx, -1);
    for (unsigned i = s->tail; i != end; i = next_slot(i)) {
        struct bs_slot *sl = &s->slots[i];
        if (sl->data && !s->spare.data && !closed) {
            zero_used(sl, atomic_load_explicit(&sl->valid, memory_order_relaxed) - 1);
            s->spare = *sl; /* kept for the next seal */
            sl->data = NULL;
            sl->cap = 0;
            sl->region = 0;
        } else {
            chunk_release(s, sl);
        }
        atomic_store_explicit(&sl->valid, 0, memory_order_relaxed);
    }
    s->tail = end;
    if (!done)
        return err ? err : -ENOMEM;
    if (closed)
        s->head = s->tail; /* nothing is current any more */
    s->sealed = -1;
    return 0;
}

void bs_stage_live(struct bs_stage *s, uint64_t *bytes, uint64_t *records)
{
    *bytes = *records = 0;
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    if (s->tail == s->head && slot_of(w) == BS_STAGE_CLOSED)
        return;
    for (unsigned i = s->tail;; i = next_slot(i)) {
        struct bs_slot *sl = &s->slots[i];
        /* How far it was reserved: what the word says for the current chunk while it has
           room, else its final length (waited for: never miss a call here, the final flush
           stops when this finds nothing). A slot without memory (a pending stage, the
           empty chunk installed when memory ran out) holds nothing. */
        uint64_t end;
        int spins = 0;
        if (!sl->data)
            end = 0;
        else if (!atomic_load_explicit(&sl->valid, memory_order_acquire) && slot_of(w) == i &&
                 off_of(w) <= cap_of(w))
            end = off_of(w);
        else
            end = final_len(sl, &spins);
        uint64_t pos = 0;
        uint32_t n;
        while (end && (n = bs_record_at(sl->data, pos, end, s->salt, sl->gen)) != 0) {
            *bytes += n;
            *records += 1;
            pos += BS_RECORD_SIZE(n);
        }
        if (pos < end) { /* a call still being copied, and what was reserved after it */
            *bytes += end - pos - BS_RECORD_HEAD;
            *records += 1;
        }
        if (i == s->head)
            break;
    }
}

void bs_stage_reset(struct bs_stage *s)
{
    uint64_t w = atomic_load(&s->word);
    if (slot_of(w) == BS_STAGE_PENDING)
        return;
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++) {
        if (i != s->head || slot_of(w) == BS_STAGE_CLOSED)
            chunk_release(s, &s->slots[i]);
        atomic_store(&s->slots[i].valid, 0);
    }
    s->tail = s->head;
    s->sealed = -1;
    if (slot_of(w) != BS_STAGE_CLOSED) {
        struct bs_slot *sl = &s->slots[s->head];
        zero_used(sl, off_of(w)); /* the parent's records: not ours to write, nor to probe */
        sl->gen = ++s->gen;
        size_t cap = sl->cap;
        atomic_store(&s->word, make_word(s->head, cap ? floor_bits(cap) : 0));
    }
}
