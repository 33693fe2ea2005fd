/* scan_race.c - a thread that makes the shim scan its descriptor table, against a thread
 * that closes a target's descriptor and opens another file, which the kernel gives the same
 * number. The scan must never move the other file's offset (test_fork.py).
 *
 *   scan_race DIR ROUNDS
 *
 * DIR/t.log is the target (matched by the test's glob), DIR/victim.dat is not. Thread A
 * calls fcntl(F_SETFL) on a descriptor of the target it keeps open: the shim flushes and
 * sets every diverted descriptor of the target at its virtual offset (bs_fd_sync_offsets).
 * Thread B, ROUNDS times: opens the target without O_APPEND, seeks to its end (a diverted
 * description at the end), writes 64 bytes, closes it; opens victim.dat with O_TRUNC, writes
 * "ab" and checks that the file holds 2 bytes. Exit 0 when every round held 2 bytes and at
 * least one victim open reused the target's number, 1 otherwise (the count is printed). */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char target[4096], victim[4096];
static atomic_int done;

static void *scanner(void *arg)
{
    (void)arg;
    int fd = open(target, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        perror("open target (scanner)");
        exit(1);
    }
    while (!atomic_load(&done))
        fcntl(fd, F_SETFL, O_APPEND);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: scan_race DIR ROUNDS\n");
        return 2;
    }
    snprintf(target, sizeof target, "%s/t.log", argv[1]);
    snprintf(victim, sizeof victim, "%s/victim.dat", argv[1]);
    long rounds = atol(argv[2]);
    int fd0 = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd0 < 0) {
        perror("open target");
        return 1;
    }
    close(fd0);
    pthread_t th;
    pthread_create(&th, NULL, scanner, NULL);
    char rec[64];
    memset(rec, 'r', sizeof rec);
    rec[63] = '\n';
    long bad = 0, reused = 0;
    for (long i = 0; i < rounds; i++) {
        int x = open(target, O_WRONLY);
        if (x < 0) {
            perror("open target");
            return 1;
        }
        lseek(x, 0, SEEK_END);
        if (write(x, rec, sizeof rec) != (ssize_t)sizeof rec) {
            perror("write target");
            return 1;
        }
        close(x);
        int v = open(victim, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (v < 0) {
            perror("open victim");
            return 1;
        }
        reused += v == x;
        if (write(v, "ab", 2) != 2) {
            perror("write victim");
            return 1;
        }
        struct stat st;
        if (fstat(v, &st) != 0 || st.st_size != 2)
            bad++;
        close(v);
    }
    atomic_store(&done, 1);
    pthread_join(th, NULL);
    printf("rounds %ld reused %ld bad %ld\n", rounds, reused, bad);
    return bad == 0 && reused > 0 ? 0 : 1;
}
