/* spool.c - the owner's side of spools: the folder, creating a spool, its regions as the
 * memory of a writer's chunks and output, and the state a reader needs (spool_i.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_i.h"
#include "errno_i.h"
#include "spool_i.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

/*
 * The engine runs inside the LD_PRELOAD shim, whose wrappers are libc's open, mmap,
 * rename...: every system call here goes through bs_syscall, never libc's entry points.
 * sys() returns the result or -errno and keeps errno.
 */
static long sys(long nr, long a, long b, long c, long d, long e, long f)
{
    BS_KEEP_ERRNO();
    long r = bs_syscall(nr, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
}

#define SYS3(nr, a, b, c) sys(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(nr, a, b, c, d) sys(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t off)
{
    long r = sys(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
    return (r < 0 && r > -4096) ? NULL : (void *)r;
}

/*
 * Under ThreadSanitizer an unmap must go through its interceptor: TSan forgets what it knew
 * of the range only then, and a later mapping at the same address (a forked child's new
 * spool where its parent's was) would otherwise inherit the history of the old one's
 * accesses (false races). The shim wraps no munmap, so the interceptor's own call of the
 * real one goes to libc.
 */
#if defined(__SANITIZE_THREAD__)
#define BS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BS_TSAN 1
#endif
#endif
#ifdef BS_TSAN
int __interceptor_munmap(void *p, size_t len);
#endif

static int sys_munmap(void *p, size_t len)
{
#ifdef BS_TSAN
    BS_KEEP_ERRNO();
    return __interceptor_munmap(p, len) == 0 ? 0 : -errno;
#else
    return (int)SYS3(SYS_munmap, p, len, 0);
#endif
}

/* ---- Configuration and the folder ---- */

static int cfg_enabled = 1;
static int cfg_dir_given; /* BUFSHIM_SPOOL_DIR: already in dir_path */
static void (*first_hook)(void);
static void (*check_hook)(void);

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static char dir_path[PATH_MAX];
static int dir_state; /* 0 unresolved, 1 usable, -1 refused */
static uid_t dir_uid; /* getuid() when the folder was resolved (the spools' uid) */

void bs_spool_configure(const char *dir, int enabled)
{
    /* Every process runs this and most never make a spool: a folder given is kept where
       bs_spool_dir resolves it, so that start-up writes no page of its own for it. */
    cfg_dir_given = 0;
    if (dir && *dir && strlen(dir) < sizeof dir_path) {
        strcpy(dir_path, dir);
        cfg_dir_given = 1;
    }
    cfg_enabled = enabled;
}

int bs_spool_enabled(void)
{
    return cfg_enabled;
}

void bs_spool_set_first_hook(void (*hook)(void))
{
    first_hook = hook;
}

void bs_spool_set_check_hook(void (*hook)(void))
{
    check_hook = hook;
}

/* 1 when path is a folder owned by uid with no access for others. A folder that is missing
 * is made first (mkdir only then: the usual case is one stat). */
static int private_dir(const char *path, uid_t uid, char *why, size_t n)
{
    struct stat st;
    long r = SYS4(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW);
    if (r == -ENOENT) {
        SYS3(SYS_mkdirat, AT_FDCWD, path, 0700);
        r = SYS4(SYS_newfstatat, AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW);
    }
    if (r < 0) {
        snprintf(why, n, "%s: %s", path, strerror((int)-r));
        return 0;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077)) {
        snprintf(why, n, "%s: not a folder of uid %u's alone (owner %u, mode %03o)", path,
                 (unsigned)uid, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return 0;
    }
    return 1;
}

const char *bs_spool_dir(void)
{
    pthread_mutex_lock(&dir_lock);
    if (dir_state == 0) {
        uid_t uid = (uid_t)SYS3(SYS_getuid, 0, 0, 0);
        dir_uid = uid;
        /* Under dir_lock; off the stack (spool_new says why). Written only when the folder
           is refused (private_dir says why then). */
        static char why[PATH_MAX + 128];
        if (!cfg_dir_given) {
            const char *x = getenv("XDG_RUNTIME_DIR");
            struct stat st;
            int xdg = 0;
            if (x && *x == '/' && strlen(x) < PATH_MAX - 16) {
                /* Its bufshim folder, private and ours, is the answer in one stat; else
                   $XDG_RUNTIME_DIR must be a folder of the user's to hold a new one. */
                snprintf(dir_path, sizeof dir_path, "%s/bufshim", x);
                xdg = (SYS4(SYS_newfstatat, AT_FDCWD, dir_path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                       S_ISDIR(st.st_mode) && st.st_uid == uid && !(st.st_mode & 077)) ||
                      (SYS4(SYS_newfstatat, AT_FDCWD, x, &st, 0) == 0 && S_ISDIR(st.st_mode) &&
                       st.st_uid == uid);
            }
            if (!xdg)
                snprintf(dir_path, sizeof dir_path, "/dev/shm/bufshim-%u", (unsigned)uid);
        }
        dir_state = private_dir(dir_path, uid, why, sizeof why) ? 1 : -1;
        if (dir_state < 0)
            bs_log("crash safety off: spool folder refused: %s", why);
    }
    const char *d = dir_state > 0 ? dir_path : NULL;
    pthread_mutex_unlock(&dir_lock);
    return d;
}

/* ---- The process: pid, start time, a counter of spools ---- */

uint64_t bs_proc_starttime(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = (int)SYS4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    long n = SYS3(SYS_read, fd, buf, sizeof buf - 1);
    SYS3(SYS_close, fd, 0, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    if (p[2] == 'Z' || p[2] == 'X')
        return 0; /* dead, not yet reaped: gone for a reader of its spools */
    /* Field 22; p is at the end of field 2, so 20 spaces on. */
    for (int field = 2; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static pid_t proc_pid;
static unsigned proc_spools;
static int proc_hooked;

/* CLOCK_BOOTTIME in ns (the vDSO's: no system call), the clock of /proc/<pid>/stat's start
 * time: a spool's creation time, by which a reader tells its owner from a later process with
 * the same pid (spool_i.h). */
static uint64_t boot_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- A spool ---- */

struct bs_spool {
    struct bs_mem chunks; /* first: bs_mem * -> bs_spool * */
    struct bs_mem out;
    struct bs_spool_head *head; /* the mapping of [0, BS_SPOOL_INLINE_END) */
    int create_fd; /* the file's descriptor while bs_spool_create runs, else -1 */
    uint64_t region_used[(BS_SPOOL_REGIONS + 63) / 64];
    int retired;
    int final; /* the final flush: the file is removed next, memory need not be punched */
    int pooled; /* 1 + its index in pool[], or 0 when mmap'd */
    _Atomic int handle_done; /* the handle was stored, or will never be */
    char path[PATH_MAX];
};

/*
 * A spool may be made inside a signal handler (a crash handler's first write to a file:
 * Python's faulthandler), perhaps on a small alternate stack and while the interrupted
 * thread holds malloc's lock: its memory comes from a static pool (most processes have a
 * spool or two: no system call), else from mmap, and the functions on the way keep their
 * buffers off the stack.
 */
#define POOL 4
static struct bs_spool pool[POOL];
static _Atomic unsigned pool_used;

static struct bs_spool *spool_new(void)
{
    unsigned u = atomic_load(&pool_used);
    for (int i = 0; i < POOL; i++)
        while (!(u & (1u << i)))
            if (atomic_compare_exchange_weak(&pool_used, &u, u | (1u << i))) {
                /* Not the path's 4 KiB: a second page touched at start for nothing. */
                memset(&pool[i], 0, offsetof(struct bs_spool, path));
                pool[i].path[0] = 0;
                pool[i].pooled = i + 1;
                return &pool[i];
            }
    void *p = sys_mmap(NULL, sizeof(struct bs_spool), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p;
}

static void spool_delete(struct bs_spool *sp)
{
    if (sp->pooled)
        atomic_fetch_and(&pool_used, ~(1u << (sp->pooled - 1)));
    else
        sys_munmap(sp, sizeof *sp);
}

#define OUT_REGION BS_SPOOL_OUT_REGION
#define FIRST_REGION BS_SPOOL_FIRST_REGION
#define INLINE BS_SPOOL_INLINE_BYTES

/* The inline first chunk and out's inline first bytes, in the head's mapping. */
static char *inline_chunk(struct bs_spool *sp)
{
    return (char *)sp->head + BS_SPOOL_HEAD_BYTES;
}

static char *inline_out(struct bs_spool *sp)
{
    return (char *)sp->head + BS_SPOOL_HEAD_BYTES + INLINE;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t bs_spool_head_check(const struct bs_spool_head *h)
{
    uint64_t x = 0x62756673686d21ull;
    const unsigned char *p = (const unsigned char *)h;
    size_t fixed = offsetof(struct bs_spool_head, check);
    for (size_t i = sizeof h->magic; i < fixed; i++) /* the magic is stored last, apart */
        x = mix(x ^ p[i]);
    for (size_t i = 0; i < sizeof h->path && h->path[i]; i++)
        x = mix(x ^ (unsigned char)h->path[i]);
    return x;
}

/* A descriptor to the spool's file (by path: none is kept), and its release. */
static int open_spool(struct bs_spool *sp)
{
    if (sp->create_fd >= 0)
        return sp->create_fd;
    return (int)SYS4(SYS_openat, AT_FDCWD, sp->path, O_RDWR | O_CLOEXEC, 0);
}

static void close_spool(struct bs_spool *sp, int fd)
{
    if (fd != sp->create_fd)
        SYS3(SYS_close, fd, 0, 0);
}

/* Reserves and maps cap bytes of region r: the mapping, or NULL. */
static void *map_region(int fd, uint32_t r, size_t cap)
{
    uint64_t off = bs_spool_region_off(r);
    if (SYS4(SYS_fallocate, fd, 0, off, cap) < 0)
        return NULL;
    void *p = sys_mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
    if (!p)
        SYS4(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, cap);
    return p;
}

/* Gives [from, from + len) of region r back to the file system, which reads it as zeros
 * from then on. 1 when it did. */
static int punch(struct bs_spool *sp, uint32_t r, uint64_t from, uint64_t len)
{
    int fd = open_spool(sp);
    if (fd < 0)
        return 0;
    long e = SYS4(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  bs_spool_region_off(r) + from, len);
    close_spool(sp, fd);
    return e == 0;
}

/*
 * A chunk's region is given out only while it reads as zeros where nothing was appended
 * (stage.c's chunk_alloc says why): a fresh region is a hole, a released one is punched
 * back into one, and the inline chunk, which stays mapped, is cleared. A region that could
 * not be punched (or need not be: the spool is retired or at its final flush) stays marked
 * used and is never given out again.
 */
static void region_release(struct bs_spool *sp, void *p, size_t cap, uint32_t region)
{
    int zero = 1;
    if (region == FIRST_REGION) { /* the inline chunk stays mapped and reserved */
        memset(p, 0, INLINE);
    } else {
        sys_munmap(p, cap);
        zero = !sp->retired && !sp->final && punch(sp, region, 0, cap);
    }
    if (zero)
        sp->region_used[region / 64] &= ~(1ull << (region % 64));
}

static void *chunk_alloc(struct bs_mem *m, size_t cap, uint32_t *region)
{
    struct bs_spool *sp = (struct bs_spool *)(void *)m;
    if (cap == INLINE && !(sp->region_used[0] >> FIRST_REGION & 1)) {
        /* The inline chunk: reserved and mapped with the head, for the spool's life. */
        sp->region_used[0] |= 1ull << FIRST_REGION;
        *region = FIRST_REGION;
        return inline_chunk(sp);
    }
    uint32_t r = 0;
    for (uint32_t i = OUT_REGION + 1; i < BS_SPOOL_REGIONS; i++)
        if (!(sp->region_used[i / 64] >> (i % 64) & 1)) {
            r = i;
            break;
        }
    if (!r)
        return NULL;
    int fd = open_spool(sp);
    if (fd < 0)
        return NULL;
    void *p = map_region(fd, r, cap);
    close_spool(sp, fd);
    if (!p)
        return NULL;
    sp->region_used[r / 64] |= 1ull << (r % 64);
    *region = r;
    return p;
}

static void chunk_release(struct bs_mem *m, void *p, size_t cap, uint32_t region)
{
    region_release((struct bs_spool *)(void *)m, p, cap, region);
}

static void *chunk_resize(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region)
{
    (void)m, (void)p, (void)old_cap, (void)cap, (void)region;
    return NULL; /* chunks never change size */
}

static struct bs_spool *of_out(struct bs_mem *m)
{
    return (struct bs_spool *)(void *)((char *)m - offsetof(struct bs_spool, out));
}

static void *out_alloc(struct bs_mem *m, size_t cap, uint32_t *region)
{
    struct bs_spool *sp = of_out(m);
    if (cap <= INLINE) { /* out's first bytes, reserved and mapped with the head */
        *region = OUT_REGION;
        atomic_store(&sp->head->out_cap, INLINE);
        atomic_store(&sp->head->out_region, OUT_REGION);
        return inline_out(sp);
    }
    int fd = open_spool(sp);
    if (fd < 0)
        return NULL;
    void *p = map_region(fd, OUT_REGION, cap);
    close_spool(sp, fd);
    if (p) {
        *region = OUT_REGION;
        atomic_store(&sp->head->out_cap, cap);
        atomic_store(&sp->head->out_region, OUT_REGION);
    }
    return p;
}

/* out's new size: the region mapped anew (its bytes are the file's), then the old mapping
 * dropped (not the inline part, which stays mapped); a smaller out gives the rest of the
 * region back. out in the inline chunk that it adopted cannot grow (out's own region follows
 * it in the file). */
static void *out_resize(struct bs_mem *m, void *p, size_t old_cap, size_t cap, uint32_t region)
{
    struct bs_spool *sp = of_out(m);
    if (region == FIRST_REGION)
        return NULL;
    uint64_t off = bs_spool_region_off(region);
    int fd = open_spool(sp);
    if (fd < 0)
        return NULL;
    long r = cap > old_cap ? SYS4(SYS_fallocate, fd, 0, off + old_cap, cap - old_cap) : 0;
    void *q = r < 0 ? NULL : sys_mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
    close_spool(sp, fd);
    if (!q)
        return NULL;
    if (p != inline_out(sp))
        sys_munmap(p, old_cap);
    if (cap < old_cap)
        punch(sp, region, cap, old_cap - cap);
    atomic_store(&sp->head->out_cap, cap);
    return q;
}

static void out_release(struct bs_mem *m, void *p, size_t cap, uint32_t region)
{
    struct bs_spool *sp = of_out(m);
    if (region == OUT_REGION) {
        /* Its inline first bytes stay mapped and reserved. */
        if (p != inline_out(sp))
            sys_munmap(p, cap);
        if (!sp->retired && !sp->final && cap > INLINE)
            punch(sp, region, INLINE, cap - INLINE);
    }
    atomic_store(&sp->head->out_cap, 0);
    if (region == OUT_REGION)
        return;
    region_release(sp, p, cap, region); /* a chunk's region that out adopted */
}

/* The records' salt: unpredictable enough that a program's bytes do not pose as headers by
 * chance, without a system call: the kernel's 16 random bytes of this exec (AT_RANDOM),
 * mixed with the pid, the clock and a counter (a forked child has its parent's bytes). */
static uint64_t random_salt(pid_t pid)
{
    static _Atomic uint64_t count;
    uint64_t x = 0, y = 0;
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    if (r) {
        memcpy(&x, r, sizeof x);
        memcpy(&y, r + 8, sizeof y);
    }
    x = mix(x ^ mix(y ^ bs_now_ns()) ^ ((uint64_t)(uint32_t)pid << 32) ^
            atomic_fetch_add(&count, 1) ^ (uint64_t)(uintptr_t)&x);
    return x ? x : 1;
}

/* The handle of the spool's file (spool_i.h says when it is stored). */
static void store_handle(struct bs_spool_head *h)
{
    struct {
        unsigned int bytes;
        int type;
        unsigned char f[BS_SPOOL_HANDLE_MAX];
    } fh = {BS_SPOOL_HANDLE_MAX, 0, {0}};
    int mount_id;
    long r = h->path[0] ? sys(SYS_name_to_handle_at, AT_FDCWD, (long)h->path, (long)&fh,
                              (long)&mount_id, 0, 0)
                        : -ENOENT;
    if (r == 0 && fh.bytes <= BS_SPOOL_HANDLE_MAX) {
        h->handle_type = (uint32_t)fh.type;
        h->handle_bytes = fh.bytes;
        memcpy(h->handle, fh.f, fh.bytes);
        atomic_store_explicit(&h->handle_ready, 1, memory_order_release);
    }
}

struct bs_spool *bs_spool_create(const struct bs_spool_id *id, size_t cap)
{
    if (!cfg_enabled) {
        errno = EPERM;
        return NULL;
    }
    const char *dir = bs_spool_dir();
    if (!dir) {
        errno = EACCES;
        return NULL;
    }
    struct bs_spool *sp = spool_new();
    if (!sp) {
        errno = ENOMEM;
        return NULL;
    }
    sp->chunks = (struct bs_mem){chunk_alloc, chunk_resize, chunk_release};
    sp->create_fd = -1;
    sp->out = (struct bs_mem){out_alloc, out_resize, out_release};

    pid_t pid = (pid_t)SYS3(SYS_getpid, 0, 0, 0);
    if (pid != proc_pid) { /* first spool of this process (or of a forked child) */
        proc_pid = pid;
        proc_spools = 0;
        proc_hooked = 0;
    }
    unsigned n = ++proc_spools;
    uint64_t created = boot_ns();
    /* Made under its final name: a reader finishes only a dead owner's spool, and one whose
       magic is not there yet (stored last) held nothing (spool_read.c removes it). An exec'd
       image of the same process counts from 1 again: never replace. */
    int err = 0, fd;
    for (int tries = 0;; tries++) {
        snprintf(sp->path, sizeof sp->path, "%s/%d-b%llu-%u.spool", dir, (int)pid,
                 (unsigned long long)created, n);
        fd = (int)SYS4(SYS_openat, AT_FDCWD, sp->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                       0600);
        if (fd != -EEXIST || tries == 1000)
            break;
        n = ++proc_spools;
    }
    if (fd < 0) {
        err = -fd;
        goto fail;
    }
    /* The head, the first chunk and out's first bytes: one fallocate, one mmap. A short
       process touches all four pages (the head's two, the first chunk's, out's at exit):
       MAP_POPULATE maps them in that one call instead of four page faults, which cost
       about 5 us each on the project's VM (doc: bench/results/crashsafe-ab.md). */
    long r = SYS4(SYS_fallocate, fd, 0, 0, BS_SPOOL_INLINE_END);
    struct bs_spool_head *h =
        r < 0 ? NULL
              : sys_mmap(NULL, BS_SPOOL_INLINE_END, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_POPULATE, fd, 0);
    if (!h) {
        err = r < 0 ? (int)-r : ENOMEM;
        goto fail_file;
    }
    sp->head = h;
    h->version = BS_SPOOL_VERSION;
    h->head_size = (uint32_t)sizeof *h;
    h->uid = (uint32_t)dir_uid;
    h->pid = (uint32_t)pid;
    h->created = created;
    h->salt = random_salt(pid);
    h->dev = id->dev;
    h->ino = id->ino;
    if (id->path && strlen(id->path) < sizeof h->path)
        strcpy(h->path, id->path);
    h->check = bs_spool_head_check(h);
    /* A reader that can use a handle (CAP_DAC_READ_SEARCH) is, as a rule, uid 0's: a process
       of uid 0 stores it now, others after their first batch, off the program's time. */
    if (dir_uid == 0)
        store_handle(h);
    sp->handle_done = dir_uid == 0 || !h->path[0];
    atomic_store(&h->out_region, OUT_REGION);
    atomic_store(&h->state, BS_SPOOL_LIVE);

    /* The stage's first chunk, through the descriptor at hand. */
    sp->create_fd = fd;
    r = bs_stage_init(&h->stage, cap, &sp->chunks, h->salt);
    sp->create_fd = -1;
    if (r < 0) {
        err = ENOSPC;
        goto fail_map;
    }
    /* The magic last, with release order: a spool without it was being made when its
       owner died, before any append (a reader removes it). */
    uint64_t magic;
    memcpy(&magic, BS_SPOOL_MAGIC, sizeof magic);
    atomic_store_explicit((_Atomic uint64_t *)(void *)h->magic, magic, memory_order_release);
    SYS3(SYS_close, fd, 0, 0);
    if (!proc_hooked) {
        proc_hooked = 1;
        if (first_hook)
            first_hook();
    }
    return sp;

fail_map:
    sys_munmap(h, BS_SPOOL_INLINE_END);
fail_file:
    SYS3(SYS_unlinkat, AT_FDCWD, sp->path, 0);
    SYS3(SYS_close, fd, 0, 0);
fail:
    spool_delete(sp);
    errno = err ? err : EIO;
    return NULL;
}

struct bs_stage *bs_spool_stage(struct bs_spool *sp)
{
    return &sp->head->stage;
}

struct bs_mem *bs_spool_chunk_mem(struct bs_spool *sp)
{
    return &sp->chunks;
}

struct bs_mem *bs_spool_out_mem(struct bs_spool *sp)
{
    return &sp->out;
}

void bs_spool_commit(struct bs_spool *sp, uint64_t out_len, unsigned tail)
{
    atomic_store_explicit(&sp->head->out_commit,
                          (out_len & BS_SPOOL_OUT_LEN_MASK) | (uint64_t)tail << 56,
                          memory_order_release);
}

void bs_spool_in_place(struct bs_spool *sp, int slot)
{
    atomic_store_explicit(&sp->head->in_place, slot < 0 ? 0u : (uint32_t)slot + 1,
                          memory_order_release);
}

void bs_spool_adopted(struct bs_spool *sp, uint32_t region, uint64_t cap)
{
    atomic_store(&sp->head->out_cap, cap);
    atomic_store_explicit(&sp->head->out_region, region, memory_order_release);
}

void bs_spool_write_begin(struct bs_spool *sp, uint64_t out_done, uint64_t base, uint64_t len)
{
    struct bs_spool_head *h = sp->head;
    atomic_store_explicit(&h->write_base, base, memory_order_relaxed);
    atomic_store_explicit(&h->write_len, len, memory_order_relaxed);
    atomic_store_explicit(&h->out_written, out_done | BS_SPOOL_WRITING, memory_order_release);
}

void bs_spool_write_end(struct bs_spool *sp, uint64_t out_done)
{
    atomic_store_explicit(&sp->head->out_written, out_done, memory_order_release);
}

void bs_spool_out_rewound(struct bs_spool *sp, unsigned tail)
{
    /* Length first: in between, written >= length, and nothing counts as held. */
    bs_spool_commit(sp, 0, tail);
    bs_spool_write_end(sp, 0);
}

void bs_spool_final(struct bs_spool *sp)
{
    sp->final = 1;
}

void bs_spool_retire(struct bs_spool *sp)
{
    if (sp->retired)
        return;
    sp->retired = 1;
    atomic_store(&sp->head->state, BS_SPOOL_DONE);
    SYS3(SYS_unlinkat, AT_FDCWD, sp->path, 0);
}

void bs_spool_detach(struct bs_spool *sp, void *out_data, size_t out_cap)
{
    BS_KEEP_ERRNO();
    struct bs_stage *s = &sp->head->stage;
    /* The inline chunk and out's inline bytes go with the head's mapping. */
    for (unsigned i = 0; i < BS_STAGE_SLOTS; i++)
        if (s->slots[i].data && s->slots[i].region != FIRST_REGION)
            sys_munmap(s->slots[i].data, s->slots[i].cap);
    if (s->spare.data && s->spare.region != FIRST_REGION)
        sys_munmap(s->spare.data, s->spare.cap);
    if (out_data && out_data != inline_out(sp) && out_data != inline_chunk(sp))
        sys_munmap(out_data, out_cap);
    sys_munmap(sp->head, BS_SPOOL_INLINE_END);
    spool_delete(sp);
}

void bs_spool_after_batch(struct bs_spool *sp)
{
    if (!atomic_load_explicit(&sp->handle_done, memory_order_relaxed) &&
        !atomic_exchange(&sp->handle_done, 1))
        store_handle(sp->head);
    if (!check_hook)
        return;
    static _Atomic uint64_t last_ns;
    uint64_t now = bs_now_ns(), prev = atomic_load(&last_ns);
    if (now - prev >= 1000000000u && atomic_compare_exchange_strong(&last_ns, &prev, now))
        check_hook();
}

void bs_spool_free(struct bs_spool *sp)
{
    sys_munmap(sp->head, BS_SPOOL_INLINE_END);
    spool_delete(sp);
}
