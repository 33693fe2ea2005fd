/* api.c - the public API (bufshim.h) and the named opens of engine_i.h: each call puts
 * one writer's own part (writer.c) together with the registry and the scheduler. */
#include <errno.h>
#include <stdio.h>

#include "registry_i.h"
#include "scheduler_i.h"
#include "writer_i.h"

static bufshim_writer *open_writer(bufshim_sink_fn sink, void *ctx, void (*ctx_free)(void *ctx),
                                   const struct bufshim_options *options, const char *name,
                                   const struct bs_spool_id *id)
{
    struct bufshim_writer *w = bs_writer_new(sink, ctx, ctx_free, options, name);
    if (!w)
        return NULL;
    if (id && bs_writer_want_spool(w, id) < 0) {
        w->ctx_free = NULL; /* the caller still owns ctx when the open fails */
        bs_writer_free(w);
        errno = ENOMEM;
        return NULL;
    }
    bs_sched_init(); /* its fork handlers hold the registry: before the first writer is in */
    bs_registry_add(w);
    /* Decision: no thread yet. The first append wakes (and so starts) one; a writer
       nothing is appended to, as a program's open of a file it never writes, costs
       no thread. */

    /* Opened after the final flush began (which seals every registered writer
       closed): close this one too, so that appends write through rather than wait
       for a flush that will never come. The flag is read after registration, so a
       writer is either found by the final flush or sees the flag. */
    if (bs_writer_final_begun())
        bs_writer_flush(w);
    return w;
}

bufshim_writer *bs_writer_open_owned(bufshim_sink_fn sink, void *ctx, void (*ctx_free)(void *ctx),
                                     const struct bufshim_options *options, const char *name)
{
    return open_writer(sink, ctx, ctx_free, options, name, NULL);
}

bufshim_writer *bs_writer_open_spooled(bufshim_sink_fn sink, void *ctx,
                                       const struct bufshim_options *options, const char *name,
                                       const struct bs_spool_id *id)
{
    return open_writer(sink, ctx, NULL, options, name, id);
}

bufshim_writer *bs_writer_open_named(bufshim_sink_fn sink, void *ctx,
                                     const struct bufshim_options *options, const char *name)
{
    return bs_writer_open_owned(sink, ctx, NULL, options, name);
}

bufshim_writer *bufshim_open(bufshim_sink_fn sink, void *ctx, const struct bufshim_options *options)
{
    char name[64];
    snprintf(name, sizeof name, "sink %p", (void *)ctx);
    return bs_writer_open_named(sink, ctx, options, name);
}

static int append(bufshim_writer *w, const void *data, size_t len)
{
    int first = 0;
    int r = bs_writer_append(w, data, len, &first);
    if (r <= 0)
        return r;
    /* The first bytes after a swap: the scheduler may be asleep with nothing due. */
    if (first || atomic_load_explicit(&bs_sched_threadless, memory_order_relaxed))
        bs_sched_wake();
    return 0;
}

static int close_writer(bufshim_writer *w)
{
    if (!w)
        return -EINVAL;
    int result = bs_writer_finish(w);
    bs_registry_remove(w);
    bs_sched_writer_closed();
    bs_writer_free(w);
    return result;
}

/* The public entry points bracket themselves for the async-signal guard. */
int bufshim_append(bufshim_writer *w, const void *data, size_t len)
{
    bs_busy_enter();
    int r = append(w, data, len);
    bs_busy_leave();
    return r;
}

ssize_t bufshim_flush(bufshim_writer *w)
{
    bs_busy_enter();
    ssize_t r = bs_writer_flush(w);
    bs_busy_leave();
    return r;
}

int bufshim_close(bufshim_writer *w)
{
    bs_busy_enter();
    int r = close_writer(w);
    bs_busy_leave();
    return r;
}
