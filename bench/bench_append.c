/* bench_append.c - a producer that appends pre-formatted records with write(2) (mode direct,
 * also the program run under the shim), fwrite over a setvbuf buffer (mode stdio), the
 * engine's bufshim_append (mode api, libbufshim.so loaded with dlopen from --lib or
 * BENCH_BUFSHIM_LIB), or that opens a file over and over (mode open), timing every call. */
#include <dlfcn.h>
#include <fcntl.h>

#include "bufshim.h"

#include "bench_common.h"

struct run {
    const struct bench_opts *o;
    pthread_barrier_t barrier;
    int fd;
    FILE *f;
    bufshim_writer *w;
    uint64_t limit_ticks;
};

/* The engine's API, resolved from the library at run time so that the program builds without
 * it. */
static struct {
    bufshim_writer *(*open_file)(const char *, const struct bufshim_options *);
    int (*append)(bufshim_writer *, const void *, size_t);
    int (*close)(bufshim_writer *);
} api;

static void load_api(void)
{
    const char *lib = getenv("BENCH_BUFSHIM_LIB");
    void *h = dlopen(lib ? lib : "libbufshim.so", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        bench_die("dlopen: %s (set BENCH_BUFSHIM_LIB)", dlerror());
    *(void **)&api.open_file = dlsym(h, "bufshim_open_file");
    *(void **)&api.append = dlsym(h, "bufshim_append");
    *(void **)&api.close = dlsym(h, "bufshim_close");
    if (!api.open_file || !api.append || !api.close)
        bench_die("libbufshim lacks the bufshim_* API");
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            bench_die("write: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

static void *producer(void *arg)
{
    struct bench_thread *t = (struct bench_thread *)arg;
    struct run *r = (struct run *)t->arg;
    const struct bench_opts *o = r->o;
    enum {
        DIRECT,
        STDIO,
        OPEN,
        API
    } kind = !strcmp(o->mode, "stdio")  ? STDIO
             : !strcmp(o->mode, "open") ? OPEN
             : !strcmp(o->mode, "api")  ? API
                                        : DIRECT;
    uint64_t x = 88172645463325252ull + (uint64_t)t->index;
    long i = 0;
    uint64_t end = 0;

    pthread_barrier_wait(&r->barrier);
    t->first = bench_ticks();
    while (i < o->count) {
        const char *rec = t->records + (size_t)(i % BENCH_RING) * o->size;
        uint64_t a = bench_ticks();
        if (kind == DIRECT) {
            write_all(r->fd, rec, o->size);
        } else if (kind == STDIO) {
            if (fwrite(rec, 1, o->size, r->f) != o->size)
                bench_die("fwrite: %s", strerror(errno));
        } else if (kind == API) {
            int e = api.append(r->w, rec, o->size);
            if (e != 0)
                bench_die("bufshim_append: %s", strerror(-e));
        } else {
            int fd = open(o->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            end = bench_ticks();
            if (fd < 0)
                bench_die("open %s: %s", o->path, strerror(errno));
            close(fd);
        }
        if (kind != OPEN)
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
    /* Keep the work from being optimised away. */
    if (x == 42)
        fputc(' ', stderr);
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o);
    bench_calibrate();

    struct run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.fd = -1;
    r.limit_ticks =
        o.max_seconds > 0 ? (uint64_t)(o.max_seconds * 1e9 / bench_ns_per_tick) : UINT64_MAX;
    char *stdio_buffer = NULL;
    if (!strcmp(o.mode, "direct")) {
        r.fd = open(o.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (r.fd < 0)
            bench_die("open %s: %s", o.path, strerror(errno));
    } else if (!strcmp(o.mode, "stdio")) {
        r.f = fopen(o.path, "a");
        if (!r.f)
            bench_die("fopen %s: %s", o.path, strerror(errno));
        /* glibc ignores the size when it allocates the buffer itself: give it one. */
        stdio_buffer = (char *)bench_xmalloc(o.stdio_buf);
        if (setvbuf(r.f, stdio_buffer, _IOFBF, o.stdio_buf) != 0)
            bench_die("setvbuf failed");
    } else if (!strcmp(o.mode, "api")) {
        load_api();
        struct bufshim_options bo = {0, 0};
        const char *iv = getenv("BUFSHIM_INTERVAL");
        bo.interval = iv ? atof(iv) : 0;
        r.w = api.open_file(o.path, &bo);
        if (!r.w)
            bench_die("bufshim_open_file %s: %s", o.path, strerror(errno));
    } else if (strcmp(o.mode, "open") != 0) {
        bench_die("unknown mode %s", o.mode);
    }

    struct bench_thread *ts = (struct bench_thread *)bench_xmalloc((size_t)o.threads * sizeof *ts);
    pthread_t *tids = (pthread_t *)bench_xmalloc((size_t)o.threads * sizeof *tids);
    pthread_barrier_init(&r.barrier, NULL, (unsigned)o.threads);
    for (int i = 0; i < o.threads; i++) {
        bench_thread_init(&ts[i], i, &o);
        ts[i].arg = &r;
    }
    for (int i = 0; i < o.threads; i++)
        if (pthread_create(&tids[i], NULL, producer, &ts[i]) != 0)
            bench_die("pthread_create failed");
    for (int i = 0; i < o.threads; i++)
        pthread_join(tids[i], NULL);

    if (r.fd >= 0 && close(r.fd) != 0)
        bench_die("close: %s", strerror(errno));
    if (r.w && api.close(r.w) != 0)
        bench_die("bufshim_close failed");
    if (r.f && fclose(r.f) != 0)
        bench_die("fclose: %s", strerror(errno));
    free(stdio_buffer);
    bench_report(&o, ts, bench_wall_ns(&o, ts));
    return 0;
}
