/* bufshim.h - the public API of the bufshim double-buffer engine. */
#ifndef BUFSHIM_H
#define BUFSHIM_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BUFSHIM_EXPORT __attribute__((visibility("default")))
#else
#define BUFSHIM_EXPORT
#endif

/*
 * A sink receives one batch: it returns the number of bytes it consumed (0..len)
 * or a negative errno value. Whatever it did not consume is offered to it again
 * after the interval, before any newer bytes. A sink is only ever called by one
 * thread at a time for a given writer.
 */
typedef ssize_t (*bufshim_sink_fn)(void *ctx, const void *data, size_t len);

struct bufshim_options {
    double interval; /* minimum seconds between two batches; <= 0: the default (1 s) */
    int fsync;       /* file sink: fdatasync each batch before closing */
};

typedef struct bufshim_writer bufshim_writer;

/*
 * Creates a writer that hands its batches to sink(ctx, ...). options may be NULL.
 * Returns NULL with errno set on failure.
 */
BUFSHIM_EXPORT bufshim_writer *bufshim_open(bufshim_sink_fn sink, void *ctx,
                                            const struct bufshim_options *options);

/*
 * Creates a writer whose batches are appended to path: each batch opens the path
 * with O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC (mode 0666), writes all of it,
 * optionally fdatasyncs, and closes. Returns NULL with errno set on failure.
 */
BUFSHIM_EXPORT bufshim_writer *bufshim_open_file(const char *path,
                                                 const struct bufshim_options *options);

/*
 * Copies len bytes into the writer's input buffer. Thread-safe; never waits for
 * I/O, only for a lock held during a memory copy. The bytes of one call stay
 * contiguous. Returns 0, or -ENOMEM (nothing was taken) or -EINVAL.
 */
BUFSHIM_EXPORT int bufshim_append(bufshim_writer *w, const void *data, size_t len);

/*
 * Writes everything appended before the call, now, in the caller's thread (after
 * a batch already in flight has finished). Returns the number of bytes the sink
 * consumed in this call, or the sink's negative errno if it failed (the bytes
 * stay queued and are retried later).
 */
BUFSHIM_EXPORT ssize_t bufshim_flush(bufshim_writer *w);

/*
 * Final swap and write, then frees the writer. Returns 0 when every byte reached
 * the sink, otherwise the sink's negative errno (the unwritten bytes are lost
 * only in that case, and a line on stderr says how many).
 */
BUFSHIM_EXPORT int bufshim_close(bufshim_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* BUFSHIM_H */
