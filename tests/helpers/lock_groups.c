/* lock_groups.c - lock-ordered appenders and lock probes (doc/behaviour.md §6).
 *
 * KIND is one of: flock (flock LOCK_EX / LOCK_UN), fcntl (F_SETLKW / F_UNLCK), ofd
 * (F_OFD_SETLKW / F_UNLCK), lockf (lockf F_LOCK / F_ULOCK). POSIX and OFD locks cover the
 * whole file. lockf locks from the descriptor's offset to the end, so it goes through a
 * second descriptor of LOG that stays at offset 0 (opened O_RDWR once, never closed: the
 * usual pattern, since seeking the appending descriptor would change what it is).
 *
 *   lock_groups groups KIND LOG ORDER ID ROUNDS
 *       ROUNDS times: take the lock on LOG (opened once, O_WRONLY|O_APPEND|O_CREAT), write(2)
 *       "BEGIN ID", ten lines "ID line K" and "END ID", append "ID\n" to ORDER (opened per
 *       round, another file) while still holding it, release the lock, sleep 1-3 ms.
 *   lock_groups hold KIND LOG READY N MS DONE
 *       Takes the lock with the non-blocking form (F_SETLK, F_OFD_SETLK, LOCK_NB, F_TLOCK),
 *       creates READY, then N times: write(2) "held K\n" and sleep MS ms. Then waits (up
 *       to 60 s) until DONE exists and releases the lock.
 *   lock_groups probe LOG MS
 *       For MS ms, every 5 ms: F_GETLK for a whole-file write lock on LOG (opened O_RDWR).
 *       Prints "probe held=H free=F" (F_GETLK's answer counts).
 *   lock_groups unlock KIND LOG LOCKED N SLEEP_MS DONE
 *       Takes the lock, creates LOCKED, writes N lines "under lock K", sleeps SLEEP_MS ms,
 *       writes one more line, releases the lock (KIND close: fcntl lock dropped by
 *       close(2) of the descriptor), then waits (up to 60 s) until DONE exists before
 *       exiting: no exit flush while another process looks.
 *   lock_groups readlock KIND LOG
 *       Opens LOG O_RDWR, waits for the lock (blocking form), then prints what the file
 *       holds, read with read(2) from offset 0, and releases.
 *
 * Exit status: 0 done, 1 failed, 77 the kernel lacks the lock kind (EINVAL for OFD).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static const char *log_path;
static int lockf_fd = -1;

static void die(const char *what)
{
    int e = errno;
    fprintf(stderr, "lock_groups: %s: %s\n", what, strerror(e));
    exit(e == EINVAL ? 77 : 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void put(int fd, const char *s)
{
    size_t len = strlen(s);
    if (write(fd, s, len) != (ssize_t)len)
        die("write");
}

static int posix_lock(int fd, int cmd, short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, cmd, &fl);
}

/* wait: 1 blocking, 0 non-blocking. */
static void lock(const char *kind, int fd, int wait)
{
    int rc;
    if (strcmp(kind, "flock") == 0)
        rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    else if (strcmp(kind, "fcntl") == 0 || strcmp(kind, "close") == 0)
        rc = posix_lock(fd, wait ? F_SETLKW : F_SETLK, F_WRLCK);
    else if (strcmp(kind, "ofd") == 0)
        rc = posix_lock(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, F_WRLCK);
    else if (strcmp(kind, "lockf") == 0) {
        if (lockf_fd < 0 && (lockf_fd = open(log_path, O_RDWR | O_CLOEXEC)) < 0)
            die(log_path);
        rc = lockf(lockf_fd, wait ? F_LOCK : F_TLOCK, 0);
    }
    else {
        fprintf(stderr, "lock_groups: unknown lock kind %s\n", kind);
        exit(1);
    }
    if (rc != 0)
        die("lock");
}

/* Returns the descriptor still to use, or -1 when the release closed it. */
static int unlock(const char *kind, int fd)
{
    int rc;
    if (strcmp(kind, "flock") == 0)
        rc = flock(fd, LOCK_UN);
    else if (strcmp(kind, "fcntl") == 0)
        rc = posix_lock(fd, F_SETLK, F_UNLCK);
    else if (strcmp(kind, "ofd") == 0)
        rc = posix_lock(fd, F_OFD_SETLK, F_UNLCK);
    else if (strcmp(kind, "lockf") == 0)
        rc = lockf(lockf_fd, F_ULOCK, 0);
    else {
        rc = close(fd);
        fd = -1;
    }
    if (rc != 0)
        die("unlock");
    return fd;
}

