/* spool_i.h - spools: a writer's buffers in a shared mapping of a file that outlives the
 * process, so that another process (the keeper, `bufshim recover`) can write what a dead
 * process held. The layout (this file) is the contract between the two sides: spool.c
 * writes it, spool_read.c reads a dead owner's spool and finishes its job. */
#ifndef BUFSHIM_SPOOL_I_H
#define BUFSHIM_SPOOL_I_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stage_i.h"

/*
 * Errno: bs_spool_configure, bs_spool_enabled, bs_spool_commit, bs_spool_write_begin,
 * bs_spool_write_end, bs_spool_out_rewound and bs_spool_detach keep errno; the others make system calls and may change it. Errors are
 * returned as -errno.
 *
 * Where: one folder per user, $XDG_RUNTIME_DIR/bufshim when XDG_RUNTIME_DIR names a folder
 * of the user's, else /dev/shm/bufshim-<uid>; mode 0700, owned by the user (a folder
 * owned by anyone else is refused). BUFSHIM_SPOOL_DIR overrides both (the shim's
 * config). One file per spooled writer, mode 0600:
 *
 *     <pid>-b<created>-<n>.spool
 *
 * created is the owner's CLOCK_BOOTTIME in nanoseconds when it made the spool (clock_gettime:
 * no system call); n counts the process's spools. The keeper holds an exclusive flock on
 * "keeper.lock" in the folder while it runs.
 *
 * Liveness (a reader's question: is the owner still running?), decided without the owner
 * reading its own start time: a process with that pid runs now, and its start time (field 22
 * of /proc/<pid>/stat, clock ticks since boot, the same clock) is at or before created.
 * Argument: the owner ran at created, and a pid names one live process at a time, so another
 * process can hold the pid only after the owner died, which is after created. The tick
 * rounds start times down, so the owner always passes; another process started in the same
 * tick (10 ms) after the owner's death passes too, and its spool then waits until that
 * process exits (the keeper watches it by pidfd): later, never lost or doubled. Both sides
 * must read the one boot clock, so a reader in another time namespace than the owner's is
 * not supported.
 *
 * The file (sparse): the head (struct bs_spool_head) at offset 0; then, in the same
 * allocation, the first chunk (region BS_SPOOL_FIRST_REGION, BS_SPOOL_INLINE_BYTES) and the
 * start of out's region (BS_SPOOL_OUT_REGION), which grows in place from there; region r >= 3
 * at offset r << BS_SPOOL_REGION_SHIFT holds one later chunk (bs_spool_region_off). A short
 * process's spool is thus one fallocate and one mmap. Region memory is reserved with
 * fallocate before use, so a full tmpfs is an error at allocation (the writer falls back to
 * process memory) and never a SIGBUS in the program's copy; the inline part stays reserved
 * for the spool's life.
 *
 * What a reader finds after the owner died, and why it is exact:
 *  - out (region out_region): bytes compacted from sealed chunks by a batch, of which
 *    out_done() bytes have reached the file. While a write(2) of a batch is in flight
 *    the BS_SPOOL_WRITING bit of out_written is set, write_base is the file's size
 *    before it and write_len its length: the reader compares the file's bytes from
 *    write_base with out's to learn how many landed. write_base and write_len are
 *    stored before the bit; the bit is cleared in the same store that adds what the
 *    write wrote, so no state counts a byte twice.
 *  - out_commit: out's length and the stage's first chunk not yet compacted, one word
 *    stored after the compacted bytes: either the chunk's records are still in the
 *    chunk, or they are in out, never both. Out of memory, with out empty, a batch
 *    compacts the oldest chunk in place and out adopts it: in_place names that slot from
 *    before the first byte moves until after the commit. A reader skips such a slot (its
 *    records are half moved): a death in that moment, out of memory, loses that chunk.
 *  - the stage (struct bs_stage, embedded): slots from out_commit's tail to stage.head
 *    hold records. A record is a header word (struct bs_record) and the call's bytes,
 *    padded to 8. The header is stored, with release order, after the bytes are copied,
 *    and its check depends on the spool's salt, the slot's generation, the record's
 *    offset and length: a valid header means a whole call, and a call that was still
 *    being copied (its header zero, or an older generation's) is left out. Because a
 *    dead copier's length is unknown, the reader looks for the next valid header at
 *    every 8-byte offset after it (a false match needs 32 bits of the salt's hash).
 */

