/* open_per_record.c - a C logger that opens its file per message: fopen "a", fprintf, fclose,
 * N times (tools/bench, scenario (e)). Usage: open_per_record N FILE. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++) {
        FILE *f = fopen(argv[2], "a");
        if (!f)
            return 1;
        fprintf(f, "line %ld: the quick brown fox jumps over the lazy dog\n", i);
        if (fclose(f) != 0)
            return 1;
    }
    return 0;
}
