/* shim_early.c - continues writing to the file a library constructor opened before the shim ran.
 *
 * Usage: SHIM_EARLY_FILE=PATH shim_early    Exit 0, or 1 on error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern int shim_early_fd;

int main(void)
{
    const char *path = getenv("SHIM_EARLY_FILE");
    if (!path || shim_early_fd < 0)
        return 1;
    for (int i = 0; i < 100; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "main %d via the early descriptor\n", i);
        if (write(shim_early_fd, line, (size_t)n) != n)
            return 1;
    }
    int fd = open(path, O_WRONLY | O_APPEND);
    const char *m = "main via its own descriptor\n";
    if (fd < 0 || write(fd, m, strlen(m)) != (ssize_t)strlen(m))
        return 1;
    return close(fd) == 0 && close(shim_early_fd) == 0 ? 0 : 1;
}
