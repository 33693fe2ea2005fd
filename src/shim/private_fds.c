/* private_fds.c - a descriptor table of the writer threads' own, where the shim keeps its
 * descriptors. */
#include "real_i.h"

#include <errno.h>
#include <linux/close_range.h>
#include <sched.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "errno_i.h"
#include "config_i.h"
#include "engine_i.h"
#include "private_fds_i.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

static atomic_uint table_gen;
static atomic_int table_private;
static int self_pidfd = -1; /* in the private table: this process, for pidfd_getfd */

/*
 * The writer threads alive now, by thread id, so that a program thread can reach
 * their table (bs_private_thread_pidfd). A thread enters at its start hook and
 * leaves in its thread-specific destructor, which runs before the thread is gone,
 * hence before its id can be reused. Each entry pairs the id with a sequence
 * number that changes whenever the entry does.
 */
#define MAX_TIDS 8
static struct {
    atomic_int tid;
    atomic_uint seq;
} tids[MAX_TIDS];
static pthread_key_t tid_key;
static int tid_key_ok;

static void tid_leave(void *slot)
{
    unsigned i = (unsigned)(uintptr_t)slot - 1;
    if (i < MAX_TIDS) {
        atomic_fetch_add(&tids[i].seq, 1);
        atomic_store(&tids[i].tid, 0);
    }
}

static void tid_enter(void)
{
    if (!tid_key_ok)
        return;
    int me = (int)bs_syscall(SYS_gettid);
    for (unsigned i = 0; i < MAX_TIDS; i++) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&tids[i].tid, &zero, me)) {
            atomic_fetch_add(&tids[i].seq, 1);
            pthread_setspecific(tid_key, (void *)(uintptr_t)(i + 1));
            return;
        }
    }
}

unsigned bs_private_gen(void)
{
    return atomic_load(&table_gen);
}

int bs_private_ok(void)
{
    return atomic_load(&table_private);
}

/*
 * Makes the calling thread's descriptor table its own, empty. close_range with
 * CLOSE_RANGE_UNSHARE (Linux 5.9) does it without copying the program's table;
 * unshare(CLONE_FILES) and closing the copies does it anywhere else. The copies
 * must go: a writer thread holding the program's pipes would keep their readers
 * from ever seeing end-of-file.
 */
static int unshare_table(void)
{
    if (bs_syscall(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE) == 0)
        return 0;
    if (bs_syscall(SYS_unshare, CLONE_FILES) != 0)
        return -errno;
    if (bs_syscall(SYS_close_range, 0, ~0U, 0) != 0)
        for (int fd = 0; fd < 65536; fd++)
            bs_syscall(SYS_close, fd);
    return 0;
}

/*
 * The writer-thread start hook. A thread that a writer thread started shares its
 * table already. In a fresh table, 0-2 are /dev/null, so that nothing of the
 * shim's ever has a standard number (a stray write to fd 2 from a writer thread
 * goes nowhere instead of into a held file).
 */
static void thread_start(int inherited)
{
    int saved = errno;
    tid_enter();
    if (inherited) {
        errno = saved;
        return;
    }
    int ok = unshare_table() == 0;
    if (ok) {
        /* Without /dev/null (a bare chroot), the root folder: writes to it fail. */
        for (int i = 0; i < 3; i++)
            if (bs_sys_open("/dev/null", O_RDWR | O_CLOEXEC, 0) < 0 &&
                bs_sys_open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0) < 0)
                ok = 0;
        long p = bs_syscall(SYS_pidfd_open, (long)getpid(), 0L);
        self_pidfd = p >= 0 ? (int)p : -1;
    }
    atomic_store(&table_private, ok);
    atomic_fetch_add(&table_gen, 1);
    if (!ok && bs_cfg.debug)
        bs_log("no private descriptor table for the writer threads: batches open their files "
               "in the program's table for a moment");
    errno = saved;
}

/* A new description of the program's pfd, through /proc: -errno when the file refuses it. */
static int reopen_program_fd(int pfd, pid_t tid)
{
    char proc[96];
    if (tid > 0)
        snprintf(proc, sizeof proc, "/proc/%d/task/%d/fd/%d", (int)getpid(), (int)tid, pfd);
    else
        snprintf(proc, sizeof proc, "/proc/%d/fd/%d", (int)getpid(), pfd);
    return bs_sys_open(proc, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY, 0);
}

/* The program's very description of pfd (close-on-exec already), or -errno. */
static int borrow_program_fd(int pfd)
{
    if (self_pidfd < 0 || !atomic_load(&table_private))
        return -ENOSYS;
    long g = bs_syscall(SYS_pidfd_getfd, self_pidfd, pfd, 0);
    return g >= 0 ? (int)g : -errno;
}

int bs_private_from_program(int pfd, pid_t tid, int reopen, int *shared)
{
    BS_KEEP_ERRNO();
    int r;
    *shared = 0;
    if (reopen) {
        /* A file the program may write but not reopen (created read-only, as tar
           does before it sets the mode) is reached through its own description. */
        r = reopen_program_fd(pfd, tid);
        if (r < 0 && (r = borrow_program_fd(pfd)) >= 0)
            *shared = 1;
    } else {
        r = borrow_program_fd(pfd);
        if (r >= 0)
            *shared = 1;
        else
            r = reopen_program_fd(pfd, tid);
    }
    return r;
}

/*
 * bs_log's output on a writer thread: the program's fd 2 as it is now (it may
 * have been redirected since the thread started), borrowed for one line.
 */
static void log_out(const char *line, size_t len)
{
    if (!bs_engine_thread_here() || !atomic_load(&table_private)) {
        bs_sys_write_all(2, line, len);
        return;
    }
    int shared;
    int fd = bs_private_from_program(2, 0, 0, &shared);
    if (fd >= 0) {
        bs_sys_write_all(fd, line, len);
        bs_sys_close(fd);
    }
}

int bs_private_thread_pidfd(void)
{
    BS_KEEP_ERRNO();
    if (!atomic_load(&table_private))
        return -ENOSYS;
    for (unsigned i = 0; i < MAX_TIDS; i++) {
        unsigned seq = atomic_load(&tids[i].seq);
        int tid = atomic_load(&tids[i].tid);
        if (tid <= 0)
            continue;
        long p = bs_syscall(SYS_pidfd_open, (long)tid, (long)PIDFD_THREAD);
        if (p < 0) {
            if (errno == EINVAL)
                return -EINVAL; /* no PIDFD_THREAD (Linux before 6.9) */
            continue;
        }
        /* Still the same entry: the thread had not left when the pidfd was made, so the
           id was not yet anybody else's. */
        if (atomic_load(&tids[i].seq) == seq && atomic_load(&tids[i].tid) == tid)
            return (int)p;
        bs_syscall(SYS_close, p);
    }
    return -ESRCH;
}

int bs_private_getfd(int pidfd, int privfd)
{
    BS_KEEP_ERRNO();
    long g = bs_syscall(SYS_pidfd_getfd, (long)pidfd, (long)privfd, 0L);
    return g >= 0 ? (int)g : -errno;
}

void bs_private_fork_child(void)
{
    for (unsigned i = 0; i < MAX_TIDS; i++) {
        atomic_fetch_add(&tids[i].seq, 1);
        atomic_store(&tids[i].tid, 0);
    }
}

void bs_private_init(void)
{
    tid_key_ok = pthread_key_create(&tid_key, tid_leave) == 0;
    bs_engine_set_thread_start(thread_start);
    bs_log_set_output(log_out);
}