#define BS_SPOOL_MAGIC "BSSPOOL1"
#define BS_SPOOL_VERSION 4u /* 4: no copy count in a slot (stage_i.h) */
#define BS_SPOOL_REGION_SHIFT 40
#define BS_SPOOL_REGIONS 128u /* region 0 is the head */
#define BS_SPOOL_FIRST_REGION 1u /* the first chunk, after the head */
#define BS_SPOOL_OUT_REGION 2u   /* out, after the first chunk; grows in place */
#define BS_SPOOL_INLINE_BYTES 4096u /* the first chunk, and out's first bytes */
#define BS_SPOOL_PATH_MAX 4096
#define BS_SPOOL_HANDLE_MAX 128

/* state */
#define BS_SPOOL_LIVE 1u    /* the owner runs (or died: then a reader finishes it) */
#define BS_SPOOL_DONE 2u    /* everything written; the file is being removed */
#define BS_SPOOL_TAKEN 3u   /* a reader has it (owner_pid holds the reader's pid) */

#define BS_SPOOL_WRITING (1ull << 63)
#define BS_SPOOL_OUT_LEN_MASK ((1ull << 56) - 1)

struct bs_spool_head {
    /* Written once at creation, the magic last. */
    char magic[8];
    uint32_t version;
    uint32_t head_size; /* sizeof(struct bs_spool_head): layout check */
    uint32_t uid;
    uint32_t pid;
    uint64_t created;     /* CLOCK_BOOTTIME ns at creation (the name's) */
    uint64_t salt;
    uint64_t dev, ino;       /* the target file */
    uint64_t check;          /* bs_spool_head_check of the fields above and path */
    char path[BS_SPOOL_PATH_MAX]; /* the file's canonical path at creation */

    /* The owner's live state. */
    _Alignas(64) _Atomic uint32_t state;
    _Atomic uint32_t taker; /* pid of a reader that took it (state TAKEN) */
    _Atomic uint64_t out_commit;  /* out length (low 56 bits) | tail slot << 56 */
    _Atomic uint64_t out_written; /* bytes of out in the file; BS_SPOOL_WRITING */
    _Atomic uint64_t write_base;
    _Atomic uint64_t write_len;
    _Atomic uint32_t out_region; /* the region out lives in (a chunk's, after in_place) */
    _Atomic uint32_t in_place;   /* 1 + a slot being compacted in its own chunk, or 0 */
    _Atomic uint64_t out_cap; /* bytes of out's region that are mapped and reserved */
    /* A handle reaches the file after a rename (open_by_handle_at wants CAP_DAC_READ_SEARCH).
       Stored at creation by a process of uid 0, else by the writer thread after the first
       batch (a reader of the same other uid can rarely use one): handle_ready, stored last
       with release order, says the fields are whole. */
    _Atomic uint32_t handle_ready;
    uint32_t handle_type; /* name_to_handle_at's, when handle_bytes > 0 */
    uint32_t handle_bytes;
    unsigned char handle[BS_SPOOL_HANDLE_MAX];

    _Alignas(64) struct bs_stage stage;
};

/* The head's bytes in the file: struct bs_spool_head rounded up to pages. */
#define BS_SPOOL_HEAD_BYTES (((sizeof(struct bs_spool_head)) + 4095) & ~(size_t)4095)

/* The head, the first chunk and out's first bytes: made with one fallocate and one mmap. */
#define BS_SPOOL_INLINE_END (BS_SPOOL_HEAD_BYTES + 2 * BS_SPOOL_INLINE_BYTES)

/* Where region r starts in the file (both sides use this rule). */
static inline uint64_t bs_spool_region_off(uint32_t r)
{
    if (r == BS_SPOOL_FIRST_REGION)
        return BS_SPOOL_HEAD_BYTES;
    if (r == BS_SPOOL_OUT_REGION)
        return BS_SPOOL_HEAD_BYTES + BS_SPOOL_INLINE_BYTES;
    return (uint64_t)r << BS_SPOOL_REGION_SHIFT;
}

/* The check of the head's fixed fields but the magic, which the owner stores last (a file
 * of its name without it was being made when its owner died: nothing had been appended). */
uint64_t bs_spool_head_check(const struct bs_spool_head *h);

/* ---- The owner's side (spool.c) ---- */

/* What a spool is for: the target's identity and how to reach it. */
struct bs_spool_id {
    uint64_t dev, ino;
    const char *path; /* canonical path, or NULL */
};

struct bs_spool;

/*
 * The folder (copied). NULL or "" for the default above. Set once, before the first spool,
 * by the shim's start. enabled 0 turns spools off (BUFSHIM_CRASHSAFE=0).
 */
void bs_spool_configure(const char *dir, int enabled);

/* 1 when spools are on. */
int bs_spool_enabled(void);

/*
 * The folder in use (created when missing), or NULL with the reason in why (a stderr line
 * was printed). Resolved at the first call.
 */
const char *bs_spool_dir(void);

