/* shim_early_dso.c - a library whose constructor writes before the shim has initialised.
 *
 * Its constructor runs before libbufshim.so's (the program links it; the shim is
 * preloaded): it opens $SHIM_EARLY_FILE for appending and writes a line, so the
 * shim's wrappers are called before its own constructor ran.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int shim_early_fd = -1;

__attribute__((constructor)) static void shim_early_ctor(void)
{
    const char *path = getenv("SHIM_EARLY_FILE");
    if (!path)
        return;
    shim_early_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    const char *m = "written by a library constructor\n";
    if (shim_early_fd < 0 || write(shim_early_fd, m, strlen(m)) != (ssize_t)strlen(m))
        _exit(1);
}
