/* spool_stub.c - a stand-in for the engine's spools while src/engine has no spool.c and
 * spool_read.c (meson uses it only then): no spool is ever created, the folder and the names
 * work as spool_i.h says, and a spool found is refused (renamed <name>.refused). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_i.h"

static char dir_buf[BS_SPOOL_PATH_MAX];
static int dir_set, spools_on = 1;

void bs_spool_configure(const char *dir, int enabled)
{
    if (dir && dir[0])
        snprintf(dir_buf, sizeof dir_buf, "%s", dir);
    dir_set = dir && dir[0];
    spools_on = enabled;
}

int bs_spool_enabled(void)
{
    return spools_on;
}

const char *bs_spool_dir(void)
{
    if (!dir_set) {
        const char *x = getenv("BUFSHIM_SPOOL_DIR");
        const char *run = getenv("XDG_RUNTIME_DIR");
        struct stat st;
        if (x && x[0])
            snprintf(dir_buf, sizeof dir_buf, "%s", x);
        else if (run && run[0] == '/' && stat(run, &st) == 0 && S_ISDIR(st.st_mode) &&
                 st.st_uid == getuid())
            snprintf(dir_buf, sizeof dir_buf, "%s/bufshim", run);
        else
            snprintf(dir_buf, sizeof dir_buf, "/dev/shm/bufshim-%u", (unsigned)getuid());
        dir_set = 1;
    }
    struct stat st;
    if (mkdir(dir_buf, 0700) < 0 && errno != EEXIST)
        return NULL;
    if (stat(dir_buf, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return NULL;
    return dir_buf;
}

void bs_spool_set_first_hook(void (*hook)(void))
{
    (void)hook;
}

void bs_spool_set_check_hook(void (*hook)(void))
{
    (void)hook;
}

ssize_t bs_spool_finish(int dirfd, const char *name, char *msg, size_t msglen)
{
    char to[512];
    snprintf(to, sizeof to, "%s.refused", name);
    renameat(dirfd, name, dirfd, to);
    snprintf(msg, msglen, "%s: refused: this build has no spool reader; left as %s", name, to);
    return -ENOSYS;
}

int bs_spool_parse_name(const char *name, pid_t *pid, uint64_t *starttime)
{
    unsigned long long p, st, n;
    int len = 0;
    if (sscanf(name, "%llu-%llu-%llu.spool%n", &p, &st, &n, &len) != 3 || name[len] != 0 ||
        !p)
        return 0;
    *pid = (pid_t)p;
    *starttime = st;
    return 1;
}

uint64_t bs_proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* fields after the name: 3 is state; 22 is starttime */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}
