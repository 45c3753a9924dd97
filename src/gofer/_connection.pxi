# Included into _server.pyx. One connection: its FD table, the dispatch of
# each request to its handler (_handlers.pxi), errnos and the request log.

cdef int errno_of(exc, uint16_t mid) noexcept:
    """The errno an exception raised while handling `mid` answers: an
    OSError's own (also a one-argument OSError(errno.X), whose .errno is
    None); EIO for a request that does not decode or a response that does
    not fit, as gVisor. Anything else is a backend bug: EREMOTEIO, gVisor's
    answer for a handler that panics, and one log line (the traceback only
    at debug level, since a client can repeat the request at will)."""
    if isinstance(exc, OSError):
        err = exc.errno
        if err is None and len(exc.args) == 1:
            err = exc.args[0]
        if isinstance(err, int) and 0 < err < 4096:
            return err
    elif isinstance(exc, (ProtocolError, MessageTooLarge)):
        return E.EIO
    log.error("%s: backend raised %r; answering EREMOTEIO", _wire.MID_NAMES[mid], exc)
    log.debug("%s: traceback", _wire.MID_NAMES[mid], exc_info=exc)
    return E.EREMOTEIO


# Where the FD a request acts on sits in its payload (the first FD of
# Close and FSync's lists), for the request log; -1: none.
cdef Py_ssize_t FD_OFFSET[MAX_MID + 1]
for _mid in range(MAX_MID + 1):
    FD_OFFSET[_mid] = -1 if _mid in (_wire.ERROR, _wire.MOUNT, _wire.CHANNEL) else 0
FD_OFFSET[_wire.PREAD] = FD_OFFSET[_wire.PWRITE] = 8
FD_OFFSET[_wire.CLOSE] = FD_OFFSET[_wire.FSYNC] = 2


