/* registry.c - the list of open writers: flush-all, the final flush at exit, walking the
 * writers for the statistics and the scheduler, and holding them still across fork. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "registry_i.h"

/* Lock order: the scheduler's lock, then this one, then a writer's lock. */
static struct {
    pthread_mutex_t lock;
    struct bufshim_writer *head;
    _Atomic int count; /* changed under lock; the scheduler reads it under its own */
} registry = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

void bs_registry_add(struct bufshim_writer *w)
{
    pthread_mutex_lock(&registry.lock);
    w->prev = NULL;
    w->next = registry.head;
    if (registry.head)
        registry.head->prev = w;
    registry.head = w;
    atomic_fetch_add(&registry.count, 1);
    pthread_mutex_unlock(&registry.lock);
}

void bs_registry_remove(struct bufshim_writer *w)
{
    pthread_mutex_lock(&registry.lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        registry.head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    atomic_fetch_sub(&registry.count, 1);
    pthread_mutex_unlock(&registry.lock);
}

int bs_registry_count(void)
{
    return atomic_load(&registry.count);
}

struct bufshim_writer *bs_registry_claim_due(uint64_t now, uint64_t *next_ns)
{
    struct bufshim_writer *w;
    *next_ns = UINT64_MAX;
    pthread_mutex_lock(&registry.lock);
    for (w = registry.head; w; w = w->next)
        if (bs_writer_claim_due(w, now, next_ns))
            break;
    pthread_mutex_unlock(&registry.lock);
    return w;
}

void bs_engine_foreach_writer(void (*fn)(bufshim_writer *w, void *arg), void *arg)
{
    pthread_mutex_lock(&registry.lock);
    for (struct bufshim_writer *w = registry.head; w; w = w->next)
        fn(w, arg);
    pthread_mutex_unlock(&registry.lock);
}

/*
 * Flushes every writer, walking the registry in rounds of at most FLUSH_ROUND.
 * Each writer is pinned while it is written without the registry's lock held (close
 * waits for pins), and the last one of a round stays pinned as the cursor where the
 * next round resumes. No allocation: this also runs from signal handlers.
 */
#define FLUSH_ROUND 64

static int flush_all_with(ssize_t (*flush)(struct bufshim_writer *w))
{
    bs_busy_enter();
    struct bufshim_writer *list[FLUSH_ROUND];
    struct bufshim_writer *cursor = NULL;
    int result = 0;
    pthread_mutex_lock(&registry.lock);
    for (;;) {
        struct bufshim_writer *w = cursor ? cursor->next : registry.head;
        size_t k = 0;
        for (; w && k < FLUSH_ROUND; w = w->next)
            if (bs_writer_pin(w))
                list[k++] = w;
        struct bufshim_writer *prev = cursor;
        cursor = (w && k > 0 && bs_writer_pin(list[k - 1])) ? list[k - 1] : NULL;
        pthread_mutex_unlock(&registry.lock);
        if (prev)
            bs_writer_unpin(prev);
        for (size_t i = 0; i < k; i++) {
            ssize_t r = flush(list[i]);
            if (r < 0 && result == 0)
                result = (int)r;
            bs_writer_unpin(list[i]);
        }
        if (!cursor)
            break;
        pthread_mutex_lock(&registry.lock);
    }
    bs_busy_leave();
    return result;
}

int bs_engine_flush_all(void)
{
    return flush_all_with(bs_writer_flush);
}

/* Sums what every writer still holds; *retry_ns is the shortest interval among them. */
static uint64_t pending_all(uint64_t *retry_ns)
{
    uint64_t total = 0;
    *retry_ns = BS_FINAL_RETRY_MAX_NS;
    pthread_mutex_lock(&registry.lock);
    for (struct bufshim_writer *w = registry.head; w; w = w->next) {
        uint64_t p = bs_writer_pending(w);
        total += p;
        if (p && bs_writer_interval_ns(w) < *retry_ns)
            *retry_ns = bs_writer_interval_ns(w);
    }
    pthread_mutex_unlock(&registry.lock);
    return total;
}

static void report_loss(bufshim_writer *w, void *arg)
{
    (void)arg;
    uint64_t p = bs_writer_pending(w);
    if (p)
        bs_log("%s: %llu bytes could not be written at exit", bs_writer_name(w),
               (unsigned long long)p);
}

/* A writer the final flush emptied needs its spool no more. */
static void retire_spool(bufshim_writer *w, void *arg)
{
    (void)arg;
    bs_writer_retire_spool(w);
}

/* The final flush, retried as BS_FINAL_ATTEMPTS says (writer_i.h). */

void bs_engine_shutdown(void)
{
    if (bs_writer_begin_final())
        return;
    bs_busy_enter();
    for (int attempt = 1;; attempt++) {
        bs_engine_flush_all();
        uint64_t retry_ns;
        if (pending_all(&retry_ns) == 0)
            break;
        if (attempt == BS_FINAL_ATTEMPTS) {
            bs_engine_foreach_writer(report_loss, NULL);
            break;
        }
        bs_sleep_ns(retry_ns);
    }
    bs_engine_foreach_writer(retire_spool, NULL);
    bs_busy_leave();
}

void bs_engine_shutdown_now(void)
{
    if (bs_writer_begin_final())
        return;
    bs_busy_enter();
    flush_all_with(bs_writer_flush_nowait);
    bs_engine_foreach_writer(report_loss, NULL);
    bs_engine_foreach_writer(retire_spool, NULL);
    bs_busy_leave();
}

int bs_engine_is_shut_down(void)
{
    return bs_writer_final_begun();
}

void bs_registry_fork_prepare(void)
{
    pthread_mutex_lock(&registry.lock);
    for (struct bufshim_writer *w = registry.head; w; w = w->next)
        bs_writer_fork_prepare(w);
}

void bs_registry_fork_parent(void)
{
    for (struct bufshim_writer *w = registry.head; w; w = w->next)
        bs_writer_fork_parent(w);
    pthread_mutex_unlock(&registry.lock);
}

void bs_registry_fork_child(void)
{
    for (struct bufshim_writer *w = registry.head; w; w = w->next)
        bs_writer_fork_child(w);
    pthread_mutex_unlock(&registry.lock);
}
