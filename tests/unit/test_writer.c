/* test_writer.c - unit tests of writers: swap, partial consumption, errors, flush, close. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
#include "writer_i.h"

#include "check.h"

/* A scriptable sink: consumes at most `limit` bytes per call, fails while fail > 0. */
struct script {
    char got[1 << 16];
    size_t got_len;
    int calls;
    size_t limit;
    int fail;
};

static ssize_t script_sink(void *ctx, const void *data, size_t len)
{
    struct script *s = ctx;
    s->calls++;
    if (s->fail > 0) {
        s->fail--;
        return -ENOSPC;
    }
    size_t n = s->limit && s->limit < len ? s->limit : len;
    memcpy(s->got + s->got_len, data, n);
    s->got_len += n;
    return (ssize_t)n;
}

/* A long interval keeps the writer thread out of the way: only flush/close write. */
static const struct bufshim_options slow = {.interval = 3600};

static int test_flush_swaps_and_writes(void)
{
    struct script s = {0};
    bufshim_writer *w = bufshim_open(script_sink, &s, &slow);
    CHECK(w);
    CHECK(bufshim_flush(w) == 0); /* empty: no sink call */
    CHECK(s.calls == 0);
    CHECK(bufshim_append(w, "hello ", 6) == 0);
    CHECK(bufshim_append(w, "world", 5) == 0);
    /* Bytes not yet taken by a batch: the calls' bytes, read off their records. */
    CHECK(bs_writer_pending(w) == 11);
    CHECK(bufshim_flush(w) == 11);
    CHECK(s.calls == 1);
    CHECK(s.got_len == 11 && memcmp(s.got, "hello world", 11) == 0);
    CHECK(bs_writer_pending(w) == 0);
    CHECK(bufshim_close(w) == 0);
    CHECK(s.calls == 1); /* nothing left: close made no call */
    return 0;
}

static int test_partial_consumption_keeps_order(void)
{
    struct script s = {.limit = 4};
    bufshim_writer *w = bufshim_open(script_sink, &s, &slow);
    CHECK(w);
    CHECK(bufshim_append(w, "abcdefghij", 10) == 0);
    CHECK(bufshim_flush(w) == 4);
    CHECK(bs_writer_pending(w) == 6);
    /* Newer bytes queue behind the rest of the first batch. */
    CHECK(bufshim_append(w, "KLM", 3) == 0);
    CHECK(bufshim_flush(w) == 4);
    s.limit = 0;
    CHECK(bufshim_flush(w) == 5);
    CHECK(s.got_len == 13 && memcmp(s.got, "abcdefghijKLM", 13) == 0);
    CHECK(bufshim_close(w) == 0);
    return 0;
}

static int test_error_then_recovery(void)
{
    struct script s = {.fail = 2};
    bufshim_writer *w = bs_writer_open_named(script_sink, &s, &slow, "unit-sink");
    CHECK(w);
    CHECK(bufshim_append(w, "12345", 5) == 0);
    CHECK(bufshim_flush(w) == -ENOSPC);
    CHECK(bufshim_append(w, "678", 3) == 0);
    CHECK(bufshim_flush(w) == -ENOSPC);
    CHECK(bs_writer_pending(w) == 8);
    CHECK(bufshim_flush(w) == 8);
    CHECK(s.got_len == 8 && memcmp(s.got, "12345678", 8) == 0);
    struct bs_writer_stats st;
    bs_writer_stats(w, &st);
    CHECK(st.failure_episodes == 1);
    CHECK(st.bytes == 8 && st.records == 2 && st.batches == 1);
    CHECK(bufshim_close(w) == 0);
    return 0;
}

static int test_close_writes_everything(void)
{
    struct script s = {0};
    bufshim_writer *w = bufshim_open(script_sink, &s, &slow);
    CHECK(w);
    for (int i = 0; i < 1000; i++)
        CHECK(bufshim_append(w, "0123456789", 10) == 0);
    CHECK(bufshim_close(w) == 0);
    CHECK(s.got_len == 10000);
    for (int i = 0; i < 1000; i++)
        CHECK(memcmp(s.got + 10 * i, "0123456789", 10) == 0);
    return 0;
}

