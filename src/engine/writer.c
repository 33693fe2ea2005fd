/* writer.c - one writer: append, the batch, flush, the final write at close, failure
 * episodes and their stderr lines, counters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "writer_i.h"

/* 1 once the final flush has begun (bs_writer_begin_final). */
static _Atomic int final_begun;

int bs_writer_begin_final(void)
{
    return atomic_exchange(&final_begun, 1);
}

int bs_writer_final_begun(void)
{
    return atomic_load(&final_begun);
}

static uint64_t interval_ns_of(const struct bufshim_options *o)
{
    double s = (o && o->interval > 0) ? o->interval : BS_DEFAULT_INTERVAL;
    if (s > 1e9)
        s = 1e9;
    return (uint64_t)(s * 1e9);
}

struct bufshim_writer *bs_writer_new(bufshim_sink_fn sink, void *ctx, void (*ctx_free)(void *ctx),
                                     const struct bufshim_options *options, const char *name)
{
    if (!sink) {
        errno = EINVAL;
        return NULL;
    }
    /* The stage's reservation word sits on a cache line of its own (_Alignas(64)). */
    struct bufshim_writer *w = NULL;
    if (posix_memalign((void **)&w, _Alignof(struct bufshim_writer), sizeof *w) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    memset(w, 0, sizeof *w);
    w->name = strdup(name ? name : "sink");
    if (!w->name) {
        free(w);
        return NULL;
    }
    /* The first append makes the stage (make_stage): a writer nothing is appended to costs
       no chunk, and one that wants a spool no chunk of process memory either. */
    bs_stage_init_pending(&w->local);
    atomic_init(&w->stage, &w->local);
    w->sink = sink;
    w->ctx = ctx;
    w->ctx_free = ctx_free;
    w->interval_ns = interval_ns_of(options);
    /* The interval is measured from the previous batch, or from the open. */
    w->next_due_ns = bs_now_ns() + w->interval_ns;

    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    /* Critical sections are a memcpy: spinning briefly beats sleeping. */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&w->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&w->idle, NULL);
    return w;
}

int bs_writer_want_spool(struct bufshim_writer *w, const struct bs_spool_id *id)
{
    if (!bs_spool_enabled())
        return 0;
    if (id->path) {
        w->spool_path = strdup(id->path);
        if (!w->spool_path)
            return -ENOMEM;
    }
    w->spool_dev = id->dev;
    w->spool_ino = id->ino;
    w->want_spool = 1; /* the stage is still pending: its first append makes the spool */
    return 0;
}

/* The stage of a writer that wants a spool, at its first append: in a new spool, else
 * (spools off, or the spool could not be made) in process memory. Lock held. */
static int make_stage(struct bufshim_writer *w)
{
    if (atomic_load(&w->stage) != &w->local || !bs_stage_is_pending(&w->local))
        return 0; /* made already: try again */
    struct bs_spool_id id = {w->spool_dev, w->spool_ino, w->spool_path};
    struct bs_spool *sp = w->want_spool ? bs_spool_create(&id, 0) : NULL;
    if (sp) {
        w->spool = sp;
        w->out.mem = bs_spool_out_mem(sp);
        atomic_store_explicit(&w->stage, bs_spool_stage(sp), memory_order_release);
        return 0;
    }
    if (w->want_spool) {
        static _Atomic int told;
        if (!atomic_exchange(&told, 1))
            bs_log("%s: crash safety off for this process: no spool (%s); what a crash "
                   "or kill leaves in memory is lost",
                   w->name, strerror(errno));
        w->want_spool = 0;
    }
    /* The local stage becomes a real one; appenders that saw it pending try again. */
    return bs_stage_activate(&w->local, 0);
}

void bs_writer_free(struct bufshim_writer *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->idle);
    struct bs_stage *st = atomic_load(&w->stage);
    bs_stage_free(st);
    if (st != &w->local)
        bs_stage_free(&w->local);
    bs_buf_free(&w->out);
    if (w->spool) {
        bs_spool_retire(w->spool);
        bs_spool_free(w->spool);
    }
    free(w->spool_path);
    if (w->ctx_free)
        w->ctx_free(w->ctx);
    free(w->name);
    free(w);
}

