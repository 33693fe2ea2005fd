/* stdio_mix.c - a random mix of every stdio output call and direct writes on one file.
 *
 * usage: stdio_mix SEED PATH [OPS]
 * Opens PATH through two descriptors and four FILE streams (fopen "a", fdopen
 * "a", fopen "a" with a seed-chosen setvbuf, fopen "a+") and, with stdout and
 * stderr redirected to PATH by the caller, performs OPS (default 3000) calls
 * chosen by SEED: write, writev, dprintf, fwrite (small and larger than any
 * buffer), fputs, fputc, putc, inline putc_unlocked, printf, puts, putchar,
 * perror, fflush, partial lines... The program ends in a seed-chosen way
 * (return, exit, fclose everything, _exit after fflush). The same seed makes
 * the same calls, so two runs must leave identical files. Exit 0, 1 on error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static uint64_t rng;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static unsigned below(unsigned n)
{
    return next() % n;
}

static int failed;

static void check(int ok, const char *what)
{
    if (!ok) {
        failed = 1;
        fprintf(stderr, "stdio_mix: %s failed: %s\n", what, strerror(errno));
    }
}

/* Text of length LEN: op number, seed-dependent letters, maybe a newline. */
static size_t text(char *buf, size_t len, int op, int newline)
{
    size_t n = (size_t)snprintf(buf, len + 1, "<%d>", op);
    if (n > len)
        n = len;
    while (n < len) {
        buf[n] = (char)('a' + below(26));
        n++;
    }
    if (newline && len > 0)
        buf[len - 1] = '\n';
    buf[len] = '\0';
    return len;
}

static int my_vfprintf(FILE *fp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(fp, fmt, ap);
    va_end(ap);
    return r;
}

static int my_vprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf(fmt, ap);
    va_end(ap);
    return r;
}

static char big[40000];
static char cbuf[10000];

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    rng = strtoull(argv[1], NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
    const char *path = argv[2];
    int ops = argc > 3 ? atoi(argv[3]) : 3000;

    int fd[2];
    fd[0] = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    fd[1] = open(path, O_WRONLY | O_APPEND);
    FILE *f[4];
    f[0] = fopen(path, "a");
    f[1] = fdopen(open(path, O_WRONLY | O_APPEND), "a");
    f[2] = fopen(path, "a");
    f[3] = fopen(path, "a+");
    for (int i = 0; i < 4; i++)
        if (f[i] == NULL)
            return 1;
    if (fd[0] < 0 || fd[1] < 0)
        return 1;
    switch (below(5)) {
    case 0:
        setvbuf(f[2], NULL, _IOLBF, 0);
        break;
    case 1:
        setvbuf(f[2], NULL, _IONBF, 0);
        break;
    case 2:
        setvbuf(f[2], cbuf, _IOFBF, 100 + below(9000));
        break;
    case 3:
        setvbuf(stdout, NULL, _IOLBF, 0);
        break;
    default:
        break;
    }

    char buf[200];
    for (int op = 0; op < ops; op++) {
        FILE *fp = f[below(4)];
        if (below(4) == 0)
            fp = stdout;
        size_t len = below(7) == 0 ? 1 + below(150) : 1 + below(40);
        int nl = below(3) == 0;
        text(buf, len, op, nl);
        switch (below(27)) {
        case 0:
            check(write(fd[below(2)], buf, len) == (ssize_t)len, "write");
            break;
        case 1: {
            struct iovec iov[3] = {
                {buf, len / 2}, {(char *)"|v|", 3}, {buf + len / 2, len - len / 2}};
            check(writev(fd[below(2)], iov, 3) == (ssize_t)len + 3, "writev");
            break;
        }
        case 2:
            check(dprintf(fd[below(2)], "d%d:%s", op, buf) > 0, "dprintf");
            break;
        case 3:
            check(fwrite(buf, 1, len, fp) == len, "fwrite");
            break;
        case 4: {
            size_t n = 1 + below(sizeof big - 1);
            memset(big, 'A' + (int)below(26), n);
            big[n - 1] = '\n';
            check(fwrite(big, 1, n, fp) == n, "fwrite big");
            break;
        }
        case 5:
            check(fwrite_unlocked(buf, 1, len, fp) == len, "fwrite_unlocked");
            break;
        case 6:
            check(fputs(buf, fp) >= 0, "fputs");
            break;
        case 7:
            check(fputs_unlocked(buf, fp) >= 0, "fputs_unlocked");
            break;
        case 8:
            for (size_t k = 0; k < len; k++)
                check(fputc(buf[k], fp) != EOF, "fputc");
            break;
        case 9:
            for (size_t k = 0; k < len; k++)
                check(putc(buf[k], fp) != EOF, "putc");
            break;
        case 10:
            for (size_t k = 0; k < len; k++)
                check(putc_unlocked(buf[k], fp) != EOF, "putc_unlocked");
            break;
        case 11:
            for (size_t k = 0; k < len; k++)
                check(fputc_unlocked(buf[k], fp) != EOF, "fputc_unlocked");
            break;
        case 12:
            check(fprintf(fp, "[%d %s %5.2f]", op, buf, op / 7.0) > 0, "fprintf");
            break;
        case 13:
            check(my_vfprintf(fp, "{%x %s}", op, buf) > 0, "vfprintf");
            break;
        case 14:
            check(printf("(%d %s)", op, buf) > 0, "printf");
            break;
        case 15:
            check(my_vprintf("(v%d %s)", op, buf) > 0, "vprintf");
            break;
        case 16:
            check(puts(buf) >= 0, "puts");
            break;
        case 17:
            for (size_t k = 0; k < len; k++)
                check(putchar(buf[k]) != EOF, "putchar");
            break;
        case 18:
            for (size_t k = 0; k < len; k++)
                check(putchar_unlocked(buf[k]) != EOF, "putchar_unlocked");
            break;
        case 19:
            check(fflush(fp) == 0, "fflush");
            break;
        case 20:
            if (below(4) == 0)
                check(fflush(NULL) == 0, "fflush(NULL)");
            break;
        case 21:
            check(fprintf(stderr, "E%d:%s", op, buf) > 0, "fprintf stderr");
            break;
        case 22:
            errno = 1 + (int)below(30);
            perror(buf);
            break;
        case 23:
            printf("constant\n"); /* puts */
            printf("c");          /* putchar */
            break;
        case 24:
            check(fputs(buf, stdout) >= 0, "fputs stdout");
            break;
        case 25:
            check(fwrite(buf, len, 1, stderr) == 1, "fwrite stderr");
            break;
        default:
            check(write(1, buf, len) == (ssize_t)len, "write 1");
            break;
        }
    }
    switch (below(4)) {
    case 0:
        return failed;
    case 1:
        exit(failed);
    case 2:
        for (int i = 0; i < 4; i++)
            check(fclose(f[i]) == 0, "fclose");
        return failed;
    default:
        fflush(NULL);
        _exit(failed);
    }
}