static int test_bad_arguments(void)
{
    CHECK(bufshim_append(NULL, "x", 1) == -EINVAL);
    CHECK(bufshim_flush(NULL) == -EINVAL);
    CHECK(bufshim_close(NULL) == -EINVAL);
    errno = 0;
    CHECK(bufshim_open(NULL, NULL, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(bufshim_open_file("", NULL) == NULL && errno == EINVAL);
    return 0;
}

/* Threads of this process named "bufshim" (the engine names its threads). */
static int count_threads(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        char path[300], comm[32] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f) && strcmp(comm, "bufshim\n") == 0)
                n++;
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

/* count_threads once the engine's threads have had up to ms milliseconds to end (0 when
   they did), looking every 10 ms. */
static int threads_left_after(int ms)
{
    int n = 0;
    for (int i = 0; i < ms / 10 && (n = count_threads()) > 0; i++)
        usleep(10000);
    return n;
}

static int test_threads_exit_with_last_writer(void)
{
    struct script s1 = {0}, s2 = {0};
    const struct bufshim_options fast = {.interval = 0.01};
    bufshim_writer *a = bufshim_open(script_sink, &s1, &fast);
    bufshim_writer *b = bufshim_open(script_sink, &s2, &fast);
    CHECK(a && b);
    for (int i = 0; i < 50; i++) {
        CHECK(bufshim_append(a, "a", 1) == 0);
        CHECK(bufshim_append(b, "b", 1) == 0);
        usleep(2000);
    }
    CHECK(count_threads() >= 1);
    CHECK(bufshim_close(a) == 0);
    CHECK(bufshim_close(b) == 0);
    CHECK(s1.got_len == 50 && s2.got_len == 50);
    CHECK(threads_left_after(2000) == 0);
    return 0;
}

static int test_flush_all_reaches_every_writer(void)
{
    enum { N = 150 }; /* more than one round of bs_engine_flush_all */
    static struct script s[N];
    bufshim_writer *w[N];
    for (int i = 0; i < N; i++) {
        w[i] = bufshim_open(script_sink, &s[i], &slow);
        CHECK(w[i]);
        CHECK(bufshim_append(w[i], "xyz", 3) == 0);
    }
    CHECK(bs_engine_flush_all() == 0);
    for (int i = 0; i < N; i++) {
        CHECK(s[i].got_len == 3 && s[i].calls == 1);
        CHECK(bufshim_close(w[i]) == 0);
    }
    return 0;
}

/*
 * A failing sink is retried by the writer threads on their own, while appends keep
 * coming (no flush): the leader that slept while the failed batch was in flight
 * must learn of its next due time.
 */
struct flaky {
    pthread_mutex_t lock;
    size_t got;
    int calls, fail;
};

static ssize_t flaky_sink(void *ctx, const void *data, size_t len)
{
    (void)data;
    struct flaky *f = ctx;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    int fail = f->fail > 0 ? f->fail-- : 0;
    if (!fail)
        f->got += len;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        usleep(20000); /* a slow failure: appends (and their wake-ups) arrive meanwhile */
    return fail ? -EIO : (ssize_t)len;
}

static int test_failed_batches_are_retried_on_schedule(void)
{
    struct flaky f = {.lock = PTHREAD_MUTEX_INITIALIZER, .fail = 3};
    const struct bufshim_options fast = {.interval = 0.01};
    bufshim_writer *w = bufshim_open(flaky_sink, &f, &fast);
    CHECK(w);
    for (int i = 0; i < 100; i++) {
        CHECK(bufshim_append(w, "0123456789", 10) == 0);
        usleep(2000);
    }
    /* Well past the interval: the scheduled batches alone must have caught up. */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&f.lock);
        size_t got = f.got;
        pthread_mutex_unlock(&f.lock);
        if (got == 1000)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&f.lock);
    int calls = f.calls;
    size_t got = f.got;
    pthread_mutex_unlock(&f.lock);
    CHECK(calls > 3 && got == 1000);
    CHECK(bufshim_close(w) == 0);
    return 0;
}

/* bs_engine_call / submit / wait: the job runs on a writer thread, and a call made there runs inline. */
struct job_probe {
    int ran_on_engine;
    int order;
    int nested_inline;
};

/* Jobs are started in order, not one at a time: two may run at once on two threads. */
static atomic_int job_counter;

static void nested_job(void *arg)
{
    struct job_probe *p = arg;
    p->nested_inline = bs_engine_thread_here();
}

static void probe_job(void *arg)
{
    struct job_probe *p = arg;
    p->ran_on_engine = bs_engine_thread_here();
    p->order = atomic_fetch_add(&job_counter, 1) + 1;
    /* Called on a writer thread, a call runs at once, in that thread. */
    bs_engine_call(nested_job, p);
}

static int test_jobs_run_on_writer_threads(void)
{
    struct job_probe a = {0}, b = {0}, c = {0};
    CHECK(!bs_engine_thread_here());
    CHECK(bs_engine_call(probe_job, &a) == 0);
    CHECK(a.ran_on_engine == 1 && a.nested_inline == 1 && a.order == 1);
    /* Two submitted jobs both run, on writer threads; wait returns once each has run. They
       start in submission order, but the first hands the leader role over (other work
       exists), so the two may run at once and either may count first. */
    struct bs_job jb = {.fn = probe_job, .arg = &b}, jc = {.fn = probe_job, .arg = &c};
    CHECK(bs_engine_submit(&jb) == 0);
    CHECK(bs_engine_submit(&jc) == 0);
    bs_engine_wait(&jc);
    bs_engine_wait(&jb);
    CHECK(atomic_load(&jb.done) == 1 && atomic_load(&jc.done) == 1);
    CHECK(b.ran_on_engine && c.ran_on_engine && b.order + c.order == 5 &&
          (b.order == 2 || b.order == 3));
    return 0;
}

static int freed_ctx;

static void count_free(void *ctx)
{
    (void)ctx;
    freed_ctx++;
}

