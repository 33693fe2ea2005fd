/* stage_i.h - a writer's input side: appenders reserve space with one atomic add and copy
 * without a lock, into a ring of chunks that the batch drains in order. */
#ifndef BUFSHIM_STAGE_I_H
#define BUFSHIM_STAGE_I_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buffer_i.h"

/*
 * Errno: bs_stage_has_input, bs_stage_untaken, bs_stage_live and bs_stage_wait keep
 * errno (a wait only yields). The others allocate, free or advise the kernel (madvise,
 * whose failures do not matter) and may change it. Errors are returned as -errno, never
 * through errno.
 */

/*
 * The reservation word packs the current slot, log2 of its chunk's capacity and the bytes
 * reserved in it. An append adds its length to the word: the old value says which chunk,
 * where, and whether it fits, all as of one instant; installing a new chunk is an exchange
 * of the same word. So calls land in the order of their reservations, which is consistent
 * with the order in which they returned (doc/behaviour.md §5); a chunk cannot be drained, let
 * alone reused, before every reservation that fitted in it has been copied, so the copy never
 * lands in a recycled chunk; and a thread preempted in the middle of its copy holds up no
 * other appender, only the batch that drains the chunk.
 */
#define BS_STAGE_SLOTS 64u /* ring of chunks; a power of two */
#define BS_STAGE_SLOT_SHIFT 57
#define BS_STAGE_CAP_SHIFT 51
#define BS_STAGE_OFF_MASK ((1ull << BS_STAGE_CAP_SHIFT) - 1)
#define BS_STAGE_CLOSED 127u  /* slot value after the final flush: every reservation fails */

struct bs_slot {
    char *data;
    size_t cap; /* a power of two */
    int fresh;  /* newly allocated: appenders fault its pages in ahead of themselves */
    uint32_t region; /* where data came from (the provider's name for it) */
    uint32_t gen;    /* changes at every install: records of an older use do not check */
    _Atomic uint64_t valid;     /* 1 + the slot's final length, once known; 0 before */
};
/*
 * An appender writes nothing of the slot: only its reservation in the word and its record in
 * the chunk. Whether every copy into a sealed chunk is done is read off the records
 * themselves (each header is stored last, with release order: bs_stage_wait), and so are the
 * bytes and calls staged (bs_stage_live). A count of copies in the slot would be one more
 * cache line that every appending thread writes on every call.
 */

/*
 * Records. Each call is stored as a header (struct bs_record: its length and a check)
 * and its bytes, padded to 8: BS_RECORD_SIZE(len) bytes of the chunk. The header is
 * stored after the bytes, with release order, and checks only at its offset in a chunk
 * of its generation, so a reader of a dead process's chunk can tell whole calls from a
 * call that was being copied (spool_i.h). A batch compacts the records' bytes into the
 * output buffer.
 */
#define BS_RECORD_HEAD 8u
#define BS_RECORD_SIZE(len) (BS_RECORD_HEAD + (((uint64_t)(len) + 7u) & ~(uint64_t)7u))
#define BS_RECORD_MAX 0xffffffffu /* longer calls are refused (-ENOMEM: written through) */

struct bs_record {
    uint32_t len;
    uint32_t check;
};

/* The check of a record of len bytes at off in a chunk of generation gen. Never 0. */
static inline uint32_t bs_record_check(uint64_t salt, uint32_t gen, uint64_t off, uint32_t len)
{
    uint64_t h = (salt ^ ((uint64_t)gen << 44) ^ off) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29) ^ len) * 0xbf58476d1ce4e5b9ull;
    uint32_t c = (uint32_t)(h >> 32);
    return c ? c : 1;
}

/*
 * The length of the whole record whose header is at pos of a chunk (generation gen, records
 * checked with salt) that ends at end, or 0 when none is there: the one rule for the batch
 * (stage.c) and for a reader of a dead process's spool (spool_read.c).
 */
static inline uint32_t bs_record_at(const char *chunk, uint64_t pos, uint64_t end, uint64_t salt,
                                    uint32_t gen)
{
    if (pos + BS_RECORD_HEAD > end)
        return 0;
    uint64_t hv = atomic_load_explicit((_Atomic uint64_t *)(uintptr_t)(chunk + pos),
                                       memory_order_acquire);
    struct bs_record h;
    memcpy(&h, &hv, sizeof h);
    if (h.len == 0 || h.check != bs_record_check(salt, gen, pos, h.len) ||
        BS_RECORD_SIZE(h.len) > end - pos)
        return 0;
    return h.len;
}

struct bs_stage {
    _Alignas(64) _Atomic uint64_t word; /* slot, log2(capacity), bytes reserved */
    _Alignas(64) unsigned tail;         /* oldest slot not taken (under the writer's lock) */
    unsigned head;                      /* the current slot (under the writer's lock) */
    int sealed;                         /* last sealed slot not taken yet, or -1 */
    uint32_t gen;                       /* the last generation given to a slot */
    uint64_t salt;                      /* of the records' checks */
    struct bs_mem *mem;                 /* where chunks come from (NULL: process memory) */
    struct bs_slot spare;               /* a drained chunk kept for the next seal */
    struct bs_slot slots[BS_STAGE_SLOTS];
};