int bs_writer_append(struct bufshim_writer *w, const void *data, size_t len, int *first)
{
    if (!w || (!data && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    for (;;) {
        unsigned full = 0;
        *first = 0;
        /* acquire: pairs with make_stage's store, so the spool's stage is seen whole. */
        struct bs_stage *st = atomic_load_explicit(&w->stage, memory_order_acquire);
        int r = bs_stage_try_append(st, data, len, first, &full);
        if (r > 0) {
            /* The first call of a chunk notes when it came (bs_writer_status's oldest). */
            if (*first && !atomic_load_explicit(&w->stage_first, memory_order_relaxed))
                atomic_store_explicit(&w->stage_first, bs_real_ns(), memory_order_relaxed);
            return 1;
        }
        if (r < 0)
            return r; /* -ESHUTDOWN: the final flush has sealed this writer */
        /* The chunk is full: add a larger one (once per chunk, under the lock); or the
           writer's first append makes its stage. */
        pthread_mutex_lock(&w->lock);
        if (full == BS_STAGE_PENDING)
            r = make_stage(w);
        else
            r = bs_stage_grow(st, full, len);
        pthread_mutex_unlock(&w->lock);
        if (r < 0)
            return r;
    }
}

/* Bytes and calls held now (staged and unwritten). Caller holds w->lock. */
static uint64_t held_now(struct bufshim_writer *w, uint64_t *records)
{
    uint64_t b, r;
    bs_stage_live(atomic_load(&w->stage), &b, &r);
    if (records)
        *records = r;
    return b + (w->out.len - w->out.off);
}

const uint64_t bs_batch_bucket_ns[BS_BATCH_BUCKETS] = {
    1000000ull, 10000000ull, 100000000ull, 1000000000ull, 10000000000ull, 60000000000ull,
};

static void record_batch_time(struct bufshim_writer *w, uint64_t ns)
{
    unsigned b = 0;
    while (b < BS_BATCH_BUCKETS && ns > bs_batch_bucket_ns[b])
        b++;
    w->bucket[b]++;
    w->batch_sum_ns += ns;
    if (ns > w->batch_ns_max)
        w->batch_ns_max = ns;
    w->batch_ns_ring[w->batch_ns_count % BS_BATCH_SAMPLES] =
        ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    w->batch_ns_count++;
}

/* bs_stage_take's hooks: the spool learns out's new length and the new tail at once, and
 * which chunk a batch out of memory compacts in place. */
static void commit_take(void *ctx, uint64_t out_len, unsigned tail)
{
    bs_spool_commit(ctx, out_len, tail);
}

static void in_place_take(void *ctx, int slot)
{
    bs_spool_in_place(ctx, slot);
}

static void adopted_take(void *ctx, uint32_t region, uint64_t cap)
{
    bs_spool_adopted(ctx, region, cap);
}

static const struct bs_stage_hooks spool_hooks = {commit_take, in_place_take, adopted_take};

void bs_writer_io_begin(bufshim_writer *w, uint64_t base, uint64_t len)
{
    if (w->spool)
        bs_spool_write_begin(w->spool, w->io_done, base, len);
}

void bs_writer_io_end(bufshim_writer *w, uint64_t wrote)
{
    w->io_done += wrote;
    if (w->spool)
        bs_spool_write_end(w->spool, w->io_done);
}

/* How long a batch's write may be in flight before it counts as stalled. */
static uint64_t stall_ns(const struct bufshim_writer *w)
{
    return w->interval_ns > 1000000000u ? w->interval_ns : 1000000000u;
}

ssize_t bs_writer_run_batch(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    struct bs_stage *st = atomic_load(&w->stage);
    /* After the flag the seal installs the closed state: later appends write through. */
    int closing = atomic_load(&final_begun);
    if (closing && w->spool)
        bs_spool_final(w->spool);
    int last = bs_stage_seal(st, closing);
    pthread_mutex_unlock(&w->lock);
    if (last >= 0) {
        /* Copies into the sealed chunks that are still running: no lock held. */
        bs_stage_wait(st, (unsigned)last);
    }
    pthread_mutex_lock(&w->lock);
    if (last >= 0) {
        uint64_t before = w->bytes;
        /* The sealed chunks' arrival time goes with them into out, unless out still holds
           older bytes (a failed batch's rest). */
        uint64_t first = atomic_exchange_explicit(&w->stage_first, 0, memory_order_relaxed);
        if (w->out.len == w->out.off || !w->out_first)
            w->out_first = first ? first : bs_real_ns();
        /* On -ENOMEM the rest stays staged and is taken next time. */
        bs_stage_take(st, (unsigned)last, &w->out, &w->bytes, &w->records,
                      w->spool ? &spool_hooks : NULL, w->spool);
        atomic_fetch_add_explicit(&w->accepted, w->bytes - before, memory_order_relaxed);
        uint64_t held = held_now(w, NULL);
        if (held > w->peak_buffered)
            w->peak_buffered = held;
    }
    size_t n = w->out.len - w->out.off;
    const char *data = w->out.data + w->out.off;
    w->io_done = w->out.off;
    if (n > 0)
        w->inflight_real = bs_real_ns();
    pthread_mutex_unlock(&w->lock);

    ssize_t r = 0;
    uint64_t t0 = bs_now_ns(), t1 = t0;
    if (n > 0) {
        r = w->sink(w->ctx, data, n);
        t1 = bs_now_ns();
        if (r > (ssize_t)n)
            r = (ssize_t)n;
    }

    pthread_mutex_lock(&w->lock);
    int log_start = 0, log_end = 0, err = 0;
    uint64_t held = 0, attempts = 0;
    if (n > 0) {
        record_batch_time(w, t1 - t0);
        w->last_end_real = bs_real_ns();
        w->last_ns = t1 - t0;
        w->last_bytes = r > 0 ? (uint64_t)r : 0;
        w->inflight_real = 0;
        /* A write that stalled and then returned was an episode of its own, unless it
           goes on as (or already was) a failure episode. */
        if (t1 - t0 > stall_ns(w) && r >= 0 && !w->failing)
            w->stalls++;
        if (r > 0) {
            bs_buf_consume(&w->out, (size_t)r);
            if (w->spool) {
                /* What the sink says it consumed is what counts (its io_end calls said
                   the same for a file); an emptied out is rewound. */
                if (w->out.len == 0)
                    bs_spool_out_rewound(w->spool, st->tail);
                else
                    bs_spool_write_end(w->spool, w->out.off);
            }
            atomic_fetch_add_explicit(&w->consumed, (uint64_t)r, memory_order_relaxed);
            w->batches++;
            if ((uint64_t)n > w->largest_batch)
                w->largest_batch = n;
        }
        if (r <= 0 && w->spool)
            bs_spool_write_end(w->spool, w->out.off);
        if (r < 0) {
            w->episode_attempts++;
            if (!w->failing) {
                w->failing = 1;
                w->failure_episodes++;
                w->episode_error = (int)-r;
                w->episode_since_real = w->last_end_real;
                log_start = 1;
            }
        } else if (w->failing) {
            w->failing = 0;
            log_end = 1;
            attempts = w->episode_attempts;
            w->episode_attempts = 0;
        }
        err = (int)-r;
        held = held_now(w, NULL);
        if (w->out.len == w->out.off)
            w->out_first = 0;
        /* No realloc once the final flush has begun: it may run from a signal handler. */
        if (w->out.len == w->out.off && !atomic_load(&final_begun))
            bs_buf_trim(&w->out, n);
        /* The next batch starts no earlier than interval after this one ended. */
        w->next_due_ns = t1 + w->interval_ns;
    }
    w->in_flight = 0;
    pthread_cond_broadcast(&w->idle);
    struct bs_spool *sp = w->spool;
    pthread_mutex_unlock(&w->lock);

    if (sp && n > 0 && !closing) /* not in the final flush: the process is going */
        bs_spool_after_batch(sp);
    if (log_start)
        bs_log("%s: write failed: %s; %llu bytes held, retrying every %.3gs", w->name,
               strerror(err), (unsigned long long)held, (double)w->interval_ns / 1e9);
    if (log_end)
        bs_log("%s: writes recovered after %llu failed attempts; %llu bytes held", w->name,
               (unsigned long long)attempts, (unsigned long long)held);
    return r;
}

/* Waits until no batch is in flight, then claims w for the caller. Caller holds w->lock. */
static void claim(struct bufshim_writer *w)
{
    while (w->in_flight)
        pthread_cond_wait(&w->idle, &w->lock);
    w->in_flight = 1;
}

static ssize_t flush_with(struct bufshim_writer *w, int wait)
{
    if (!w)
        return -EINVAL;
    ssize_t total = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (!wait && w->in_flight) {
            pthread_mutex_unlock(&w->lock);
            return total > 0 ? total : -EBUSY;
        }
        claim(w);
        pthread_mutex_unlock(&w->lock);
        ssize_t r = bs_writer_run_batch(w);
        if (r < 0)
            return total > 0 ? total : r;
        total += r;
        /* Out of memory, a batch takes one staged chunk at a time: go on until all
           that was appended before the call is written. */
        pthread_mutex_lock(&w->lock);
        int more = r > 0 && w->out.len == w->out.off && bs_stage_untaken(atomic_load(&w->stage));
        pthread_mutex_unlock(&w->lock);
        if (!more)
            return total;
    }
}

ssize_t bs_writer_flush(struct bufshim_writer *w)
{
    return flush_with(w, 1);
}

ssize_t bs_writer_flush_nowait(struct bufshim_writer *w)
{
    return flush_with(w, 0);
}

int bs_writer_finish(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->closing = 1;
    while (w->pins)
        pthread_cond_wait(&w->idle, &w->lock);
    pthread_mutex_unlock(&w->lock);

    /* Final write: keep going while the sink makes progress; after a failure,
       retry as BS_FINAL_ATTEMPTS says before reporting the loss. */
    int result = 0, failures = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        claim(w);
        size_t pending = held_now(w, NULL);
        if (pending == 0) {
            w->in_flight = 0;
            pthread_mutex_unlock(&w->lock);
            result = 0;
            break;
        }
        pthread_mutex_unlock(&w->lock);
        ssize_t r = bs_writer_run_batch(w);
        if (r > 0)
            continue;
        result = r < 0 ? (int)r : -EIO;
        if (++failures >= BS_FINAL_ATTEMPTS) {
            bs_log("%s: closed with %zu bytes unwritten: %s", w->name, pending,
                   strerror(-result));
            break;
        }
        bs_sleep_ns(w->interval_ns < BS_FINAL_RETRY_MAX_NS ? w->interval_ns
                                                           : BS_FINAL_RETRY_MAX_NS);
    }
    return result;
}

