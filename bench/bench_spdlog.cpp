/* bench_spdlog.cpp - the same producer as bench_append, logging the same pre-formatted
 * records through an spdlog async logger (pattern "%v", no added end of line, the default
 * queue of 8192 entries, one worker thread, block when full), timing every call. */
#include <memory>
#include <string>

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "bench_common.h"

struct run {
    const bench_opts *o;
    pthread_barrier_t barrier;
    spdlog::logger *logger;
    uint64_t limit_ticks;
};

static void *producer(void *arg)
{
    bench_thread *t = static_cast<bench_thread *>(arg);
    run *r = static_cast<run *>(t->arg);
    const bench_opts *o = r->o;
    uint64_t x = 88172645463325252ull + (uint64_t)t->index;
    long i = 0;
    uint64_t end = 0;

    pthread_barrier_wait(&r->barrier);
    t->first = bench_ticks();
    while (i < o->count) {
        const char *rec = t->records + (size_t)(i % BENCH_RING) * o->size;
        uint64_t a = bench_ticks();
        r->logger->log(spdlog::level::info, spdlog::string_view_t(rec, o->size));
        end = bench_ticks();
        t->start[i] = a;
        t->lat[i] = end - a;
        i++;
        if (o->work)
            x = bench_work(o->work, x);
        if (o->sleep_us)
            bench_sleep_us(o->sleep_us);
        if (end - t->first > r->limit_ticks)
            break;
    }
    t->last = end;
    t->done = i;
    if (x == 42)
        fputc(' ', stderr);
    return nullptr;
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_parse(argc, argv, &o);
    bench_calibrate();

    run r;
    r.o = &o;
    r.limit_ticks =
        o.max_seconds > 0 ? (uint64_t)(o.max_seconds * 1e9 / bench_ns_per_tick) : UINT64_MAX;
    spdlog::init_thread_pool(8192, 1);
    std::shared_ptr<spdlog::logger> logger;
    try {
        logger = spdlog::create_async<spdlog::sinks::basic_file_sink_mt>("bench", o.path);
    } catch (const spdlog::spdlog_ex &e) {
        bench_die("spdlog: %s", e.what());
    }
    logger->set_formatter(std::unique_ptr<spdlog::formatter>(
        new spdlog::pattern_formatter("%v", spdlog::pattern_time_type::local, std::string())));
    logger->set_level(spdlog::level::info);
    r.logger = logger.get();

    bench_thread *ts = static_cast<bench_thread *>(bench_xmalloc((size_t)o.threads * sizeof *ts));
    pthread_t *tids = static_cast<pthread_t *>(bench_xmalloc((size_t)o.threads * sizeof *tids));
    pthread_barrier_init(&r.barrier, nullptr, (unsigned)o.threads);
    for (int i = 0; i < o.threads; i++) {
        bench_thread_init(&ts[i], i, &o);
        ts[i].arg = &r;
    }
    for (int i = 0; i < o.threads; i++)
        if (pthread_create(&tids[i], nullptr, producer, &ts[i]) != 0)
            bench_die("pthread_create failed");
    for (int i = 0; i < o.threads; i++)
        pthread_join(tids[i], nullptr);

    /* Drain the queue and close the file: the end-to-end time includes this. */
    logger.reset();
    spdlog::shutdown();
    bench_report(&o, ts, bench_wall_ns(&o, ts));
    return 0;
}
