/* signals.c - fatal signals at their default action (termination, crashes, SIGPIPE): flush,
 * then die of the signal. */
#include "real_i.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "errno_i.h"
#include "engine_i.h"
#include "flush_i.h"
#include "process_i.h"
#include "shim_i.h"
#include "signals_i.h"

/*
 * Where the program leaves one of these signals at SIG_DFL, the shim installs
 * its own handler, so that a `kill -TERM` from systemd first writes what is
 * buffered and then kills the process by the same signal, with the same exit
 * status and core-dump behaviour as before. The program never sees the
 * difference: sigaction() and signal() report SIG_DFL (with the mask and flags
 * the program last gave) while the shim's handler stands in for it, and a
 * handler the program installs replaces the shim's outright.
 *
 * The handler flushes at once unless the interrupted thread is inside the engine
 * or holds a shim lock (bs_busy_*); then the flush and the death happen when that
 * thread leaves it, a few microseconds later.
 */

/*
 * The termination signals, the crashes (a fault, abort() and assert(), a crash
 * handler that re-raises after it wrote its report, as Python's faulthandler does)
 * and SIGPIPE (a program writing to a closed pipe). Decision: the signals whose
 * default action kills and that programs meet without asking for them; SIGUSR1/2,
 * SIGALRM, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGSYS, SIGTRAP and the real-time
 * signals are left alone (README, limits): a sigaction each costs every process at
 * start. SIGKILL cannot be caught at all.
 *
 * A fault inside the shim itself (interrupted thread busy in the engine) cannot be
 * deferred as a termination signal is: the handler returns, the faulting
 * instruction faults again, and the second entry dies at once without the flush.
 */
#define FLUSHING_SIGNALS(X)                                                                        \
    X(SIGTERM) X(SIGINT) X(SIGHUP) X(SIGQUIT) X(SIGILL) X(SIGABRT) X(SIGBUS) X(SIGFPE) X(SIGSEGV)  \
    X(SIGPIPE)
#define SIG_ENTRY(sig) sig,
static const int flushing[] = {FLUSHING_SIGNALS(SIG_ENTRY)};

/*
 * Sanitizer runtimes preloaded ahead of the shim call sigaction() while they
 * initialise, before anything else runs: the wrappers' way to the real functions
 * must then work without instrumentation and without the shim's table.
 */
#if defined(__SANITIZE_THREAD__)
#define BS_EARLY __attribute__((no_sanitize_thread))
#else
#define BS_EARLY
#endif

static int shim_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

static int ready; /* set once the shim is active and bs_signals_init ran */

BS_EARLY static void *early_real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Resolved once per function (a benign race: every thread finds the same address). */
#define EARLY_REAL(name)                                                                           \
    ({                                                                                             \
        static __typeof__(&name) real_;                                                            \
        if (!real_)                                                                                \
            real_ = (__typeof__(&name))early_real(#name);                                          \
        real_;                                                                                     \
    })

/*
 * Indexed by signal number, for the flushing signals only (every function that indexes them
 * checks is_flushing first). Sized for them rather than NSIG: a process that arms the
 * stand-ins writes ten entries, and 65 of 152 bytes would spread those over three pages,
 * each a page fault at start (doc/architecture.md, Start-up cost).
 */
#define SIG_SLOTS 16
#define SIG_FITS(sig) &&(sig) < SIG_SLOTS
_Static_assert(1 FLUSHING_SIGNALS(SIG_FITS), "a flushing signal beyond SIG_SLOTS");
static atomic_int standing_in[SIG_SLOTS]; /* 1: our handler is installed for the program's SIG_DFL */
static struct sigaction program_view[SIG_SLOTS]; /* what the program believes is installed */

static int is_flushing(int sig)
{
    if (sig <= 0 || sig >= SIG_SLOTS)
        return 0;
    for (size_t i = 0; i < sizeof flushing / sizeof flushing[0]; i++)
        if (flushing[i] == sig)
            return 1;
    return 0;
}

static void die_now(int sig);

/* Flushes everything, then lets sig take its default action on this process. */
static void die_of(int sig)
{
    /* A crash: nothing else will come to end a flush that waits for a hung batch. */
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGABRT)
        bs_shim_final_flush_urgent();
    else
        bs_shim_final_flush();
    atomic_store(&standing_in[sig], 0);
    die_now(sig);
}

/* A deferred flush is waiting (see on_signal). */
static volatile sig_atomic_t flush_deferred;