static int test_owned_context_is_freed_at_close(void)
{
    struct script s = {0};
    freed_ctx = 0;
    CHECK(!bs_writer_open_owned(NULL, &s, count_free, &slow, "bad") && errno == EINVAL);
    CHECK(freed_ctx == 0); /* a failed open leaves the context to the caller */
    bufshim_writer *w = bs_writer_open_owned(script_sink, &s, count_free, &slow, "owned");
    CHECK(w);
    CHECK(bufshim_append(w, "abc", 3) == 0);
    CHECK(freed_ctx == 0);
    CHECK(bufshim_close(w) == 0);
    CHECK(freed_ctx == 1 && s.got_len == 3);
    return 0;
}

static int test_a_writer_says_when_it_is_due(void)
{
    /* What the scheduler asks: nothing is due without bytes; with bytes, the due time. */
    struct script s = {0};
    bufshim_writer *w = bufshim_open(script_sink, &s, &slow);
    CHECK(w);
    uint64_t now = bs_now_ns(), next = UINT64_MAX;
    CHECK(bs_writer_claim_due(w, now, &next) == 0 && next == UINT64_MAX);
    CHECK(bufshim_append(w, "due", 3) == 0);
    CHECK(bs_writer_claim_due(w, now, &next) == 0);
    CHECK(next > now + 3000ull * 1000000000ull && next != UINT64_MAX);
    CHECK(bs_writer_claim_due(w, next, &next) == 1);
    CHECK(bs_writer_run_batch(w) == 3);
    CHECK(s.got_len == 3 && memcmp(s.got, "due", 3) == 0);
    next = UINT64_MAX;
    CHECK(bs_writer_claim_due(w, UINT64_MAX - 1, &next) == 0 && next == UINT64_MAX);
    CHECK(bufshim_close(w) == 0);
    return 0;
}

static int test_shutdown_refuses_appends(void)
{
    /* The shutdown is process-wide: this test's process is its own (main). */
    struct script s = {0};
    bufshim_writer *w = bufshim_open(script_sink, &s, &slow);
    CHECK(w);
    CHECK(bufshim_append(w, "before", 6) == 0);
    bs_engine_shutdown();
    CHECK(s.got_len == 6 && memcmp(s.got, "before", 6) == 0);
    CHECK(bufshim_append(w, "after", 5) == -ESHUTDOWN);
    CHECK(bs_engine_is_shut_down());
    CHECK(bufshim_close(w) == 0);
    /* A writer opened after the final flush refuses appends too (the caller writes
       through): nothing could flush it any more. */
    struct script s2 = {0};
    bufshim_writer *late = bufshim_open(script_sink, &s2, &slow);
    CHECK(late);
    CHECK(bufshim_append(late, "late", 4) == -ESHUTDOWN);
    CHECK(bufshim_close(late) == 0);
    CHECK(s2.calls == 0);
    return 0;
}

/* After the final flush the writer threads end without waiting for the writers to close
   (nothing is left for them to batch); a job submitted after that still runs. */
static int test_threads_end_after_the_final_flush(void)
{
    struct script s = {0};
    const struct bufshim_options fast = {.interval = 0.01};
    bufshim_writer *w = bufshim_open(script_sink, &s, &fast);
    CHECK(w);
    for (int i = 0; i < 20; i++) {
        CHECK(bufshim_append(w, "x", 1) == 0);
        usleep(2000);
    }
    CHECK(count_threads() >= 1);
    bs_engine_shutdown();
    CHECK(s.got_len == 20);
    /* Still there: nothing told them to go. */
    usleep(50000);
    CHECK(count_threads() >= 1);
    bs_engine_release_threads();
    CHECK(threads_left_after(5000) == 0);
    struct job_probe p = {0};
    CHECK(bs_engine_call(probe_job, &p) == 0);
    CHECK(p.ran_on_engine == 1);
    CHECK(threads_left_after(5000) == 0);
    CHECK(bufshim_close(w) == 0);
    return 0;
}

#define TEST(t) {t, #t}

int main(void)
{
    /* Each in a process of its own (check_run_isolated says why). */
    struct {
        int (*fn)(void);
        const char *name;
    } tests[] = {TEST(test_flush_swaps_and_writes),
                 TEST(test_partial_consumption_keeps_order),
                 TEST(test_error_then_recovery),
                 TEST(test_close_writes_everything),
                 TEST(test_bad_arguments),
                 TEST(test_threads_exit_with_last_writer),
                 TEST(test_flush_all_reaches_every_writer),
                 TEST(test_failed_batches_are_retried_on_schedule),
                 TEST(test_jobs_run_on_writer_threads),
                 TEST(test_owned_context_is_freed_at_close),
                 TEST(test_a_writer_says_when_it_is_due),
                 TEST(test_shutdown_refuses_appends),
                 TEST(test_threads_end_after_the_final_flush)};
    int n = (int)(sizeof tests / sizeof tests[0]), fails = 0;
    for (int i = 0; i < n; i++)
        fails += check_run_isolated(tests[i].fn, tests[i].name);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails ? 1 : 0;
}
