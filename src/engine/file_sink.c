/* file_sink.c - the file sink: each batch opens the path, appends, optionally syncs, closes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "errno_i.h"

struct file_sink {
    int fsync;
    char path[];
};

/*
 * Appends the batch to the file. Returns the bytes written, or -errno when not
 * even one byte could be written. Once bytes are in the file they count as
 * consumed even if fdatasync or close then fail (reporting them unwritten would
 * write them twice); such an error is logged instead.
 */
static ssize_t file_sink_write(void *ctx, const void *data, size_t len)
{
    struct file_sink *fs = ctx;
    int fd = bs_sys_open(fs->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return fd;
    ssize_t w = bs_sys_write_all(fd, data, len);
    size_t done = w > 0 ? (size_t)w : 0;
    ssize_t err = w < 0 ? w : 0;
    if (done > 0 && fs->fsync) {
        int r = bs_sys_fdatasync(fd);
        if (r < 0)
            bs_log("%s: fdatasync failed: %s", fs->path, strerror(-r));
    }
    int c = bs_sys_close(fd);
    if (c < 0 && c != -EINTR && done > 0)
        bs_log("%s: close after writing %zu bytes failed: %s", fs->path, done, strerror(-c));
    return done > 0 ? (ssize_t)done : (err ? err : c);
}

bufshim_writer *bufshim_open_file(const char *path, const struct bufshim_options *options)
{
    if (!path || !*path) {
        errno = EINVAL;
        return NULL;
    }
    size_t n = strlen(path);
    struct file_sink *fs = malloc(sizeof *fs + n + 1);
    if (!fs)
        return NULL;
    memcpy(fs->path, path, n + 1);
    fs->fsync = options ? options->fsync : 0;
    bufshim_writer *w = bs_writer_open_owned(file_sink_write, fs, free, options, path);
    if (!w)
        BS_SAVE_ERRNO(free(fs));
    return w;
}