/* Dies of sig at once, without the flush. */
static void die_now(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    BS_REAL(sigaction)(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    BS_REAL(_exit)(128 + sig);
}

/*
 * When the interrupted thread is inside the engine, the flush waits until it
 * leaves. That thread may be stuck (a barrier waiting for a batch hung on a dead
 * mount): then a second termination signal kills at once, without the flush, as
 * the first would have without the shim.
 */
static void on_signal(int sig, siginfo_t *info, void *uc)
{
    (void)info;
    (void)uc;
    BS_KEEP_ERRNO();
    if (flush_deferred)
        die_now(sig);
    if (bs_busy_defer(die_of, sig)) {
        flush_deferred = sig;
        return;
    }
    die_of(sig);
}

/* Installs the stand-in for sig; the disposition it replaced goes to *old (may be NULL). */
static int install_stand_in(int sig, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    /* SA_RESTART: a deferred flush must not turn into EINTR the program never saw. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    int r = BS_REAL(sigaction)(sig, &sa, old);
    if (r == 0)
        atomic_store(&standing_in[sig], 1);
    return r;
}

/*
 * The stand-ins are installed at the first diverted append (bs_signals_arm), not at
 * start: before it nothing is buffered, so a signal loses nothing, and a process that
 * diverts nothing makes no sigaction call for the shim. Nor while the process exits:
 * the final flush follows at once (a termination signal in between, during the exit's
 * own handlers, then kills without it). Arming and the program's sigaction calls on
 * these signals exclude each other, so that a handler another thread installs meanwhile
 * is not overwritten: a spin lock, re-entered without waiting by a signal handler that
 * interrupted its holder on the same thread, and reset in a fork child.
 */
atomic_int bs_signals_armed;
static atomic_flag disposition_lock = ATOMIC_FLAG_INIT;
static __thread int disposition_lock_depth __attribute__((tls_model("initial-exec")));

static void lock_dispositions(void)
{
    if (disposition_lock_depth++)
        return;
    while (atomic_flag_test_and_set_explicit(&disposition_lock, memory_order_acquire))
        sched_yield();
}

static void unlock_dispositions(void)
{
    if (--disposition_lock_depth)
        return;
    atomic_flag_clear_explicit(&disposition_lock, memory_order_release);
}

void bs_signals_fork_child(void)
{
    atomic_flag_clear(&disposition_lock);
    disposition_lock_depth = 0;
}

void bs_signals_init(void)
{
    ready = 1;
}

void bs_signals_arm(void)
{
    if (!ready || !bs_shim_active() || atomic_load(&bs_exiting))
        return;
    lock_dispositions();
    if (atomic_exchange(&bs_signals_armed, 1)) {
        unlock_dispositions();
        return;
    }
    /*
     * One call a signal: install, and put back what was there unless it was
     * SIG_DFL (SIG_IGN, say, from nohup). The signals stay blocked meanwhile, so
     * that one arriving in between meets the disposition it would have met anyway.
     */
    sigset_t these, before;
    sigemptyset(&these);
    for (size_t i = 0; i < sizeof flushing / sizeof flushing[0]; i++)
        sigaddset(&these, flushing[i]);
    pthread_sigmask(SIG_BLOCK, &these, &before);
    for (size_t i = 0; i < sizeof flushing / sizeof flushing[0]; i++) {
        int sig = flushing[i];
        struct sigaction cur;
        if (install_stand_in(sig, &cur) != 0)
            continue;
        if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL) {
            program_view[sig] = cur;
        } else {
            BS_REAL(sigaction)(sig, &cur, NULL);
            atomic_store(&standing_in[sig], 0);
        }
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    unlock_dispositions();
}

BS_EXPORT BS_EARLY int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!ready)
        return EARLY_REAL(sigaction)(sig, act, old);
    return shim_sigaction(sig, act, old);
}

static int shim_sigaction_locked(int sig, const struct sigaction *act, struct sigaction *old);

static int shim_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(sigaction)(sig, act, old);
    lock_dispositions();
    int r = shim_sigaction_locked(sig, act, old);
    int e = errno;
    unlock_dispositions();
    errno = e;
    return r;
}

static int shim_sigaction_locked(int sig, const struct sigaction *act, struct sigaction *old)
{
    int was_standing_in = atomic_load(&standing_in[sig]);
    struct sigaction before = program_view[sig];
    struct sigaction real_old;
    int r = 0;
    if (act && !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL) {
        /* The program asks for the default action: keep (or put back) the stand-in. */
        program_view[sig] = *act;
        if (!was_standing_in) {
            r = BS_REAL(sigaction)(sig, NULL, &real_old);
            if (r == 0)
                r = install_stand_in(sig, NULL);
        }
    } else if (act) {
        r = BS_REAL(sigaction)(sig, act, &real_old);
        if (r == 0)
            atomic_store(&standing_in[sig], 0);
    } else if (!was_standing_in) {
        r = BS_REAL(sigaction)(sig, NULL, &real_old);
    }
    if (r == 0 && old)
        *old = was_standing_in ? before : real_old;
    return r;
}

/* glibc's signal(): BSD semantics, the signal itself blocked in its handler, SA_RESTART. */
static sighandler_t bsd_signal_impl(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    if (handler == SIG_ERR || sigaction(sig, &act, &old) < 0) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return old.sa_handler;
}

BS_EXPORT BS_EARLY sighandler_t signal(int sig, sighandler_t handler)
{
    if (!ready)
        return EARLY_REAL(signal)(sig, handler);
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(signal)(sig, handler);
    return bsd_signal_impl(sig, handler);
}

BS_EXPORT BS_EARLY sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    if (!ready)
        return EARLY_REAL(bsd_signal)(sig, handler);
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(bsd_signal)(sig, handler);
    return bsd_signal_impl(sig, handler);
}

BS_EXPORT BS_EARLY sighandler_t ssignal(int sig, sighandler_t handler)
{
    if (!ready)
        return EARLY_REAL(ssignal)(sig, handler);
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(ssignal)(sig, handler);
    return bsd_signal_impl(sig, handler);
}

/* System V semantics: the handler is reset on delivery and the signal not blocked. */
static sighandler_t sysv_signal_impl(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESETHAND | SA_NODEFER;
    if (handler == SIG_ERR || sigaction(sig, &act, &old) < 0) {
        errno = EINVAL;
        return SIG_ERR;
    }
    return old.sa_handler;
}

BS_EXPORT BS_EARLY sighandler_t sysv_signal(int sig, sighandler_t handler)
{
    if (!ready)
        return EARLY_REAL(sysv_signal)(sig, handler);
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(sysv_signal)(sig, handler);
    return sysv_signal_impl(sig, handler);
}

BS_EXPORT BS_EARLY sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
    if (!ready)
        return EARLY_REAL(__sysv_signal)(sig, handler);
    if (sig <= 0 || sig >= NSIG || !is_flushing(sig) || !bs_shim_active())
        return BS_REAL(__sysv_signal)(sig, handler);
    return sysv_signal_impl(sig, handler);
}
