/* fdchannel; see fdchannel.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "fdchannel.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Control buffer for one SCM_RIGHTS int, aligned for struct cmsghdr. */
union fd_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
};

int gofer_fdchan_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0
               ? -errno
               : 0;
}

int gofer_fdchan_send(int sock, int fd)
{
    union fd_cmsg u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    /* One empty iovec rather than none: the datagram is the same zero-length
     * one gVisor sends (msg_iovlen 0), but qemu-user (7.2) silently turns
     * sendmsg/recvmsg with msg_iovlen == 0 into a no-op returning 0. */
    struct iovec iov = {NULL, 0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    /* CMSG_LEN, not CMSG_SPACE: byte-identical to gVisor's sender. */
    msg.msg_controllen = CMSG_LEN(sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_len = CMSG_LEN(sizeof(int));
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    while (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

int gofer_fdchan_recv(int sock, int *fd, int nonblock)
{
    union fd_cmsg u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    struct iovec iov = {NULL, 0}; /* see gofer_fdchan_send */
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    /* CMSG_LEN(4), like gVisor: the kernel then reports exactly 20 bytes
     * (it would report CMSG_SPACE(4) = 24 given the whole buffer) and a
     * message with more FDs is truncated to one, with MSG_CTRUNC. */
    msg.msg_controllen = CMSG_LEN(sizeof(int));
    /* MSG_TRUNC: a (bogus) non-empty datagram is discarded whole. */
    int flags = MSG_TRUNC | MSG_CMSG_CLOEXEC | (nonblock ? MSG_DONTWAIT : 0);
    while (recvmsg(sock, &msg, flags) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!(msg.msg_flags & MSG_CTRUNC) &&
        msg.msg_controllen == CMSG_LEN(sizeof(int)) && c != NULL &&
        c->cmsg_len == CMSG_LEN(sizeof(int)) && c->cmsg_level == SOL_SOCKET &&
        c->cmsg_type == SCM_RIGHTS) {
        memcpy(fd, CMSG_DATA(c), sizeof(int));
        return 0;
    }
    /* Not exactly one FD: none (a bare datagram, or EOF), or more (the
     * kernel installed the first and dropped the rest, MSG_CTRUNC). Close
     * whatever arrived so a bad peer cannot leak FDs into us. */
    for (; c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            close(got);
        }
    }
    return -EPROTO;
}
