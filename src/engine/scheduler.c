/* scheduler.c - the writer threads: who writes which batch when, jobs on writer threads,
 * fork safety of both. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "registry_i.h"
#include "scheduler_i.h"
#include "writer_i.h"

/*
 * Leader/followers. One thread, the leader, sleeps until the earliest due time of
 * any writer. When a writer is due, the leader claims its batch, hands the leader
 * role to an idle thread (or starts one), and writes the batch itself with no lock
 * held. A batch that hangs (a dead network mount) therefore only ever holds its own
 * writer: the others, and writers opened later, keep their schedule on the new
 * leader. Two threads take turns while batches come; an idle follower ends after
 * FOLLOWER_IDLE_EXIT_NS.
 *
 * The leader also serves calls (bs_engine_call): work another thread wants done on a
 * writer thread, in the writer threads' context. A call is claimed and run like a batch,
 * with the leader role handed over first when anything else could need it.
 *
 * The writers are the registry's (registry.c): the scheduler asks it which one is due,
 * then runs that writer's batch (writer_i.h); it reads and sets no writer's fields.
 *
 * Lock order: sched.lock, then the registry's lock, then a writer's lock. Appenders
 * take only their writer's lock, and sched.lock once per batch (when their input goes
 * from empty to non-empty) to wake the leader.
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* the leader sleeps here */
    pthread_cond_t follow; /* idle followers sleep here */
    int nthreads;
    int nidle;
    int has_leader;
    int leader_sleeping;
    struct bs_job *calls, *calls_tail; /* waiting to run, oldest first */
    int released; /* bs_engine_release_threads: end once idle */
} sched = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .follow = PTHREAD_COND_INITIALIZER,
};

static pthread_once_t init_once_done = PTHREAD_ONCE_INIT;
static pthread_condattr_t mono_attr;

#define FOLLOWER_IDLE_EXIT_NS (10ull * 1000000000ull)

static struct timespec abs_mono(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    return ts;
}

static void *thread_main(void *arg);

static void (*thread_start_hook)(int inherited);
static __thread int on_engine_thread; /* 1: a writer thread; 2: one a writer thread started */
static __thread int hook_ran;

/*
 * Runs the start hook on this writer thread before its first work (a job, a
 * batch, starting another thread), not when it starts: a short process's only
 * writer thread, which sleeps until the process ends, never pays for it.
 * Decision: called with sched.lock held, once per thread.
 */
static void thread_ready(void)
{
    if (hook_ran)
        return;
    hook_ran = 1;
    if (thread_start_hook)
        thread_start_hook(on_engine_thread == 2);
}

void bs_engine_set_thread_start(void (*hook)(int inherited))
{
    thread_start_hook = hook;
}

int bs_engine_thread_here(void)
{
    return on_engine_thread != 0; /* 1 as engine_i.h says, also on a thread one started */
}

/*
 * Starts a thread with every signal blocked. Caller holds sched.lock. The new
 * thread learns whether a writer thread started it (and so shares whatever
 * context the start hook gave that one).
 */
