/* ctor_writer.c - a preloadable library whose constructor and destructor write to the
 * file named by $CTOR_WRITER_PATH: the constructor before the shim has initialised (when
 * listed after the shim in LD_PRELOAD), the destructor after the shim's final flush. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(const char *what)
{
    const char *path = getenv("CTOR_WRITER_PATH");
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return;
    if (write(fd, what, strlen(what)) < 0)
        _exit(9);
    close(fd);
}

__attribute__((constructor)) static void ctor(void)
{
    say("ctor\n");
}

__attribute__((destructor)) static void dtor(void)
{
    say("dtor\n");
}
