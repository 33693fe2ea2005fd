/* stage_i.h - a writer's input side: appenders reserve space with one atomic add and copy
 * without a lock, into a ring of chunks that the batch drains in order. */
#ifndef BUFSHIM_STAGE_I_H
#define BUFSHIM_STAGE_I_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

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
#define BS_STAGE_REC_SHIFT 40 /* committed word: calls above, bytes below */
#define BS_STAGE_BYTES_MASK ((1ull << BS_STAGE_REC_SHIFT) - 1)

struct bs_slot {
    char *data;
    size_t cap; /* a power of two */
    int fresh;  /* newly allocated: appenders fault its pages in ahead of themselves */
    _Atomic uint64_t committed; /* bytes copied (low bits) and calls (high bits) */
    _Atomic uint64_t valid;     /* 1 + the slot's final length, once known; 0 before */
};

struct bs_stage {
    _Alignas(64) _Atomic uint64_t word; /* slot, log2(capacity), bytes reserved */
    _Alignas(64) unsigned tail;         /* oldest slot not taken (under the writer's lock) */
    unsigned head;                      /* the current slot (under the writer's lock) */
    int sealed;                         /* last sealed slot not taken yet, or -1 */
    struct bs_slot slots[BS_STAGE_SLOTS];
};

/* Sets up an empty stage with a first chunk of cap bytes. Returns 0 or -ENOMEM. */
int bs_stage_init(struct bs_stage *s, size_t cap);

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
 * new one: the memory of out when out is empty (the double buffer's swap), else a new
 * allocation; with closing set it installs the closed state instead, which refuses every
 * later append (the final flush). It returns the index of the last sealed slot, or -1 when
 * nothing was appended. bs_stage_wait (no lock) waits for the copies still running into
 * the sealed chunks. bs_stage_take (lock held) moves them into out, oldest first, adopting
 * the chunk's memory when out is empty and one chunk holds everything, and adds the bytes
 * and calls to *bytes and *records. Returns 0 or -ENOMEM (what could not be moved stays).
 */
int bs_stage_seal(struct bs_stage *s, struct bs_buf *out, int closing);
void bs_stage_wait(struct bs_stage *s, unsigned last);
int bs_stage_take(struct bs_stage *s, unsigned last, struct bs_buf *out, uint64_t *bytes,
                  uint64_t *records);

/* 1 while sealed chunks wait to be taken (an earlier take ran out of memory). */
static inline int bs_stage_untaken(const struct bs_stage *s)
{
    return s->sealed >= 0;
}

/* 1 when bytes were appended since the last seal, or sealed chunks wait to be taken. */
int bs_stage_has_input(const struct bs_stage *s);

/* Bytes and calls appended and not drained yet (a snapshot). Caller holds the lock. */
void bs_stage_live(struct bs_stage *s, uint64_t *bytes, uint64_t *records);

/* Drops every byte (a forked child: the parent writes them). Keeps one chunk. */
void bs_stage_reset(struct bs_stage *s);

#endif /* BUFSHIM_STAGE_I_H */
