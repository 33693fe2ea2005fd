/* tcp_sink.c - example: a custom sink that sends each batch over a TCP connection.
 *
 * usage: tcp_sink PORT [THREADS [RECORDS [INTERVAL [MAX_CHUNK]]]]
 *
 * Connects to 127.0.0.1:PORT (a collector such as examples/tcp_collector.py),
 * then THREADS threads (default 4) each append RECORDS records (default 10000),
 * "t<thread> r<n> <payload>\n". The writer hands the collector one batch at most
 * once every INTERVAL seconds (default 0.2) instead of one send per record.
 * MAX_CHUNK > 0 makes the sink take at most that many bytes per call, as a
 * transport with a message size limit would: the engine offers the rest again
 * after the interval, before newer bytes, so the stream stays exact.
 * Exits 0 when every byte was sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bufshim.h>

struct tcp_sink {
    int fd;
    size_t max_chunk; /* 0: no limit */
};

/*
 * The sink: called by the engine's writer thread, one call at a time, with the
 * oldest unsent bytes first. It returns how many bytes it took, or -errno; what
 * it did not take is offered again later. A blocking send is fine here: only the
 * writer thread waits for the network, never the threads that append.
 */
static ssize_t send_batch(void *ctx, const void *data, size_t len)
{
    struct tcp_sink *s = ctx;
    if (s->max_chunk && len > s->max_chunk)
        len = s->max_chunk;
    for (;;) {
        ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static bufshim_writer *writer;
static long records = 10000;

static void *producer(void *arg)
{
    long t = (long)arg;
    for (long i = 0; i < records; i++) {
        char rec[128];
        int n = snprintf(rec, sizeof rec, "t%ld r%ld %0*ld\n", t, i, (int)(i % 40), i * t);
        if (bufshim_append(writer, rec, (size_t)n) != 0) {
            fprintf(stderr, "tcp_sink: bufshim_append failed\n");
            exit(1);
        }
    }
    return NULL;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: %s PORT [THREADS [RECORDS [INTERVAL [MAX_CHUNK]]]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long threads = argc > 2 ? atol(argv[2]) : 4;
    if (argc > 3)
        records = atol(argv[3]);
    struct bufshim_options options = {.interval = argc > 4 ? atof(argv[4]) : 0.2};
    struct tcp_sink sink = {.max_chunk = argc > 5 ? (size_t)atol(argv[5]) : 0};
    if (port <= 0 || port > 65535 || threads < 1 || threads > 256 || records < 0) {
        fprintf(stderr, "tcp_sink: bad arguments\n");
        return 2;
    }

    sink.fd = connect_local(port);
    if (sink.fd < 0) {
        perror("tcp_sink: connect");
        return 1;
    }
    writer = bufshim_open(send_batch, &sink, &options);
    if (!writer) {
        perror("bufshim_open");
        return 1;
    }
    pthread_t tid[256];
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, producer, (void *)t) != 0) {
            fprintf(stderr, "tcp_sink: pthread_create failed\n");
            return 1;
        }
    for (long t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);

    int r = bufshim_close(writer);
    if (r != 0) {
        fprintf(stderr, "tcp_sink: bufshim_close: %s\n", strerror(-r));
        return 1;
    }
    /* Tell the collector the stream is complete. */
    shutdown(sink.fd, SHUT_WR);
    close(sink.fd);
    return 0;
}
