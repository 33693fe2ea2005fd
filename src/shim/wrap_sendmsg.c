/* wrap_sendmsg.c - sendmsg and sendmmsg: a barrier on a socket target, and descriptors passed
 * with SCM_RIGHTS leave this process with open file descriptions of their own. */
#include "real_i.h"

#include "barrier_i.h"
#include "descriptors_i.h"
#include "elide_i.h"

/*
 * A descriptor passed over a socket shares its description with the receiver: an
 * elided one is made real first (the receiver must not share the shim's held
 * description, whose lifetime is the shim's), and any passed description is never
 * kept alive by the shim after the program's close (the receiver may lock it).
 */
static void passing(const struct msghdr *m)
{
    if (!m || !m->msg_control || m->msg_controllen < sizeof(struct cmsghdr) || bs_in_shim)
        return;
    int any = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c;
         c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *p = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            __builtin_memcpy(&fd, p + i * sizeof fd, sizeof fd);
            bs_fd_materialize(fd);
            bs_fd_taint(fd);
            any = 1;
        }
    }
    if (any)
        bs_fd_shared_out();
}

BS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int fl)
{
    passing(m);
    struct bs_target *t = bs_barrier_fd(fd);
    ssize_t r = BS_REAL(sendmsg)(fd, m, fl);
    bs_barrier_end(t);
    return r;
}

BS_EXPORT int sendmmsg(int fd, struct mmsghdr *m, unsigned int n, int fl)
{
    for (unsigned i = 0; m && i < n; i++)
        passing(&m[i].msg_hdr);
    struct bs_target *t = bs_barrier_fd(fd);
    int r = BS_REAL(sendmmsg)(fd, m, n, fl);
    bs_barrier_end(t);
    return r;
}
