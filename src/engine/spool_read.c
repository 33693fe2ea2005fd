/* spool_read.c - a reader's side of spools: finishing the job of a dead owner (the keeper,
 * `bufshim recover`). It runs in those programs, never inside the shim, so it uses libc.
 *
 * Exactly once: the reader continues the owner's own protocol (spool_i.h). It first
 * settles a write that was in flight (how much of it the file shows), then compacts the
 * chunks' whole records into out and commits them there as a batch would, then writes
 * out with the same write bookkeeping. A reader that dies at any point leaves a spool the
 * next reader finishes from where it stopped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_i.h"

#define PAGE_UP(n) (((n) + 4095) & ~(uint64_t)4095)

int bs_spool_parse_name(const char *name, pid_t *pid, uint64_t *created)
{
    int p, used = 0;
    unsigned long long st;
    unsigned n;
    if (name[0] < '1' || name[0] > '9')
        return 0;
    if (sscanf(name, "%d-b%llu-%u.spool%n", &p, &st, &n, &used) != 3 || used == 0 ||
        name[used] != 0 || p <= 0)
        return 0;
    *pid = p;
    *created = st;
    return 1;
}

int bs_spool_started_by(uint64_t start, uint64_t created)
{
    static uint64_t tick_ns;
    if (!tick_ns) {
        long hz = sysconf(_SC_CLK_TCK);
        tick_ns = hz > 0 ? 1000000000u / (uint64_t)hz : 10000000u;
    }
    return start != 0 && start <= created / tick_ns;
}

int bs_spool_owner_may_run(pid_t pid, uint64_t created, uint64_t *start)
{
    *start = bs_proc_starttime(pid);
    return bs_spool_started_by(*start, created);
}

static void say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t len, const char *fmt, ...)
{
    if (!msg || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

/* Opens for appending, and for reading when allowed: a write in flight is settled by
 * reading what the file shows of it. */
#define APPEND_FLAGS (O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

static int open_rw_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDWR | APPEND_FLAGS);
    return fd >= 0 || errno != EACCES ? fd : openat(dirfd, path, O_WRONLY | APPEND_FLAGS);
}