static int spawn_thread(void)
{
    /* A writer thread's table (what the hook gives it) is inherited: make it first. */
    if (on_engine_thread)
        thread_ready();
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    sigfillset(&all);
    /* Blocked around the create, not with pthread_attr_setsigmask_np: that allocates, and
       a forked child of a threaded program starts its thread here, where an allocator
       without fork handling (ASan's in gcc 12) can still hold a lock of the parent's. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&t, &attr, thread_main, (void *)(intptr_t)on_engine_thread);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0)
        return -r;
    sched.nthreads++;
    return 0;
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    bs_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Hands the leader role to an idle thread, or starts one. Caller holds sched.lock. */
static void hand_over(void)
{
    if (sched.nidle > 0)
        pthread_cond_signal(&sched.follow);
    else
        spawn_thread(); /* on failure the work still runs; others wait for it */
}

/* Runs the oldest waiting call, the leader role handed over first. Caller holds sched.lock. */
static void run_call(void)
{
    struct bs_job *c = sched.calls;
    sched.calls = c->next;
    if (!sched.calls)
        sched.calls_tail = NULL;
    sched.has_leader = 0;
    /* Decision: a job hands over only when other work exists, unlike a batch: the first
       job of a short process (its held descriptor) must not cost it a second thread. */
    if (bs_registry_count() > 1 || sched.calls)
        hand_over();
    pthread_mutex_unlock(&sched.lock);
    void (*fn)(void *) = c->fn;
    void *arg = c->arg;
    fn(arg);
    /* After this store the job's memory may be gone (its owner stops waiting). */
    atomic_store(&c->done, 1);
    futex_wake_all(&c->done);
    pthread_mutex_lock(&sched.lock);
    if (sched.leader_sleeping)
        pthread_cond_signal(&sched.wake); /* as after a batch: a job may flush a writer */
}

/* Reports (bs_engine_set_report): due at report_next, under sched.lock. */
static int (*report_fn)(void);
static uint64_t report_period, report_next;
static int report_again;

void bs_engine_set_report(int (*fn)(void), uint64_t period_ns)
{
    report_period = period_ns;
    report_fn = fn;
}

static void *thread_main(void *arg)
{
    on_engine_thread = arg ? 2 : 1;
    /* Visible in ps -L, top -H and /proc/PID/task/TID/comm. */
    pthread_setname_np(pthread_self(), "bufshim");
    pthread_mutex_lock(&sched.lock);
    for (;;) {
        if ((bs_registry_count() == 0 || sched.released) && !sched.calls)
            break;
        if (sched.has_leader) {
            /* Follower: wait to become leader; leave when idle for long and not alone. */
            struct timespec until = abs_mono(bs_now_ns() + FOLLOWER_IDLE_EXIT_NS);
            sched.nidle++;
            int r = pthread_cond_timedwait(&sched.follow, &sched.lock, &until);
            sched.nidle--;
            if (r == ETIMEDOUT && sched.has_leader)
                break;
            continue;
        }
        sched.has_leader = 1;
        if (sched.calls) {
            thread_ready();
            run_call();
            continue;
        }
        /* A report due: the leader writes it (a local file, written in a moment) while it
           keeps the role, so appends and batches wait for it no longer than that. */
        if (report_fn && bs_now_ns() >= report_next) {
            report_next = bs_now_ns() + report_period;
            thread_ready();
            pthread_mutex_unlock(&sched.lock);
            int again = report_fn();
            pthread_mutex_lock(&sched.lock);
            report_again = again;
            sched.has_leader = 0;
            continue;
        }
        /* Picks a due writer and claims it, or learns when the next one is due. */
        uint64_t next;
        struct bufshim_writer *w = bs_registry_claim_due(bs_now_ns(), &next);
        if (!w) {
            if (report_fn && report_again && report_next < next)
                next = report_next;
            sched.leader_sleeping = 1;
            if (next == UINT64_MAX) {
                pthread_cond_wait(&sched.wake, &sched.lock);
            } else {
                struct timespec until = abs_mono(next);
                pthread_cond_timedwait(&sched.wake, &sched.lock, &until);
            }
            sched.leader_sleeping = 0;
            sched.has_leader = 0;
            continue;
        }
        /*
         * Hand over the leader role before doing I/O, always: work that arrives while
         * this batch hangs on a dead mount (a writer opened later, a job, a barrier on
         * another target) must find a thread to take it. Decision: so a process with
         * one target keeps two writer threads while its batches come less than 10 s
         * apart (a follower idle that long ends).
         */
        sched.has_leader = 0;
        thread_ready();
        hand_over();
        pthread_mutex_unlock(&sched.lock);
        bs_writer_run_batch(w);
        pthread_mutex_lock(&sched.lock);
        /* The leader that slept while w was in flight left it out of its due times. */
        if (sched.leader_sleeping)
            pthread_cond_signal(&sched.wake);
    }
    sched.nthreads--;
    pthread_mutex_unlock(&sched.lock);
    return NULL;
}

/* The registry and every writer are held still across fork, inside sched.lock. */
static void sched_fork_prepare(void)
{
    pthread_mutex_lock(&sched.lock);
    bs_registry_fork_prepare();
}

static void sched_fork_parent(void)
{
    bs_registry_fork_parent();
    pthread_mutex_unlock(&sched.lock);
}

/*
 * In the child only the forking thread exists. Every byte buffered before the
 * fork belongs to the parent, which writes it: the child drops its copy (no
 * byte written twice, bs_writer_fork_child) and starts threads of its own when
 * it appends.
 */
static void sched_fork_child(void)
{
    bs_registry_fork_child();
    sched.nthreads = sched.nidle = sched.has_leader = sched.leader_sleeping = 0;
    report_next = 0; /* the child's own report, at its first batch */
    report_again = 0;
    /* Jobs waiting belong to the parent's threads; a job the forking thread submitted
       without waiting for it is done, as far as the child is concerned. */
    for (struct bs_job *j = sched.calls; j; j = j->next)
        atomic_store(&j->done, 1);
    sched.calls = sched.calls_tail = NULL;
    pthread_cond_init(&sched.wake, &mono_attr);
    pthread_cond_init(&sched.follow, &mono_attr);
    pthread_mutex_unlock(&sched.lock);
}

static void init_once(void)
{
    /* Timed waits use CLOCK_MONOTONIC, as do all due times. */
    pthread_condattr_init(&mono_attr);
    pthread_condattr_setclock(&mono_attr, CLOCK_MONOTONIC);
    pthread_cond_destroy(&sched.wake);
    pthread_cond_destroy(&sched.follow);
    pthread_cond_init(&sched.wake, &mono_attr);
    pthread_cond_init(&sched.follow, &mono_attr);
    pthread_atfork(sched_fork_prepare, sched_fork_parent, sched_fork_child);
}

void bs_sched_init(void)
{
    pthread_once(&init_once_done, init_once);
}

void bs_sched_writer_closed(void)
{
    pthread_mutex_lock(&sched.lock);
    /* Let the leader notice an empty registry and exit; followers time out. */
    pthread_cond_broadcast(&sched.wake);
    pthread_cond_broadcast(&sched.follow);
    pthread_mutex_unlock(&sched.lock);
}

/* Wakes a thread to lead (or starts one). Caller holds sched.lock. */
static int wake_leader(void)
{
    if (sched.nthreads == 0)
        return spawn_thread(); /* e.g. the first append in a forked child */
    if (sched.leader_sleeping)
        pthread_cond_signal(&sched.wake);
    else if (!sched.has_leader && sched.nidle > 0)
        pthread_cond_signal(&sched.follow);
    return 0;
}

atomic_int bs_sched_threadless;
static atomic_int appends_start_no_thread;

void bs_engine_appends_start_no_thread(void)
{
    atomic_store(&appends_start_no_thread, 1);
}

void bs_engine_release_threads(void)
{
    pthread_mutex_lock(&sched.lock);
    sched.released = 1;
    pthread_cond_broadcast(&sched.wake);
    pthread_cond_broadcast(&sched.follow);
    pthread_mutex_unlock(&sched.lock);
}

void bs_sched_wake(void)
{
    pthread_mutex_lock(&sched.lock);
    if (sched.nthreads == 0 && atomic_load(&appends_start_no_thread)) {
        atomic_store_explicit(&bs_sched_threadless, 0, memory_order_relaxed);
        pthread_mutex_unlock(&sched.lock);
        return;
    }
    /* No thread could be started: every append tries again until one is. */
    atomic_store_explicit(&bs_sched_threadless, wake_leader() < 0 && sched.nthreads == 0,
                          memory_order_relaxed);
    pthread_mutex_unlock(&sched.lock);
}

int bs_engine_submit(struct bs_job *job)
{
    atomic_store(&job->done, 0);
    job->next = NULL;
    if (on_engine_thread) {
        job->fn(job->arg);
        atomic_store(&job->done, 1);
        return 0;
    }
    bs_sched_init();
    bs_busy_enter(); /* no flushing signal handler while sched.lock is held */
    pthread_mutex_lock(&sched.lock);
    int r = wake_leader();
    if (r == 0) {
        if (sched.calls_tail)
            sched.calls_tail->next = job;
        else
            sched.calls = job;
        sched.calls_tail = job;
    }
    pthread_mutex_unlock(&sched.lock);
    bs_busy_leave();
    return r;
}

void bs_engine_wait(struct bs_job *job)
{
    bs_busy_enter(); /* a flushing signal handler waits for the job, never re-enters it */
    while (!atomic_load(&job->done))
        bs_syscall(SYS_futex, &job->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    bs_busy_leave();
}

int bs_engine_wait_for(struct bs_job *job, uint64_t timeout_ns)
{
    uint64_t end = bs_now_ns() + timeout_ns;
    bs_busy_enter();
    for (;;) {
        if (atomic_load(&job->done))
            break;
        uint64_t now = bs_now_ns();
        if (now >= end)
            break;
        struct timespec left = {(time_t)((end - now) / 1000000000u),
                                (long)((end - now) % 1000000000u)};
        bs_syscall(SYS_futex, &job->done, FUTEX_WAIT_PRIVATE, 0, &left, NULL, 0);
    }
    bs_busy_leave();
    return atomic_load(&job->done) != 0;
}

int bs_engine_call(void (*fn)(void *arg), void *arg)
{
    struct bs_job job = {.fn = fn, .arg = arg};
    int r = bs_engine_submit(&job);
    if (r == 0)
        bs_engine_wait(&job);
    return r;
}