/* True when w holds bytes and no batch is in flight. Caller holds w->lock. */
static int has_work(const struct bufshim_writer *w)
{
    return !w->in_flight && !w->closing &&
           (bs_stage_has_input(atomic_load(&w->stage)) || w->out.len > w->out.off);
}

int bs_writer_claim_due(struct bufshim_writer *w, uint64_t now, uint64_t *next_ns)
{
    int claimed = 0;
    pthread_mutex_lock(&w->lock);
    if (has_work(w)) {
        if (w->next_due_ns <= now) {
            w->in_flight = 1;
            claimed = 1;
        } else if (w->next_due_ns < *next_ns) {
            *next_ns = w->next_due_ns;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return claimed;
}

int bs_writer_pin(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    int ok = !w->closing;
    if (ok)
        w->pins++;
    pthread_mutex_unlock(&w->lock);
    return ok;
}

void bs_writer_unpin(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    if (--w->pins == 0)
        pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
}

uint64_t bs_writer_interval_ns(struct bufshim_writer *w)
{
    return w->interval_ns;
}

void bs_writer_fork_prepare(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
}

void bs_writer_fork_parent(struct bufshim_writer *w)
{
    pthread_mutex_unlock(&w->lock);
}

/*
 * In the child only the forking thread exists. Every byte buffered before the
 * fork belongs to the parent, which writes it: the child drops its copy (no
 * byte written twice) and starts threads of its own when it appends.
 */
void bs_writer_fork_child(struct bufshim_writer *w)
{
    if (w->spool) {
        /* The spool is the parent's: unmapped, never written to; the child makes its
           own at its first append. */
        bs_spool_detach(w->spool, w->out.data, w->out.cap);
        w->spool = NULL;
        w->out = (struct bs_buf){0};
        bs_stage_init_pending(&w->local);
        atomic_store(&w->stage, &w->local);
    } else {
        bs_stage_reset(&w->local);
        w->out.len = w->out.off = 0;
    }
    w->in_flight = 0;
    w->pins = 0;
    w->failing = 0;
    atomic_store(&w->stage_first, 0);
    w->out_first = w->inflight_real = 0;
    atomic_store(&w->consumed, atomic_load(&w->accepted));
    pthread_cond_init(&w->idle, NULL);
    pthread_mutex_unlock(&w->lock);
}

void bs_writer_retire_spool(struct bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->spool && held_now(w, NULL) == 0 && !w->in_flight)
        bs_spool_retire(w->spool);
    pthread_mutex_unlock(&w->lock);
}

uint64_t bs_writer_pending(bufshim_writer *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t n = held_now(w, NULL);
    pthread_mutex_unlock(&w->lock);
    return n;
}

const char *bs_writer_name(bufshim_writer *w)
{
    return w->name;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void bs_writer_stats(bufshim_writer *w, struct bs_writer_stats *out)
{
    uint32_t samples[BS_BATCH_SAMPLES];
    pthread_mutex_lock(&w->lock);
    uint64_t live_bytes, live_records;
    bs_stage_live(atomic_load(&w->stage), &live_bytes, &live_records);
    uint64_t held = held_now(w, NULL);
    out->bytes = w->bytes + live_bytes;
    out->records = w->records + live_records;
    out->batches = w->batches;
    out->largest_batch = w->largest_batch;
    out->peak_buffered = held > w->peak_buffered ? held : w->peak_buffered;
    out->failure_episodes = w->failure_episodes;
    out->batch_ns_max = w->batch_ns_max;
    uint32_t n = w->batch_ns_count < BS_BATCH_SAMPLES ? w->batch_ns_count : BS_BATCH_SAMPLES;
    memcpy(samples, w->batch_ns_ring, n * sizeof samples[0]);
    pthread_mutex_unlock(&w->lock);
    qsort(samples, n, sizeof samples[0], cmp_u32);
    out->batch_ns_p50 = n ? samples[n / 2] : 0;
}

void *bs_writer_ctx(bufshim_writer *w)
{
    return w->ctx;
}

void bs_writer_status(bufshim_writer *w, struct bs_writer_status *out)
{
    memset(out, 0, sizeof *out);
    uint64_t now = bs_real_ns();
    pthread_mutex_lock(&w->lock);
    out->held = held_now(w, NULL);
    if (w->out.len > w->out.off && w->out_first)
        out->oldest_real = w->out_first;
    else if (out->held)
        out->oldest_real = atomic_load_explicit(&w->stage_first, memory_order_relaxed);
    if (out->held && !out->oldest_real)
        out->oldest_real = now; /* its first call is storing the time right now */
    out->bytes = w->bytes;
    out->batches = w->batches;
    out->written = atomic_load_explicit(&w->consumed, memory_order_relaxed);
    out->last_end_real = w->last_end_real;
    out->last_ns = w->last_ns;
    out->last_bytes = w->last_bytes;
    out->inflight_real = w->inflight_real;
    out->stalled =
        w->inflight_real && now > w->inflight_real && now - w->inflight_real > stall_ns(w);
    out->failing = w->failing || out->stalled;
    out->error = w->failing ? w->episode_error : 0;
    if (w->failing)
        out->failing_since_real = w->episode_since_real;
    else if (out->stalled)
        out->failing_since_real = w->inflight_real;
    out->episodes = w->failure_episodes + w->stalls + (out->stalled && !w->failing);
    out->interval_ns = w->interval_ns;
    out->spooled = w->spool != NULL;
    memcpy(out->bucket, w->bucket, sizeof out->bucket);
    out->batch_sum_ns = w->batch_sum_ns;
    out->batch_count = w->batch_ns_count;
    pthread_mutex_unlock(&w->lock);
}