/* The target file, opened for appending, checked to be (dev, ino); or -1. how says by what. */
static int reach(const struct bs_spool_head *h, const char **how)
{
    struct stat st;
    int fd = open_rw_at(AT_FDCWD, h->path);
    if (fd >= 0) {
        if (fstat(fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino && S_ISREG(st.st_mode)) {
            *how = "by its path";
            return fd;
        }
        close(fd);
    }
    /* Renamed, or its name now names another file. */
    char dir[BS_SPOOL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", h->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    if (slash == dir)
        slash[1] = 0;
    else
        *slash = 0;
    if (atomic_load_explicit(&((struct bs_spool_head *)h)->handle_ready, memory_order_acquire) &&
        h->handle_bytes > 0 && h->handle_bytes <= BS_SPOOL_HANDLE_MAX) {
        int mfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0)
            mfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct {
            unsigned int bytes;
            int type;
            unsigned char f[BS_SPOOL_HANDLE_MAX];
        } fh;
        fh.bytes = h->handle_bytes;
        fh.type = (int)h->handle_type;
        memcpy(fh.f, h->handle, h->handle_bytes);
        fd = mfd >= 0 ? open_by_handle_at(mfd, (void *)&fh, O_RDWR | APPEND_FLAGS) : -1;
        if (mfd >= 0)
            close(mfd);
        if (fd >= 0) {
            if (fstat(fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino) {
                *how = "by its file handle";
                return fd;
            }
            close(fd);
        }
    }
    /* The same folder (a log rotated by rename stays there). */
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return -1;
    struct dirent *e;
    fd = -1;
    while ((e = readdir(d)) != NULL) {
        if ((uint64_t)e->d_ino != h->ino)
            continue;
        int f = open_rw_at(dirfd(d), e->d_name);
        if (f >= 0 && fstat(f, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino) {
            fd = f;
            *how = "in its folder under another name";
            break;
        }
        if (f >= 0)
            close(f);
    }
    closedir(d);
    return fd;
}

static void *map_region(int fd, uint32_t r, size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)bs_spool_region_off(r));
    return p == MAP_FAILED ? NULL : p;
}

/* How many bytes of the write in flight are in the file (from base on, equal to ours). */
static uint64_t landed(int tfd, uint64_t base, const char *ours, uint64_t len, int *unsure)
{
    struct stat st;
    if (base == UINT64_MAX || fstat(tfd, &st) != 0) {
        *unsure = 1;
        return 0;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t have = size > base ? size - base : 0;
    if (have > len)
        have = len;
    char buf[65536];
    uint64_t same = 0;
    while (same < have) {
        size_t n = have - same < sizeof buf ? (size_t)(have - same) : sizeof buf;
        ssize_t r = pread(tfd, buf, n, (off_t)(base + same));
        if (r < 0 && same == 0)
            return have; /* not readable by us: the size alone says (the shim's writes are
                            the file's only appends, as a rule) */
        if (r <= 0) {
            *unsure = 1;
            break;
        }
        size_t k = 0;
        while (k < (size_t)r && buf[k] == ours[same + k])
            k++;
        same += k;
        if (k < (size_t)r) {
            *unsure = 1; /* other bytes are there: another writer's */
            break;
        }
    }
    return same;
}

/* The end of the records of slot sl (index i) as far as the owner got. */
static uint64_t slot_end(const struct bs_stage *s, unsigned i, const struct bs_slot *sl)
{
    uint64_t v = atomic_load(&sl->valid);
    if (v)
        return v - 1 < sl->cap ? v - 1 : sl->cap;
    uint64_t w = atomic_load(&s->word);
    if (bs_stage_word_slot(w) == i)
        return bs_stage_word_off(w) < sl->cap ? bs_stage_word_off(w) : sl->cap;
    return sl->cap; /* sealed as the owner died: look through all of it */
}

/*
 * Calls emit for every whole record of slot sl's chunk at base. A position whose header
 * does not check is a call the owner was copying when it died: it is left out, and the
 * next whole record is looked for at every 8 bytes after it.
 */
static uint64_t walk(const struct bs_spool_head *h, const struct bs_slot *sl, const char *base,
                     uint64_t end, char *to, uint64_t *torn)
{
    uint64_t pos = 0, n = 0;
    int in_gap = 0;
    while (pos + BS_RECORD_HEAD <= end) {
        uint32_t len = bs_record_at(base, pos, end, h->salt, sl->gen);
        if (len) {
            if (to)
                memcpy(to + n, base + pos + BS_RECORD_HEAD, len);
            n += len;
            pos += BS_RECORD_SIZE(len);
            in_gap = 0;
        } else {
            if (!in_gap && torn)
                (*torn)++;
            in_gap = 1;
            pos += 8;
        }
    }
    return n;
}

/* The slots a reader takes: from the committed tail to the head, in ring order. */
static unsigned slots_left(const struct bs_stage *s, unsigned tail)
{
    return (s->head - tail + 1) & (BS_STAGE_SLOTS - 1);
}

/* Compacts the chunks' records into out (growing its region) and commits them. */
static int move_records(int fd, struct bs_spool_head *h, char **out, uint64_t *out_map,
                        uint64_t *torn, unsigned *lost_chunks)
{
    struct bs_stage *s = &h->stage;
    uint64_t c = atomic_load(&h->out_commit);
    uint64_t out_len = c & BS_SPOOL_OUT_LEN_MASK;
    unsigned tail = (unsigned)(c >> 56) & (BS_STAGE_SLOTS - 1);
    unsigned count = slots_left(s, tail);
    if (count == 0)
        return 0;
    const char *chunk[BS_STAGE_SLOTS] = {0};
    uint64_t total = 0;
    int err = 0;
    unsigned in_place = atomic_load(&h->in_place);
    for (unsigned k = 0, i = tail; k < count; k++, i = (i + 1) & (BS_STAGE_SLOTS - 1)) {
        const struct bs_slot *sl = &s->slots[i];
        if (!sl->region || !sl->cap || sl->region >= BS_SPOOL_REGIONS)
            continue;
        if (in_place == i + 1) {
            (*lost_chunks)++; /* being compacted in place, out of memory, at the death */
            continue;
        }
        chunk[i] = map_region(fd, sl->region, sl->cap, PROT_READ);
        if (!chunk[i]) {
            err = -errno;
            goto out;
        }
        total += walk(h, sl, chunk[i], slot_end(s, i, sl), NULL, NULL);
    }
    if (total > 0) {
        uint64_t need = PAGE_UP(out_len + total);
        if (need > *out_map) {
            off_t off = (off_t)bs_spool_region_off(atomic_load(&h->out_region));
            if (fallocate(fd, 0, off, (off_t)need) != 0) {
                err = -errno;
                goto out;
            }
            char *p = map_region(fd, atomic_load(&h->out_region), need, PROT_READ | PROT_WRITE);
            if (!p) {
                err = -errno;
                goto out;
            }
            if (*out)
                munmap(*out, *out_map);
            *out = p;
            *out_map = need;
        }
        uint64_t at = out_len;
        for (unsigned k = 0, i = tail; k < count; k++, i = (i + 1) & (BS_STAGE_SLOTS - 1))
            if (chunk[i])
                at += walk(h, &s->slots[i], chunk[i], slot_end(s, i, &s->slots[i]), *out + at,
                           torn);
        out_len = at;
    }
    /* As a batch would: out's new length and the new tail in one store. */
    unsigned new_tail = (s->head + 1) & (BS_STAGE_SLOTS - 1);
    atomic_store(&h->out_commit, (out_len & BS_SPOOL_OUT_LEN_MASK) | (uint64_t)new_tail << 56);
out:
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++)
        if (chunk[i])
            munmap((void *)chunk[i], s->slots[i].cap);
    return err;
}

/* Checks the head of an opened spool file; 0, 1 for a spool its owner never finished making
 * (no magic yet: nothing was appended to it), or -1 with why. */
static int check_spool(int fd, struct bs_spool_head **hp, char *why, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, n, "%s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, n, "not a regular file");
        return -1;
    }
    if (st.st_uid != getuid() || (st.st_mode & 0777) != 0600) {
        snprintf(why, n, "not a spool of uid %u's alone (owner %u, mode %03o)", (unsigned)getuid(),
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    if ((uint64_t)st.st_size < BS_SPOOL_HEAD_BYTES) {
        snprintf(why, n, "torn: %lld bytes, shorter than a spool's head", (long long)st.st_size);
        return -1;
    }
    struct bs_spool_head *h = mmap(NULL, BS_SPOOL_HEAD_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) {
        snprintf(why, n, "%s", strerror(errno));
        return -1;
    }
    static const char none[sizeof h->magic];
    if (memcmp(h->magic, none, sizeof none) == 0 && (uint64_t)st.st_size <= BS_SPOOL_INLINE_END) {
        munmap(h, BS_SPOOL_HEAD_BYTES);
        return 1; /* its owner died making it, before any append */
    }
    if (memcmp(h->magic, BS_SPOOL_MAGIC, sizeof h->magic) != 0 || h->version != BS_SPOOL_VERSION ||
        h->head_size != sizeof *h || h->check != bs_spool_head_check(h) ||
        memchr(h->path, 0, sizeof h->path) == NULL) {
        snprintf(why, n, "torn or not a spool of this version (its head does not check)");
        munmap(h, BS_SPOOL_HEAD_BYTES);
        return -1;
    }
    if (h->uid != getuid()) {
        snprintf(why, n, "made by uid %u", (unsigned)h->uid);
        munmap(h, BS_SPOOL_HEAD_BYTES);
        return -1;
    }
    *hp = h;
    return 0;
}

/* Sets a refused spool aside under <name>.refused. */
static void set_aside(int dirfd, const char *name)
{
    char to[NAME_MAX + 16];
    snprintf(to, sizeof to, "%s.refused", name);
    renameat(dirfd, name, dirfd, to);
}

/* Takes the spool for this reader: 1, or 0 when another live reader has it. */
static int take(struct bs_spool_head *h)
{
    uint32_t me = (uint32_t)getpid();
    for (;;) {
        uint32_t st = atomic_load(&h->state);
        if (st == BS_SPOOL_TAKEN) {
            uint32_t t = atomic_load(&h->taker);
            if (t != me && t != 0 && (kill((pid_t)t, 0) == 0 || errno == EPERM))
                return 0;
            if (atomic_compare_exchange_strong(&h->taker, &t, me))
                return 1;
            continue;
        }
        if (st == BS_SPOOL_DONE)
            return 1;
        atomic_store(&h->taker, me);
        if (atomic_compare_exchange_strong(&h->state, &st, BS_SPOOL_TAKEN))
            return 1;
    }
}

ssize_t bs_spool_finish(int dirfd, const char *name, char *msg, size_t msglen)
{
    char why[256];
    int fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        say(msg, msglen, "spool %s: %s", name, strerror(e));
        return -e;
    }
    struct bs_spool_head *h = NULL;
    int ck = check_spool(fd, &h, why, sizeof why);
    if (ck > 0) {
        unlinkat(dirfd, name, 0);
        say(msg, msglen, "spool %s: its process died while making it; nothing was held", name);
        close(fd);
        return 0;
    }
    if (ck < 0) {
        say(msg, msglen, "spool %s refused: %s; left as %s.refused", name, why, name);
        set_aside(dirfd, name);
        close(fd);
        return -EPERM;
    }
    if (!take(h)) {
        say(msg, msglen, "spool %s: another reader (pid %u) is finishing it", name,
            (unsigned)atomic_load(&h->taker));
        munmap(h, BS_SPOOL_HEAD_BYTES);
        close(fd);
        return -EBUSY;
    }
    if (atomic_load(&h->state) == BS_SPOOL_DONE) {
        unlinkat(dirfd, name, 0);
        say(msg, msglen, "%s: nothing was left unwritten (pid %u)", h->path, (unsigned)h->pid);
        munmap(h, BS_SPOOL_HEAD_BYTES);
        close(fd);
        return 0;
    }

    ssize_t result = 0;
    char *out = NULL;
    uint64_t out_map = 0, torn = 0, written = 0;
    int unsure = 0;
    const char *how = "";
    int tfd = reach(h, &how);
    if (tfd < 0) {
        say(msg, msglen,
            "%s: cannot be reached (device %llu, inode %llu: gone, or replaced); what pid %u "
            "held stays in %s.refused",
            h->path, (unsigned long long)h->dev, (unsigned long long)h->ino, (unsigned)h->pid, name);
        atomic_store(&h->state, BS_SPOOL_LIVE);
        atomic_store(&h->taker, 0);
        set_aside(dirfd, name);
        munmap(h, BS_SPOOL_HEAD_BYTES);
        close(fd);
        return -ENOENT;
    }

    /* out as the owner left it. */
    uint64_t c = atomic_load(&h->out_commit);
    uint64_t out_len = c & BS_SPOOL_OUT_LEN_MASK;
    uint64_t cap = atomic_load(&h->out_cap);
    if (cap < out_len)
        cap = out_len;
    if (cap > 0) {
        out_map = PAGE_UP(cap);
        out = map_region(fd, atomic_load(&h->out_region), out_map, PROT_READ | PROT_WRITE);
        if (!out) {
            result = -errno;
            goto failed;
        }
    }
    /* 1. A write in flight: what of it is in the file counts as written. */
    uint64_t ow = atomic_load(&h->out_written);
    uint64_t done = ow & ~BS_SPOOL_WRITING;
    if (done > out_len)
        done = out_len;
    if (ow & BS_SPOOL_WRITING) {
        uint64_t wl = atomic_load(&h->write_len);
        if (wl > out_len - done)
            wl = out_len - done;
        done += landed(tfd, atomic_load(&h->write_base), out + done, wl, &unsure);
        atomic_store(&h->out_written, done);
    }
    /* 2. The chunks' whole records behind out's bytes. */
    unsigned lost_chunks = 0;
    int r = move_records(fd, h, &out, &out_map, &torn, &lost_chunks);
    if (r < 0) {
        result = r;
        goto failed;
    }
    out_len = atomic_load(&h->out_commit) & BS_SPOOL_OUT_LEN_MASK;
    /* 3. Write out, each write(2) bracketed as the owner's were. */
    while (done < out_len) {
        struct stat st;
        uint64_t base = fstat(tfd, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
        size_t n = out_len - done > (1u << 30) ? (1u << 30) : (size_t)(out_len - done);
        atomic_store(&h->write_base, base);
        atomic_store(&h->write_len, n);
        atomic_store(&h->out_written, done | BS_SPOOL_WRITING);
        ssize_t w = write(tfd, out + done, n);
        if (w < 0 && errno == EINTR)
            w = 0;
        if (w < 0) {
            result = -errno;
            atomic_store(&h->out_written, done);
            goto failed;
        }
        done += (uint64_t)w;
        written += (uint64_t)w;
        atomic_store(&h->out_written, done);
    }
    close(tfd);
    atomic_store(&h->state, BS_SPOOL_DONE);
    unlinkat(dirfd, name, 0);
    say(msg, msglen, "%s: wrote %llu bytes that pid %u held when it died (reached %s)%s%s%s",
        h->path, (unsigned long long)written, (unsigned)h->pid, how,
        torn ? "; a call being copied at the death was left out" : "",
        lost_chunks ? "; a chunk being compacted in place (out of memory) at the death was lost"
                    : "",
        unsure ? "; the file did not show how much of the write in flight had landed: it was "
                 "written again"
               : "");
    if (out)
        munmap(out, out_map);
    munmap(h, BS_SPOOL_HEAD_BYTES);
    close(fd);
    return (ssize_t)written;

failed:
    say(msg, msglen, "%s: writing what pid %u held failed after %llu bytes: %s; the spool %s stays",
        h->path, (unsigned)h->pid, (unsigned long long)written, strerror((int)-result), name);
    close(tfd);
    atomic_store(&h->state, BS_SPOOL_LIVE);
    atomic_store(&h->taker, 0);
    if (out)
        munmap(out, out_map);
    munmap(h, BS_SPOOL_HEAD_BYTES);
    close(fd);
    return result;
}