cdef void trace_request(uint16_t mid, const char* req, Py_ssize_t n, int err,
                        uint64_t start) noexcept:
    """One debug line per request, as runsc's --debug logs each RPC: the
    message, the FD it acts on, the errno answered and how long it took."""
    cdef Py_ssize_t at = FD_OFFSET[mid] if mid <= MAX_MID else -1
    cdef uint64_t took = gofer_now_ns() - start
    try:
        fd = lisafs_ld64(req + at) if 0 <= at and at + 8 <= n else None
        log.debug("%s fd=%s errno=%d (%s) %d.%03d ms",
                  _wire.MID_NAMES[mid] if mid <= MAX_MID else mid, fd, err,
                  E.errorcode.get(err, "OK") if err else "OK",
                  took // 1000000, took // 1000 % 1000)
    except BaseException:
        pass


cdef class Connection:
    """One LISAFS connection: an FD table over one mount of the server tree."""
    cdef readonly Server server
    cdef readonly ConnectionImpl impl
    cdef readonly ConnectionOpts opts
    cdef readonly bytes mount_path
    cdef gofer_fdtable fds         # FDID -> FD, shared with the fast path
    cdef gofer_fast fast            # native/fastpath.h: served without the GIL
    cdef uint32_t max_msg
    cdef bint readonly
    cdef bint supported[MAX_MID + 1]
    cdef readonly list supported_list
    cdef int sock
    cdef bint closed
    cdef bint mounted
    cdef bint trace                 # log every request (--log-level debug)
    cdef list channels
    cdef object channels_lock       # guards `channels` and `closed`
    cdef gofer_pwa pwa              # the memfd all channel windows come from

    def __cinit__(self):
        if gofer_fdtable_init(&self.fds):
            raise MemoryError()
        self.fast.fds = &self.fds
        self.fast.release = fd_release_nogil

    def __dealloc__(self):
        gofer_fdtable_destroy(&self.fds)

    def __init__(self, Server server not None, ConnectionImpl impl not None,
                 ConnectionOpts opts=None, mount_path="/"):
        if opts is None:
            opts = ConnectionOpts()
        self.server = server
        self.impl = impl
        self.opts = opts
        mp = os.path.normpath(os.fsencode(mount_path))
        if not mp.startswith(b"/"):
            raise ValueError("mount path must be absolute: %r" % (mount_path,))
        self.mount_path = mp
        self.max_msg = opts.max_message_size
        self.readonly = opts.readonly
        self.fast.rename_lock = &server.tree.rename_lock
        self.fast.max_msg = self.max_msg
        self.fast.max_fds = opts.max_fds
        self.fast.readonly = opts.readonly
        self.fast.open_on_deleted = opts.open_on_deleted
        self.sock = -1
        self.trace = log.isEnabledFor(logging.DEBUG)
        self.channels = []
        self.channels_lock = _thread.allocate_lock()
        self.pwa.fd = -1
        mids = opts.supported_messages
        if mids is None:
            # Mount and Channel are the core's; the backend lists the rest.
            mids = set(impl.supported_messages()) | {_wire.MOUNT} | TRANSPORT_MIDS
        mids = sorted(set(int(m) for m in mids))
        if _wire.MOUNT not in mids:
            raise ValueError("a connection must support Mount")
        for m in mids:
            if not 0 < m <= MAX_MID:
                raise ValueError("unknown message id %d" % m)
            self.supported[m] = True
        self.supported_list = mids

    # ------------------------------------------------------------ FD table

    cdef uint64_t add_fd(self, FD fd, int host_fd, gofer_node* node) except 0:
        """Gives `fd` (whose references are already taken) an FDID, with the
        host FD the fast path may use and the node whose lock it takes; past
        the connection's limit it is released and EMFILE raised."""
        fd.c.host_fd = host_fd
        fd.c.node = node
        cdef int rc = gofer_fdtable_add(&self.fds, fd.c, self.opts.max_fds)
        if rc < 0:
            fd.refs = 1
            fd_decref(fd)
            if rc == -E.EMFILE:
                raise OSError(E.EMFILE, "too many open FDs on this connection")
            raise MemoryError()
        fd.refs += 1
        Py_INCREF(fd)                   # the table's, dropped by fd_release
        return fd.c.id

    cdef ControlFD new_control_fd(self, gofer_node* node, ControlFDImpl impl, uint16_t mode):
        """Wraps `impl` at `node` (a reference on node already taken)."""
        cdef ControlFD fd = ControlFD.__new__(ControlFD)
        fd.node = node
        fd.impl = impl
        fd.ftype = mode & S_IFMT
        fd.c.kind = GOFER_FD_CONTROL
        fd.c.ftype = fd.ftype
        fd.c.is_dir = fd.is_dir()
        cdef int host_fd = impl.c_host_fd()
        if host_fd >= 0:
            fd.c.reopen_dir = impl.c_reopen_dir()
            if fd.is_dir():
                fd.c.host_tree = impl.c_host_tree()
        self.add_fd(fd, host_fd, node)
        return fd

    cdef int remove_fd(self, uint64_t fdid) except -1:
        cdef gofer_fd* c = gofer_fdtable_remove(&self.fds, fdid)
        if c != NULL and gofer_fd_unuse(c):
            fd_release(c)
        return 0

    cdef FD lookup(self, uint64_t fdid, type kind, int* err, Out* o):
        """The FD `fdid` if it is of `kind` (else None with EBADF/EINVAL in
        err), referenced in `o` until the request is answered (None: kind
        not checked). Holding the GIL, no Close can release it meanwhile."""
        cdef gofer_fd* c = gofer_fdtable_get(&self.fds, fdid)
        if c != NULL and c.owner == NULL:
            # Made by the fast path since this request began: adopt it now.
            self.adopt_pending()
            c = gofer_fdtable_get(&self.fds, fdid)
        if c == NULL or c.owner == NULL:
            err[0] = E.EBADF
            return None
        fd = <FD>c.owner
        if kind is not None and type(fd) is not kind:
            err[0] = E.EINVAL
            return None
        hold(o, <FD>fd)
        return <FD>fd

    cdef void release_deferred(self) noexcept:
        """Releases the FDs whose last use a GIL-free Close dropped."""
        cdef gofer_fd* c = gofer_fdtable_take_deferred(&self.fds)
        cdef gofer_fd* rest
        while c != NULL:
            rest = c.next_deferred      # read first: the release may free c
            fd_release(c)
            c = rest

    cdef void adopt_pending(self) noexcept:
        """Gives the FDs the fast path made (OpenAt, Walk) their FD objects."""
        cdef gofer_fd* c = gofer_fdtable_take_adoptions(&self.fds)
        cdef gofer_fd* rest
        while c != NULL:
            rest = c.next_adoption
            self.adopt(c)
            if gofer_fd_unuse(c):       # the queue's
                fd_release(c)
            c = rest

    cdef void adopt(self, gofer_fd* c) noexcept:
        """The FD object for entry c, with the impl its backend makes of c's
        host FD: an OpenFD from its control FD's c_adopt_open, or a ControlFD
        from its directory's c_adopt_walk (adopted first if need be: a walk
        queues each directory before what it walks to). The entry's use of
        that FD is then dropped: an OpenFD references its control FD, and a
        node its parent. Should that fail, c leaves the table and is
        released as it is (fd_release)."""
        if c.owner != NULL:
            return                      # adopted already, as a directory
        cdef gofer_fd* control = c.control
        if control.owner == NULL:
            self.adopt(control)
        cdef ControlFD cfd = <ControlFD>control.owner
        cdef FD fd
        try:
            if cfd is None:
                raise RuntimeError("its directory could not be adopted")
            if c.kind == GOFER_FD_OPEN:
                impl = cfd.impl.c_adopt_open(c.host_fd)
                if not isinstance(impl, OpenFDImpl):
                    raise TypeError("c_adopt_open gave %s" % type(impl).__name__)
                fd = OpenFD.__new__(OpenFD)
                (<OpenFD>fd).impl = <OpenFDImpl>impl
                (<OpenFD>fd).control = cfd
                cfd.refs += 1
            else:
                impl = cfd.impl.c_adopt_walk(c.host_fd, c.ftype)
                if not isinstance(impl, ControlFDImpl):
                    raise TypeError("c_adopt_walk gave %s" % type(impl).__name__)
                fd = ControlFD.__new__(ControlFD)
                (<ControlFD>fd).impl = <ControlFDImpl>impl
                (<ControlFD>fd).node = c.node       # with the entry's reference
                (<ControlFD>fd).ftype = c.ftype
        except BaseException:
            log.exception("adopting FD %d", c.id)
            if gofer_fdtable_remove(&self.fds, c.id) == c:
                gofer_fd_unuse(c)       # the table's; the queue's is the caller's
            return
        free(fd.c)
        fd.c = c
        c.owner = <void*>fd
        c.control = NULL
        fd.refs = 1                     # the table's
        Py_INCREF(fd)                   # the table's, dropped by fd_release
        if gofer_fd_unuse(control):
            fd_release(control)

    def close_all(self):
        """Releases every FD of this connection (at teardown)."""
        cdef size_t cap, i
        self.adopt_pending()
        cdef gofer_fd** slot = gofer_fdtable_take_all(&self.fds, &cap)
        for i in range(cap):
            if slot[i] != NULL and gofer_fd_unuse(slot[i]):
                fd_release(slot[i])
        free(slot)
        self.release_deferred()

    @property
    def fd_count(self):
        return gofer_fdtable_count(&self.fds)

    @property
    def fds_to_adopt(self):
        """FDs the fast path made that wait for their FD objects."""
        return gofer_fdtable_nadoptions(&self.fds)

    # ------------------------------------------------------------ dispatch

    cdef uint16_t dispatch(self, uint16_t mid, const char* req, Py_ssize_t n, Out* o) noexcept:
        """Handles one request; writes the response payload to `o`. Returns
        the response MID (0 = Error, with the errno written as payload)."""
        cdef Reader r
        cdef int err, i
        cdef uint64_t start = gofer_now_ns() if self.trace else 0
        self.adopt_pending()
        self.release_deferred()
        r.buf = req
        r.len = n
        r.pos = 0
        o.w.len = 0
        o.nfds = 0
        o.nheld = 0
        if n > self.max_msg:
            err = E.EIO
        elif mid > MAX_MID or not self.supported[mid]:
            err = E.EOPNOTSUPP
        elif not self.mounted and mid != MID_MOUNT:
            err = E.EINVAL          # Mount comes before anything else
        else:
            try:
                err = self.handle(mid, &r, o)
            except BaseException as exc:
                err = errno_of(exc, mid)
            release_held(o)
        if self.trace:
            trace_request(mid, req, n, err, start)
        if err == 0:
            if mid != MID_CHANNEL:      # a channel's FDs are the transport's own
                for i in range(o.nfds):
                    prepare_donated(o.fds[i])
            return mid
        while o.nfds > 0:
            o.nfds -= 1
            close(o.fds[o.nfds])
        o.w.len = 0
        lisafs_st32(o.w.buf, err)
        o.w.len = 4
        return 0

    cdef int handle(self, uint16_t mid, Reader* r, Out* o) except -1:
        # The one place of the readonly rule; dispatch checked mid <= MAX_MID.
        if self.readonly and MUTATING[mid]:
            return E.EROFS
        return HANDLERS[mid](self, r, o)

    cdef uint64_t add_open_fd(self, ControlFD cfd, impl, uint32_t acc) except 0:
        if not isinstance(impl, OpenFDImpl):
            raise TypeError("expected an OpenFDImpl, got %s" % type(impl).__name__)
        cdef OpenFD ofd = OpenFD.__new__(OpenFD)
        ofd.control = cfd
        cfd.refs += 1
        ofd.impl = <OpenFDImpl>impl
        ofd.c.readable = acc == O_RDONLY or acc == O_RDWR
        ofd.c.writable = acc == O_WRONLY or acc == O_RDWR
        ofd.c.kind = GOFER_FD_OPEN
        ofd.c.is_dir = cfd.is_dir()
        return self.add_fd(ofd, ofd.impl.c_host_fd(), cfd.node)

    cdef uint64_t add_bound_socket_fd(self, ControlFD cfd, impl) except 0:
        if not isinstance(impl, BoundSocketFDImpl):
            raise TypeError("expected a BoundSocketFDImpl, got %s" % type(impl).__name__)
        cdef BoundSocketFD b = BoundSocketFD.__new__(BoundSocketFD)
        b.control = cfd
        cfd.refs += 1
        b.impl = <BoundSocketFDImpl>impl
        b.c.kind = GOFER_FD_BOUND
        return self.add_fd(b, -1, cfd.node)

    def shutdown(self):
        """Ends serve() from another thread, before or while it runs, by
        shutting its socket down. Under channels_lock: serve() closes that
        socket only after marking the connection closed under it, so the FD
        number cannot be another file's by then."""
        with self.channels_lock:
            if not self.closed and self.sock >= 0:
                shutdown_socket(self.sock)
            self.closed = True

    cdef int serve_fast(self, uint16_t mid, const char* req, Py_ssize_t n, Out* o) noexcept nogil:
        """The response MID of a request the fast path served without the
        GIL (native/fastpath.h), or -1: dispatch() must handle it."""
        cdef size_t outlen
        cdef int rmid
        if not self.mounted or self.trace or n > self.max_msg or mid > MAX_MID or \
                not self.supported[mid] or (self.readonly and MUTATING[mid]):
            return -1
        cdef int donated
        rmid = gofer_fast_handle(&self.fast, mid, req, n, o.w.buf, o.w.cap, &outlen, &donated)
        if rmid != GOFER_FAST_DECLINED:
            o.w.len = outlen
            o.nfds = 0
            if donated >= 0:
                o.fds[0] = donated
                o.nfds = 1
        return rmid

    # ------------------------------------------------------------ transport

    def serve(self, int sock):
        """Serves requests on a connected AF_UNIX SOCK_STREAM socket until EOF;
        then releases every FD of the connection. Takes ownership of `sock`."""
        # The request and response buffers: pages of their own, unmapped at
        # the end (glibc would keep freed 2 MiB blocks resident in the
        # thread's arena), touched only as far as messages reach.
        cdef size_t size = self.max_msg + 8
        cdef void* bufs = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if bufs == MAP_FAILED:
            raise MemoryError()
        cdef char* req = <char*>bufs
        cdef char* resp = req + size
        cdef Out o
        cdef uint32_t plen
        cdef uint16_t mid, rmid
        o.w.buf = resp + 8
        o.w.cap = self.max_msg
        o.w.growable = False
        cdef gofer_spin spin
        gofer_spin_init(&spin, SPIN_NS)
        cdef int rc = 0
        send_buffer_for(sock, size)
        with self.channels_lock:
            self.sock = sock
            if self.closed:
                rc = 1                  # shut down before it began
        try:
            # Without the GIL but for what the fast path declines.
            with nogil:
                while rc == 0:
                    if sock_read(sock, req, 8, &spin) <= 0:
                        break
                    plen = lisafs_ld32(req)
                    mid = lisafs_ld16(req + 4)
                    if plen > self.max_msg:
                        # Consume the payload so the stream stays in step,
                        # then refuse it (gVisor does the same).
                        if sock_discard(sock, req, self.max_msg, plen) <= 0:
                            break
                    elif plen and sock_read(sock, req, plen) <= 0:
                        break
                    rc = self.serve_fast(mid, req, plen, &o)
                    if rc < 0:
                        with gil:
                            rc = self.dispatch(mid, req, plen, &o)
                    rmid = <uint16_t>rc
                    lisafs_st32(resp, <uint32_t>o.w.len)
                    lisafs_st16(resp + 4, rmid)
                    lisafs_st16(resp + 6, 0)
                    rc = sock_write(sock, resp, 8 + o.w.len, o.fds, o.nfds)
                    while o.nfds > 0:
                        o.nfds -= 1
                        close(o.fds[o.nfds])
        finally:
            munmap(bufs, 2 * size)
            close_channels(self)
            self.close_all()
            self.sock = -1
            close(sock)