/* The reservation word's parts: the slot, the chunk's capacity (0 for a chunk of no
 * bytes, installed when memory ran out: every append then asks for a new chunk), and
 * the bytes reserved in it. */
static inline unsigned bs_stage_word_slot(uint64_t word)
{
    return (unsigned)(word >> BS_STAGE_SLOT_SHIFT);
}

static inline uint64_t bs_stage_word_cap(uint64_t word)
{
    unsigned bits = (word >> BS_STAGE_CAP_SHIFT) & 63;
    return bits ? 1ull << bits : 0;
}

static inline uint64_t bs_stage_word_off(uint64_t word)
{
    return word & BS_STAGE_OFF_MASK;
}

/*
 * What a batch tells the owner of the stage's memory (a spool) as it takes chunks:
 * commit: the output's new length and the first slot not moved, before the moved chunks
 * are reused. in_place: out of memory for the output, slot is about to be compacted in its
 * own chunk (the chunk's records are not records any more), then the output adopts that
 * chunk (adopted: its region and capacity); in_place(-1) once committed.
 */
struct bs_stage_hooks {
    void (*commit)(void *ctx, uint64_t out_len, unsigned tail);
    void (*in_place)(void *ctx, int slot);
    void (*adopted)(void *ctx, uint32_t region, uint64_t cap);
};

/*
 * Sets up an empty stage with a first chunk of at least cap bytes from mem (NULL: process
 * memory), its records checked with salt. Returns 0 or -ENOMEM.
 */
int bs_stage_init(struct bs_stage *s, size_t cap, struct bs_mem *mem, uint64_t salt);

/*
 * Sets up a stage that refuses every append until replaced (a writer whose memory is
 * made at its first append): bs_stage_try_append reports it full with *full_slot
 * BS_STAGE_PENDING.
 */
void bs_stage_init_pending(struct bs_stage *s);
#define BS_STAGE_PENDING 126u

/* 1 for a pending stage. */
int bs_stage_is_pending(const struct bs_stage *s);

/* Makes a pending stage a real one, with a first chunk of process memory of at least cap
 * bytes (appenders that found it pending try again). Lock held. 0 or -ENOMEM. */
int bs_stage_activate(struct bs_stage *s, size_t cap);

/* Frees every chunk. */
void bs_stage_free(struct bs_stage *s);

/*
 * Lock-free fast path: copies len bytes into the current chunk. Returns 1 when the bytes
 * are in (*first is set when they are the first of their chunk), 0 when the chunk is full
 * (*full_slot says which: the caller takes the writer's lock, calls bs_stage_grow, and
 * tries again), -ESHUTDOWN once the closed state is installed, or -ENOMEM for a length
 * of 1 TiB or more.
 */
int bs_stage_try_append(struct bs_stage *s, const void *data, size_t len, int *first,
                        unsigned *full_slot);

/*
 * Installs a new current chunk large enough for len bytes, unless another thread already
 * replaced the chunk that was full. Caller holds the writer's lock. Returns 0 or -ENOMEM.
 */
int bs_stage_grow(struct bs_stage *s, unsigned full_slot, size_t len);

/*
 * A batch in three steps. bs_stage_seal (lock held) ends the current chunk and installs a
 * new one: the spare (a chunk drained by the last batch, its pages already touched: the
 * double buffer's swap), else a new allocation; with closing set it installs the closed
 * state instead, which refuses every later append (the final flush). It returns the index
 * of the last sealed slot, or -1 when nothing was appended. bs_stage_wait (no lock) waits
 * for the copies still running into the sealed chunks. bs_stage_take (lock held) moves
 * their records' bytes into out, oldest chunk first, adds the bytes and calls to *bytes
 * and *records, calls hooks->commit (hooks may be NULL), and only then reuses the chunks.
 * When out cannot grow and holds nothing, the oldest chunk's records are compacted in the
 * chunk itself and out adopts it: a batch always makes progress, even when memory has run
 * out. Returns 0 or -ENOMEM (the chunks that could not be moved stay, and are taken next
 * time).
 */
int bs_stage_seal(struct bs_stage *s, int closing);
void bs_stage_wait(struct bs_stage *s, unsigned last);
int bs_stage_take(struct bs_stage *s, unsigned last, struct bs_buf *out, uint64_t *bytes,
                  uint64_t *records, const struct bs_stage_hooks *hooks, void *ctx);

/* 1 while sealed chunks wait to be taken (an earlier take ran out of memory). */
static inline int bs_stage_untaken(const struct bs_stage *s)
{
    return s->sealed >= 0;
}

/* 1 when bytes were appended since the last seal, or sealed chunks wait to be taken. */
int bs_stage_has_input(const struct bs_stage *s);

/* Bytes and calls appended and not drained yet (a snapshot, read off the records: a call
 * still being copied counts as one call of the bytes reserved after the last whole record
 * of its chunk). Caller holds the lock. Costs a walk over the staged records: for batches,
 * status and the final flush, never for an append. */
void bs_stage_live(struct bs_stage *s, uint64_t *bytes, uint64_t *records);

/* Drops every byte (a forked child: the parent writes them). Keeps one chunk. Only for a
 * stage in process memory. */
void bs_stage_reset(struct bs_stage *s);

#endif /* BUFSHIM_STAGE_I_H */
