/* fork_kinds.c - a child made each way a process can come to exist, and whether the shim
 * takes it for the owner of its state (test_fork.py).
 *
 * fork_kinds PATH KIND
 *   PATH is a target. The parent writes "p before\n"; a child made by KIND opens PATH
 *   anew, writes "c KIND\n" with write(2) and looks at the file's real size with the
 *   kernel's own fstat (an inline system call, past the shim): the shim registers no open
 *   of a child that is not the owner of its state, so the write goes straight through and
 *   the size has grown by its line. The child ends with an inline exit_group, so that
 *   nothing of the shim's runs after it. The parent waits for it, opens PATH anew, writes
 *   "p after\n" and checks the same way that this write was diverted (the size
 *   unchanged): it is still the owner.
 *   KIND: _Fork, clone (clone(3), a copy of the memory), clone_vm_vfork (CLONE_VM |
 *   CLONE_VFORK), clone_vm (CLONE_VM, running beside the parent), syscall_fork,
 *   syscall_clone, syscall_clone3 (syscall(2) without CLONE_VM), vfork; and fork, whose
 *   child is the owner (its own state after the fork handlers): exit 3 is its answer.
 * Exit 0; 3 when the child's write was diverted; 4 when the parent's was not; 1 on a
 * failed call.
 *
 * fork_kinds PATH vfork_threads
 *   Three threads append "t<k> <i>\n" for i < 3000, each record through a descriptor
 *   opened for it (open, write, close), while the main thread vforks 200 children that
 *   each open PATH, write "c<j>\n" and exit_group: a thread of the parent must stay the
 *   owner while another one's vfork child runs (an open it made unregistered would put
 *   its record ahead of its own queued ones). Exit 0 or 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static long rsys(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return r;
}

static long real_size(int fd)
{
    struct stat st;
    if (rsys(SYS_fstat, fd, (long)&st, 0) != 0)
        return -1;
    return (long)st.st_size;
}

static const char *path, *kind;

/* The child's part; never returns. */
static int child(void *unused)
{
    (void)unused;
    char line[64];
    int n = snprintf(line, sizeof line, "c %s\n", kind);
    int fd = open(path, O_WRONLY | O_APPEND);
    long before = real_size(fd);
    int code = 0;
    if (fd < 0 || write(fd, line, (size_t)n) != n)
        code = 1;
    else if (real_size(fd) != before + n) {
        code = 3;
        fprintf(stderr, "child: size %ld before its write, %ld after\n", before, real_size(fd));
    }
    for (;;)
        rsys(SYS_exit_group, code, 0, 0);
    return 0;
}

static void *appender(void *arg)
{
    long k = (long)arg;
    char line[64];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(line, sizeof line, "t%ld %d\n", k, i);
        int fd = open(path, O_WRONLY | O_APPEND);
        if (fd < 0 || write(fd, line, (size_t)n) != n)
            exit(1);
        close(fd);
    }
    return NULL;
}

static int vfork_threads(void)
{
    pthread_t th[3];
    for (long k = 0; k < 3; k++)
        if (pthread_create(&th[k], NULL, appender, (void *)k) != 0)
            return 1;
    for (int j = 0; j < 200; j++) {
        pid_t pid = vfork();
        if (pid == 0) {
            char line[32];
            int n = snprintf(line, sizeof line, "c%d\n", j);
            int fd = open(path, O_WRONLY | O_APPEND);
            long code = fd < 0 || write(fd, line, (size_t)n) != n;
            for (;;)
                rsys(SYS_exit_group, code, 0, 0);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            return 1;
    }
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    path = argv[1];
    kind = argv[2];
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (!strcmp(kind, "vfork_threads"))
        return fd < 0 ? 1 : vfork_threads();
    if (fd < 0 || write(fd, "p before\n", 9) != 9)
        return 1;
    size_t stack_size = 1 << 20;
    char *stack =
        mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return 1;
    char *top = stack + stack_size;
    long pid;
    if (!strcmp(kind, "_Fork")) {
        pid = _Fork();
        if (pid == 0)
            child(NULL);
    } else if (!strcmp(kind, "fork")) {
        pid = fork(); /* the control: this child is the owner, its write is diverted */
        if (pid == 0)
            child(NULL);
    } else if (!strcmp(kind, "clone")) {
        pid = clone(child, top, SIGCHLD, NULL);
    } else if (!strcmp(kind, "clone_vm_vfork")) {
        pid = clone(child, top, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    } else if (!strcmp(kind, "clone_vm")) {
        pid = clone(child, top, CLONE_VM | SIGCHLD, NULL);
    } else if (!strcmp(kind, "syscall_fork")) {
        pid = syscall(SYS_fork);
        if (pid == 0)
            child(NULL);
    } else if (!strcmp(kind, "syscall_clone")) {
        pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
        if (pid == 0)
            child(NULL);
    } else if (!strcmp(kind, "syscall_clone3")) {
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.exit_signal = SIGCHLD;
        pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid == 0)
            child(NULL);
    } else if (!strcmp(kind, "vfork")) {
        pid = vfork();
        if (pid == 0)
            child(NULL);
    } else {
        return 2;
    }
    if (pid < 0) {
        perror(kind);
        return 1;
    }
    int status;
    if (waitpid((pid_t)pid, &status, 0) != pid || !WIFEXITED(status))
        return 1;
    if (WEXITSTATUS(status) != 0)
        return WEXITSTATUS(status);
    int fd2 = open(path, O_WRONLY | O_APPEND);
    long before = real_size(fd2);
    if (fd2 < 0 || write(fd2, "p after\n", 8) != 8)
        return 1;
    if (real_size(fd2) != before)
        return 4;
    return 0;
}