/*
 * Creates a spool for id: the file, its head, its first chunk of at least cap bytes, the
 * stage initialised in it. Returns NULL (errno set) when it cannot; the caller then uses
 * process memory. The file descriptor is closed before it returns: only mappings remain.
 */
struct bs_spool *bs_spool_create(const struct bs_spool_id *id, size_t cap);

/* The stage inside the spool (stable until bs_spool_detach). */
struct bs_stage *bs_spool_stage(struct bs_spool *sp);

/* The memory provider of the spool's chunks and output (see stage_i.h, buffer_i.h). */
struct bs_mem *bs_spool_chunk_mem(struct bs_spool *sp);
struct bs_mem *bs_spool_out_mem(struct bs_spool *sp);

/*
 * Publishes out's state after a batch compacted sealed chunks into it: its length and
 * the new tail. Then drained chunks may be reused. Writer's lock held.
 */
void bs_spool_commit(struct bs_spool *sp, uint64_t out_len, unsigned tail);

/* The stage's in_place and adopted hooks (stage_i.h), for the spool's head. */
void bs_spool_in_place(struct bs_spool *sp, int slot);
void bs_spool_adopted(struct bs_spool *sp, uint32_t region, uint64_t cap);

/*
 * Around each write(2) of a batch to the file: begin with the file's size before it and
 * the length asked (base UINT64_MAX when unknown: a reader then writes the bytes again
 * rather than lose them), end with what it wrote (0 when it failed). out_done is the
 * bytes of out written before the write. Keeps errno.
 */
void bs_spool_write_begin(struct bs_spool *sp, uint64_t out_done, uint64_t base, uint64_t len);
void bs_spool_write_end(struct bs_spool *sp, uint64_t out_done);

/* out was emptied and rewound: its length and written count are 0 again. */
void bs_spool_out_rewound(struct bs_spool *sp, unsigned tail);

/* The final flush has begun: memory given back from now on is not punched out of the file
 * (it is removed next). */
void bs_spool_final(struct bs_spool *sp);

/* Everything is written: the file is removed (the mappings stay until detach). */
void bs_spool_retire(struct bs_spool *sp);

/*
 * A forked child: forgets the parent's spool without touching it (its mappings, and
 * out's of out_cap bytes at out_data, are unmapped; nothing is written to them, the
 * file stays). Frees sp. Keeps errno.
 */
void bs_spool_detach(struct bs_spool *sp, void *out_data, size_t out_cap);

/* Unmaps the head and frees sp, once the stage and out have given their memory back. */
void bs_spool_free(struct bs_spool *sp);

/* After each batch of a spooled writer, on the thread that ran it (runs the check hook). */
void bs_spool_after_batch(struct bs_spool *sp);

/*
 * Called once per process after its first spool was created, on the creating thread
 * (the shim makes sure a keeper runs). Set once at start.
 */
void bs_spool_set_first_hook(void (*hook)(void));

/*
 * Called on a writer thread after a batch of a spooled writer, at most once per second
 * (the shim checks that its keeper still runs). Set once at start.
 */
void bs_spool_set_check_hook(void (*hook)(void));

/* ---- A reader's side (spool_read.c): the keeper and `bufshim recover` ---- */

/*
 * Finishes the spool name in the folder dirfd, whose owner is known to be dead: takes it
 * (state TAKEN, so that two readers never both write it), checks it (magic, version,
 * layout, head check, owned by the caller's uid, mode 0600, a regular file), reaches its
 * file (by path when it is still the same device and inode; else by handle; else the
 * file of that inode in the path's folder), writes what the owner held that is not in
 * the file yet, once, in order, and removes the spool. Returns the bytes written (0
 * when nothing was held) or -errno; msg gets a line for people either way (the path and
 * what was done, or why it was refused: a refused or unreachable spool stays, renamed
 * <name>.refused).
 */
ssize_t bs_spool_finish(int dirfd, const char *name, char *msg, size_t msglen);

/* Parses a spool's name: 1 with pid and created, or 0 when it is not a spool's name. */
int bs_spool_parse_name(const char *name, pid_t *pid, uint64_t *created);

/* 1 when the process pid that ran at created (CLOCK_BOOTTIME ns) may still run, by the rule
 * above: a process pid runs, not a zombie, and started at or before created. *start gets its
 * start time (ticks; 0 when none runs). */
int bs_spool_owner_may_run(pid_t pid, uint64_t created, uint64_t *start);

/* 1 when a process of start time start (ticks, not 0) started at or before created. */
int bs_spool_started_by(uint64_t start, uint64_t created);

/* The start time of pid (field 22 of /proc/<pid>/stat), or 0 when it is gone. */
uint64_t bs_proc_starttime(pid_t pid);

#endif /* BUFSHIM_SPOOL_I_H */
