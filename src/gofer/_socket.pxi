# Included into _server.pyx. The socket transport: reading and writing
# whole messages with SCM_RIGHTS, and the spin before a blocking read; and
# the few socket calls the service needs on FDs (the `socket` module costs
# start-up).

# The spin window of both transports (native/spin.h): gofer_spin_default_ns(),
# or GOFER_SPIN_NS from the environment (for tuning).
SPIN_NS = int(os.environ["GOFER_SPIN_NS"]) if os.environ.get("GOFER_SPIN_NS") else \
    gofer_spin_default_ns()


cdef struct Recv:
    int sock
    msghdr* msg
    Py_ssize_t got


cdef int recv_ready(void* arg) noexcept nogil:
    """spin.h's ready(): a non-blocking recvmsg got something (or failed)."""
    cdef Recv* r = <Recv*>arg
    r.got = recvmsg(r.sock, r.msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)
    return r.got >= 0 or (errno != EAGAIN and errno != EWOULDBLOCK)


cdef Py_ssize_t recv_spinning(int sock, msghdr* msg, gofer_spin* spin) noexcept nogil:
    """recvmsg that polls for the spin window first (native/spin.h)."""
    cdef Recv r
    r.sock = sock
    r.msg = msg
    if gofer_spin_poll(spin, recv_ready, &r):
        return r.got
    return recvmsg(sock, msg, MSG_CMSG_CLOEXEC)


cdef Py_ssize_t sock_read(int sock, char* buf, Py_ssize_t n, gofer_spin* spin=NULL) noexcept nogil:
    """Reads exactly n bytes; 0 on EOF, -1 on error. With `spin`, the wait
    for the first byte polls first (see recv_spinning). Any FDs a
    (misbehaving) client attaches are closed, never kept."""
    cdef Py_ssize_t got = 0, k
    cdef iovec iov
    cdef msghdr msg
    cdef char ctl[256]
    cdef cmsghdr* c
    cdef int* fds
    cdef size_t i, nfd
    while got < n:
        iov.iov_base = buf + got
        iov.iov_len = n - got
        memset(&msg, 0, sizeof(msg))
        msg.msg_iov = &iov
        msg.msg_iovlen = 1
        msg.msg_control = ctl
        msg.msg_controllen = sizeof(ctl)
        if spin != NULL and got == 0:
            k = recv_spinning(sock, &msg, spin)
        else:
            k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)
        if k < 0:
            if errno == EINTR:
                continue
            return -1
        if msg.msg_controllen:
            c = CMSG_FIRSTHDR(&msg)
            while c != NULL:
                if c.cmsg_level == SOL_SOCKET and c.cmsg_type == SCM_RIGHTS:
                    fds = <int*>CMSG_DATA(c)
                    nfd = (c.cmsg_len - CMSG_LEN(0)) // sizeof(int)
                    for i in range(nfd):
                        close(fds[i])
                c = CMSG_NXTHDR(&msg, c)
        if k == 0:
            return 0
        got += k
    return got


cdef Py_ssize_t sock_discard(int sock, char* buf, Py_ssize_t bufsize, uint64_t n) noexcept nogil:
    cdef Py_ssize_t k
    while n > 0:
        k = sock_read(sock, buf, <Py_ssize_t>min(<uint64_t>bufsize, n))
        if k <= 0:
            return k
        n -= k
    return 1


cdef int sock_write(int sock, const char* buf, Py_ssize_t n, int* fds, int nfds) noexcept nogil:
    """Writes all n bytes; the FDs ride in one SCM_RIGHTS message with the
    first byte, as gVisor's client expects."""
    cdef iovec iov
    cdef msghdr msg
    cdef char ctl[64]
    cdef cmsghdr* c
    cdef Py_ssize_t k
    cdef int i
    while n > 0:
        iov.iov_base = <void*>buf
        iov.iov_len = n
        memset(&msg, 0, sizeof(msg))
        msg.msg_iov = &iov
        msg.msg_iovlen = 1
        if nfds > 0:
            memset(ctl, 0, sizeof(ctl))
            msg.msg_control = ctl
            msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int))
            c = CMSG_FIRSTHDR(&msg)
            c.cmsg_level = SOL_SOCKET
            c.cmsg_type = SCM_RIGHTS
            c.cmsg_len = CMSG_LEN(nfds * sizeof(int))
            memcpy(CMSG_DATA(c), fds, nfds * sizeof(int))
        k = sendmsg(sock, &msg, MSG_NOSIGNAL)
        if k < 0:
            if errno == EINTR:
                continue
            return -1
        nfds = 0
        buf += k
        n -= k
    return 0


cdef void send_buffer_for(int sock, int size) noexcept nogil:
    """Lets the socket's send buffer hold a response of `size` bytes, so
    that a large one (a 1 MiB PRead) goes out in one sendmsg instead of in
    rounds of waking the client to drain the default ~200 KiB. The kernel
    caps the value at net.core.wmem_max and doubles it for its bookkeeping:
    a client that never reads makes us hold at most that, per connection.
    Never lowers it."""
    cdef int cur = 0
    cdef socklen_t len = sizeof(cur)
    if getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &cur, &len) == 0 and cur >= 2 * size:
        return
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size))


cdef void prepare_donated(int fd) noexcept nogil:
    """Prepares a host FD for donation, whatever the backend did: gVisor sets
    O_NONBLOCK on every FD it donates (the open file description is shared
    with the client), and close-on-exec keeps it out of any child we run."""
    cdef int fl = fcntl(fd, F_GETFL)
    if fl >= 0 and not fl & O_NONBLOCK:
        fcntl(fd, F_SETFL, fl | O_NONBLOCK)
    fl = fcntl(fd, F_GETFD)
    if fl >= 0 and not fl & FD_CLOEXEC:
        fcntl(fd, F_SETFD, fl | FD_CLOEXEC)


def accept_client(int listener):
    """The FD (close-on-exec) of the next client of a listening socket,
    waited for without the GIL. Raises OSError (EINVAL once shut down)."""
    cdef int fd, err
    while True:
        with nogil:
            fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)
            err = errno
        if fd >= 0:
            return fd
        if err != EINTR:
            raise OSError(err, os.strerror(err))
        PyErr_CheckSignals()


def peer_creds(int sock):
    """(pid, uid) of the process at the other end of a Unix socket, as the
    kernel recorded them at connect() (SO_PEERCRED)."""
    cdef ucred cred
    cdef socklen_t size = sizeof(cred)
    if getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) < 0:
        raise OSError(errno, os.strerror(errno))
    return cred.pid, cred.uid


cdef void shutdown_socket(int sock) noexcept:
    """shutdown(SHUT_RDWR): ends the reads and writes of whoever serves it.
    Errors are ignored (it may be gone already)."""
    shutdown(sock, SHUT_RDWR)
