/* fdchannel: passes one file descriptor per message over a SOCK_SEQPACKET
 * Unix socket pair, wire-compatible with gvisor.dev/gvisor/pkg/fdchannel.
 *
 * A message is a zero-length datagram carrying one SCM_RIGHTS control
 * message with exactly one int (msg_controllen = CMSG_LEN(4) = 20).
 * lisafs uses it server -> client only: the gofer sends the FDs of a
 * response before handing the flipcall window back.
 *
 * All functions return 0 or a negative errno (errno is not part of the
 * result). Closing the sockets is the caller's job (close(2)).
 */
#ifndef GOFER_FDCHANNEL_H
#define GOFER_FDCHANNEL_H

/* socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). In lisafs the server
 * keeps fds[0] and donates fds[1] to the client. */
int gofer_fdchan_pair(int fds[2]);

/* Sends a copy of fd (sendmsg with MSG_DONTWAIT | MSG_NOSIGNAL, retried on EINTR). Never
 * blocks: a peer that stops reading gets -EAGAIN once the socket's buffer is
 * full, and the gofer thread moves on. The caller still owns fd. */
int gofer_fdchan_send(int sock, int fd);

/* Receives one FD into *fd (for clients and tests). nonblock != 0 adds
 * MSG_DONTWAIT (-EAGAIN when nothing is queued), as gVisor's sentry does.
 * The FD is received close-on-exec. -EPROTO if the message does not carry
 * exactly one FD, which includes end-of-file (peer closed or shut down). */
int gofer_fdchan_recv(int sock, int *fd, int nonblock);

#endif /* GOFER_FDCHANNEL_H */