static int open_log(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path);
    return fd;
}

/* Waits until path exists, at most 60 s. */
static void await_file(const char *path)
{
    for (int k = 0; k < 6000 && access(path, F_OK) != 0; k++)
        sleep_ms(10);
}

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path);
    close(fd);
}

int main(int argc, char **argv)
{
    char line[256];
    if (argc >= 3)
        log_path = argv[argc >= 4 && strcmp(argv[1], "probe") != 0 ? 3 : 2];
    if (argc >= 7 && strcmp(argv[1], "groups") == 0) {
        const char *kind = argv[2], *id = argv[5];
        long rounds = strtol(argv[6], NULL, 10);
        int fd = open_log(argv[3], O_WRONLY | O_APPEND | O_CREAT);
        srand((unsigned)getpid());
        for (long r = 0; r < rounds; r++) {
            lock(kind, fd, 1);
            snprintf(line, sizeof line, "BEGIN %s\n", id);
            put(fd, line);
            for (int k = 0; k < 10; k++) {
                snprintf(line, sizeof line, "%s line %d\n", id, k);
                put(fd, line);
            }
            snprintf(line, sizeof line, "END %s\n", id);
            put(fd, line);
            int ofd = open_log(argv[4], O_WRONLY | O_APPEND | O_CREAT);
            snprintf(line, sizeof line, "%s\n", id);
            put(ofd, line);
            close(ofd);
            unlock(kind, fd);
            sleep_ms(1 + rand() % 3);
        }
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "hold") == 0) {
        const char *kind = argv[2];
        long n = strtol(argv[5], NULL, 10), ms = strtol(argv[6], NULL, 10);
        int fd = open_log(argv[3], O_WRONLY | O_APPEND | O_CREAT);
        lock(kind, fd, 0);
        touch(argv[4]);
        for (long k = 0; k < n; k++) {
            snprintf(line, sizeof line, "held %ld\n", k);
            put(fd, line);
            sleep_ms(ms);
        }
        await_file(argv[7]);
        unlock(kind, fd);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "probe") == 0) {
        long ms = strtol(argv[3], NULL, 10), held = 0, freed = 0;
        int fd = open_log(argv[2], O_RDWR);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            struct flock fl;
            memset(&fl, 0, sizeof fl);
            fl.l_type = F_WRLCK;
            fl.l_whence = SEEK_SET;
            if (fcntl(fd, F_GETLK, &fl) != 0)
                die("F_GETLK");
            if (fl.l_type == F_UNLCK)
                freed++;
            else
                held++;
            sleep_ms(5);
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
        printf("probe held=%ld free=%ld\n", held, freed);
        return 0;
    }
    if (argc >= 8 && strcmp(argv[1], "unlock") == 0) {
        const char *kind = argv[2];
        long n = strtol(argv[5], NULL, 10), ms = strtol(argv[6], NULL, 10);
        int fd = open_log(argv[3], O_WRONLY | O_APPEND | O_CREAT);
        lock(kind, fd, 0);
        touch(argv[4]);
        for (long k = 0; k < n; k++) {
            snprintf(line, sizeof line, "under lock %ld\n", k);
            put(fd, line);
        }
        sleep_ms(ms);
        put(fd, "last under lock\n");
        unlock(kind, fd);
        await_file(argv[7]);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "readlock") == 0) {
        const char *kind = argv[2];
        int fd = open_log(argv[3], O_RDWR);
        lock(strcmp(kind, "close") == 0 ? "fcntl" : kind, fd, 1);
        char buf[65536];
        ssize_t got, off = 0;
        while ((got = pread(fd, buf, sizeof buf - 1, off)) > 0) {
            buf[got] = 0;
            fputs(buf, stdout);
            off += got;
        }
        if (got < 0)
            die("pread");
        fflush(stdout);
        unlock(strcmp(kind, "close") == 0 ? "fcntl" : kind, fd);
        return 0;
    }
    fprintf(stderr, "lock_groups: bad arguments (see the comment at the top of lock_groups.c)\n");
    return 1;
}
