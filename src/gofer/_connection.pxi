# Included into _server.pyx. One connection: FD table, dispatch, handlers.
cdef inline int check_safe_name(const char* p, uint16_t n) noexcept:
    """0 for a single path component; EINVAL for "", ".", "..", "/" or NUL."""
    if n == 0 or memchr(p, b'/', n) != NULL or memchr(p, 0, n) != NULL:
        return E.EINVAL
    if p[0] == b'.' and (n == 1 or (n == 2 and p[1] == b'.')):
        return E.EINVAL
    return 0


cdef int check_string_array(Reader* r, uint16_t count) except -1:
    """Bounds-checks a whole StringArray before any of it is acted on, as
    gVisor decodes a request completely first."""
    cdef Py_ssize_t save = r.pos
    cdef uint16_t i, n
    for i in range(count):
        r_str(r, &n)
    r.pos = save
    return 0


cdef inline void w_inode(Writer* w, uint64_t fdid, lisafs_statx* st) except *:
    cdef char* p = w_reserve(w, sizeof(lisafs_inode))
    lisafs_st64(p, fdid)
    memcpy(p + 8, st, sizeof(lisafs_statx))


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


# ---------------------------------------------------------------- connection

cdef class Connection:
    """One LISAFS connection: an FD table over one mount of the server tree."""
    cdef readonly Server server
    cdef readonly ConnectionImpl impl
    cdef readonly ConnectionOpts opts
    cdef readonly bytes mount_path
    cdef dict fds
    cdef uint64_t next_fdid
    cdef uint32_t max_msg
    cdef bint supported[MAX_MID + 1]
    cdef readonly list supported_list
    cdef int sock
    cdef bint closed
    cdef bint mounted
    cdef bint trace                 # log every request (--log-level debug)
    cdef list channels
    cdef object channels_lock       # guards `channels` and `closed`
    cdef gofer_pwa pwa              # the memfd all channel windows come from

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
        self.fds = {}
        self.next_fdid = 1
        self.max_msg = opts.max_message_size
        self.sock = -1
        self.trace = log.isEnabledFor(logging.DEBUG)
        self.channels = []
        self.channels_lock = threading.Lock()
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

    cdef uint64_t add_fd(self, FD fd) except 0:
        """Gives `fd` (whose references are already taken) an FDID; past the
        connection's limit it is released and EMFILE raised."""
        if len(self.fds) >= self.opts.max_fds:
            fd.refs = 1
            fd_decref(fd)
            raise OSError(E.EMFILE, "too many open FDs on this connection")
        fd.id = self.next_fdid
        self.next_fdid += 1
        fd.refs += 1
        self.fds[fd.id] = fd
        return fd.id

    cdef ControlFD new_control_fd(self, Node node, ControlFDImpl impl, uint16_t mode):
        """Wraps `impl` at `node` (a reference on node already taken)."""
        cdef ControlFD fd = ControlFD.__new__(ControlFD)
        fd.node = node
        fd.impl = impl
        fd.ftype = mode & S_IFMT
        self.add_fd(fd)
        return fd

    cdef int remove_fd(self, uint64_t fdid) except -1:
        fd = self.fds.pop(fdid, None)
        if fd is not None:
            fd_decref(<FD>fd)
        return 0

    cdef FD lookup(self, uint64_t fdid, type kind, int* err, Out* o):
        """The FD `fdid` if it is of `kind` (else None with EBADF/EINVAL in
        err), referenced in `o` until the request is answered (None: kind
        not checked)."""
        fd = self.fds.get(fdid)
        if fd is None:
            err[0] = E.EBADF
            return None
        if kind is not None and type(fd) is not kind:
            err[0] = E.EINVAL
            return None
        hold(o, <FD>fd)
        return <FD>fd

    def close_all(self):
        """Releases every FD of this connection (at teardown)."""
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            fd_decref(<FD>fd)

    @property
    def fd_count(self):
        return len(self.fds)

    # ------------------------------------------------------------ dispatch

    cdef uint16_t dispatch(self, uint16_t mid, const char* req, Py_ssize_t n, Out* o) noexcept:
        """Handles one request; writes the response payload to `o`. Returns
        the response MID (0 = Error, with the errno written as payload)."""
        cdef Reader r
        cdef int err, i
        cdef uint64_t start = gofer_now_ns() if self.trace else 0
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
        elif not self.mounted and mid != _wire.MOUNT:
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
            if mid != _wire.CHANNEL:    # a channel's FDs are the transport's own
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
        # The hot RPCs decode in place; the rest go through the table codec.
        if mid == _wire.FSTAT:
            return self.h_fstat(r, o)
        if mid == _wire.WALK:
            return self.h_walk(r, o)
        if mid == _wire.PREAD:
            return self.h_pread(r, o)
        if mid == _wire.PWRITE:
            return self.h_pwrite(r, o)
        if mid == _wire.WALK_STAT:
            return self.h_walk_stat(r, o)
        if mid == _wire.OPEN_AT:
            return self.h_open_at(r, o)
        if mid == _wire.CLOSE:
            return self.h_close(r, o)
        if mid == _wire.GETDENTS64:
            return self.h_getdents64(r, o)
        if mid == _wire.MOUNT:
            return self.h_mount(r, o)
        if self.opts.readonly and mid in MUTATING:
            return E.EROFS
        req = _wire.decode_request(mid, PyBytes_FromStringAndSize(r.buf, r.len))
        return self.handle_cold(mid, req, o)

    # ------------------------------------------------------------ handlers

    cdef int h_mount(self, Reader* r, Out* o) except -1:
        cdef lisafs_statx st
        cdef int host_fd = -1
        cdef Node node = self.server.root
        cdef Node prev
        cdef ControlFD fd
        node.refs += 1
        for part in self.mount_path.split(b"/"):
            if part:
                prev = node
                node = node_child(node, part)
                node_decref(prev)
        try:
            rlock(&self.server.rename_lock)
            rlock(&node.op_lock)
            try:
                res = self.impl.mount()
                if isinstance(res, tuple):      # (root, host_fd or None)
                    res, donated = res
                    host_fd = -1 if donated is None else donated
                if not isinstance(res, ControlFDImpl):
                    raise TypeError("mount() must return a ControlFDImpl")
                (<ControlFDImpl>res).c_stat(&st)
            finally:
                unlock(&node.op_lock)
                unlock(&self.server.rename_lock)
        except BaseException:
            node_decref(node)
            if host_fd >= 0:
                close(host_fd)
            raise
        fd = self.new_control_fd(node, <ControlFDImpl>res, st.mode)
        self.mounted = True
        w_inode(&o.w, fd.id, &st)
        w_u32(&o.w, self.max_msg)
        w_u16(&o.w, len(self.supported_list))
        for m in self.supported_list:
            w_u16(&o.w, m)
        if host_fd >= 0:
            o.fds[0] = host_fd
            o.nfds = 1
        return 0

    cdef int h_fstat(self, Reader* r, Out* o) except -1:
        cdef uint64_t fdid = r_u64(r)
        cdef lisafs_statx st
        cdef FD fd
        cdef Node node
        cdef int err = 0
        fd = self.lookup(fdid, None, &err, o)
        if fd is None:
            return err
        if isinstance(fd, ControlFD):
            node = (<ControlFD>fd).node
        elif isinstance(fd, OpenFD):
            node = (<OpenFD>fd).control.node
        else:
            return E.EINVAL
        rlock(&self.server.rename_lock)
        rlock(&node.op_lock)
        try:
            if isinstance(fd, ControlFD):
                (<ControlFD>fd).impl.c_stat(&st)
            else:
                (<OpenFD>fd).impl.c_stat(&st)
        finally:
            unlock(&node.op_lock)
            unlock(&self.server.rename_lock)
        memcpy(w_reserve(&o.w, sizeof(st)), &st, sizeof(st))
        return 0

    cdef int h_walk(self, Reader* r, Out* o) except -1:
        cdef int err = 0
        cdef ControlFD cur = <ControlFD>self.lookup(r_u64(r), ControlFD, &err, o)
        if cur is None:
            return err
        if not cur.is_dir():
            return E.ENOTDIR
        cdef uint16_t count = r_u16(r), i, n
        cdef const char* p
        cdef lisafs_statx st
        cdef uint8_t status = _wire.WALK_SUCCESS
        cdef uint16_t walked = 0
        cdef Node node
        if 3 + <Py_ssize_t>count * sizeof(lisafs_inode) > self.max_msg:
            return E.EIO
        check_string_array(r, count)
        cdef Py_ssize_t start = o.w.len
        w_u8(&o.w, 0)
        w_u16(&o.w, 0)
        created = []
        rlock(&self.server.rename_lock)
        try:
            for i in range(count):
                p = r_str(r, &n)
                err = check_safe_name(p, n)
                if err:
                    break
                if cur.ftype == S_IFLNK:
                    status = _wire.WALK_COMPONENT_SYMLINK
                    break
                name = PyBytes_FromStringAndSize(p, n)
                rlock(&cur.node.op_lock)
                try:
                    if cur.node.deleted:
                        child = None
                    else:
                        child = cur.impl.c_walk(name, &st)
                finally:
                    unlock(&cur.node.op_lock)
                if child is None:
                    status = _wire.WALK_COMPONENT_DOES_NOT_EXIST
                    break
                node = node_child(cur.node, name)
                cur = self.new_control_fd(node, <ControlFDImpl>child, st.mode)
                created.append(cur.id)
                w_inode(&o.w, cur.id, &st)
                walked += 1
        except BaseException:
            err = -1
            raise
        finally:
            unlock(&self.server.rename_lock)
            if err:
                for fdid in created:
                    self.remove_fd(fdid)
        if err:
            return err
        (o.w.buf + start)[0] = <char>status
        lisafs_st16(o.w.buf + start + 1, walked)
        return 0

    cdef int h_walk_stat(self, Reader* r, Out* o) except -1:
        cdef int err = 0
        cdef ControlFD start = <ControlFD>self.lookup(r_u64(r), ControlFD, &err, o)
        if start is None:
            return err
        cdef uint16_t count = r_u16(r), i, n
        cdef const char* p
        cdef lisafs_statx st
        cdef uint16_t nstats = 0
        cdef Py_ssize_t save = r.pos
        if 2 + <Py_ssize_t>count * sizeof(lisafs_statx) > self.max_msg:
            return E.EIO
        check_string_array(r, count)
        # A path of exactly [""] asks for the stat of a non-directory.
        if count >= 1:
            p = r_str(r, &n)
            r.pos = save
            if not start.is_dir() and not (count == 1 and n == 0):
                return E.ENOTDIR
        elif not start.is_dir():
            return E.ENOTDIR
        cdef Py_ssize_t hdr = o.w.len
        w_u16(&o.w, 0)
        cdef ControlFDImpl cur = start.impl
        cdef ControlFDImpl owned = None     # an intermediate impl we must close
        cdef uint16_t ftype = start.ftype
        cdef Node node = start.node
        rlock(&self.server.rename_lock)
        try:
            for i in range(count):
                p = r_str(r, &n)
                if i == 0 and n == 0:
                    rlock(&node.op_lock)
                    try:
                        cur.c_stat(&st)
                    finally:
                        unlock(&node.op_lock)
                    memcpy(w_reserve(&o.w, sizeof(st)), &st, sizeof(st))
                    nstats += 1
                    continue
                err = check_safe_name(p, n)
                if err:
                    break
                if ftype != S_IFDIR or (node is not None and node.deleted):
                    break
                name = PyBytes_FromStringAndSize(p, n)
                if node is not None:
                    rlock(&node.op_lock)
                try:
                    child = cur.c_walk(name, &st)
                finally:
                    if node is not None:
                        unlock(&node.op_lock)
                if owned is not None:
                    owned.c_close()
                    owned = None
                if child is None:
                    break
                owned = cur = <ControlFDImpl>child
                memcpy(w_reserve(&o.w, sizeof(st)), &st, sizeof(st))
                nstats += 1
                ftype = st.mode & S_IFMT
                if ftype == S_IFLNK:
                    break
                # Deeper nodes may exist in the tree with a deleted mark.
                node = node.children.get(name) if node is not None else None
        finally:
            unlock(&self.server.rename_lock)
            if owned is not None:
                owned.c_close()
        if err:
            return err
        lisafs_st16(o.w.buf + hdr, nstats)
        return 0

    cdef int h_open_at(self, Reader* r, Out* o) except -1:
        cdef int err = 0
        cdef uint64_t fdid = r_u64(r)
        cdef uint32_t flags = r_u32(r) & OPEN_FLAGS_MASK
        cdef uint32_t acc = flags & O_ACCMODE
        cdef int host_fd = -1
        if self.opts.readonly and (acc != O_RDONLY or flags & O_TRUNC):
            return E.EROFS              # before the FD lookup, as gVisor
        cdef ControlFD cfd = <ControlFD>self.lookup(fdid, ControlFD, &err, o)
        if cfd is None:
            return err
        if cfd.ftype == S_IFDIR and (acc != O_RDONLY or flags & O_TRUNC):
            return E.EISDIR
        if cfd.ftype == S_IFLNK:
            return E.EINVAL
        rlock(&self.server.rename_lock)
        rlock(&cfd.node.op_lock)
        try:
            if cfd.node.deleted and not self.opts.open_on_deleted:
                return E.EINVAL
            impl = cfd.impl.c_open(flags, &host_fd)
        finally:
            unlock(&cfd.node.op_lock)
            unlock(&self.server.rename_lock)
        if host_fd >= 0:
            o.fds[0] = host_fd          # closed by dispatch if what follows fails
            o.nfds = 1
        w_u64(&o.w, self.add_open_fd(cfd, impl, acc))
        return 0

    cdef int h_close(self, Reader* r, Out* o) except -1:
        cdef uint16_t n = r_u16(r), i
        r_need(r, 8 * <Py_ssize_t>n)
        for i in range(n):
            self.remove_fd(r_u64(r))
        return 0

    cdef int h_pread(self, Reader* r, Out* o) except -1:
        cdef int err = 0
        cdef int64_t offset = <int64_t>r_u64(r)
        cdef OpenFD fd = <OpenFD>self.lookup(r_u64(r), OpenFD, &err, o)
        cdef uint32_t count = r_u32(r)
        if fd is None:
            return err
        if not fd.readable:
            return E.EBADF
        if 8 + <uint64_t>count > self.max_msg:
            return E.ENOBUFS
        if offset < 0:
            return E.EINVAL             # see OFF_MAX
        cdef char* hdr = w_reserve(&o.w, 8 + <Py_ssize_t>count)
        cdef Node node = fd.control.node
        cdef Py_ssize_t got
        rlock(&self.server.rename_lock)
        rlock(&node.op_lock)
        try:
            got = fd.impl.c_read(hdr + 8, count, offset)
        finally:
            unlock(&node.op_lock)
            unlock(&self.server.rename_lock)
        lisafs_st64(hdr, got)
        o.w.len -= count - got
        return 0

    cdef int h_pwrite(self, Reader* r, Out* o) except -1:
        if self.opts.readonly:
            return E.EROFS
        cdef int err = 0
        cdef int64_t offset = <int64_t>r_u64(r)
        cdef OpenFD fd = <OpenFD>self.lookup(r_u64(r), OpenFD, &err, o)
        cdef uint32_t count = r_u32(r)
        cdef const char* data = r_bytes(r, count)
        if fd is None:
            return err
        if not fd.writable:
            return E.EBADF
        if offset < 0:
            return E.EINVAL             # see OFF_MAX
        cdef Node node = fd.control.node
        cdef Py_ssize_t done
        rlock(&self.server.rename_lock)
        wlock(&node.op_lock)
        try:
            done = fd.impl.c_write(data, count, offset)
        finally:
            unlock(&node.op_lock)
            unlock(&self.server.rename_lock)
        w_u64(&o.w, done)
        return 0

    cdef int h_getdents64(self, Reader* r, Out* o) except -1:
        cdef int err = 0
        cdef OpenFD fd = <OpenFD>self.lookup(r_u64(r), OpenFD, &err, o)
        cdef int32_t count = <int32_t>r_u32(r)
        if fd is None:
            return err
        if not fd.control.is_dir():
            return E.ENOTDIR
        cdef bint seek0 = count < 0
        if seek0:
            count = -count if count != -2147483648 else 2147483647
        # Bound the host read by what a response could ever carry.
        if <uint32_t>count > self.max_msg:
            count = self.max_msg
        cdef Node node = fd.control.node
        rlock(&self.server.rename_lock)
        rlock(&node.op_lock)
        try:
            if node.deleted:
                return E.EINVAL
            fd.impl.c_getdents64(&o.w, count, seek0)
        finally:
            unlock(&node.op_lock)
            unlock(&self.server.rename_lock)
        return 0

    # ------------------------------------------------------------ cold handlers
    # Each takes the decoded request dict, enforces gVisor's protocol rules
    # (handlers.go), calls the implementation under the right node locks and
    # writes the response. Returns 0 or an errno.

    cdef FD need(self, uint64_t fdid, type kind, Out* o):
        """lookup() that raises the errno instead of returning None."""
        cdef int err = 0
        cdef FD fd = self.lookup(fdid, kind, &err, o)
        if fd is None:
            raise OSError(err, os.strerror(err))
        return fd

    cdef ControlFD directory(self, uint64_t fdid, name, Out* o):
        """The directory ControlFD for a create/unlink of `name`."""
        cdef const char* p = name
        if check_safe_name(p, len(name)):
            raise OSError(E.EINVAL, "unsafe name")
        cdef ControlFD d = <ControlFD>self.need(fdid, ControlFD, o)
        if not d.is_dir():
            raise OSError(E.ENOTDIR, os.strerror(E.ENOTDIR))
        return d

    cdef ControlFD new_child(self, ControlFD parent, bytes name, res, lisafs_statx* st):
        """Registers an implementation's (ControlFDImpl, Statx) for a new child."""
        child, stx = res
        if not isinstance(child, ControlFDImpl):
            raise TypeError("expected a ControlFDImpl, got %s" % type(child).__name__)
        _statx_out(stx, st)
        return self.new_control_fd(node_child(parent.node, name), <ControlFDImpl>child, st.mode)

    cdef int handle_cold(self, uint16_t mid, dict q, Out* o) except -1:
        cdef ControlFD d, f, t
        cdef OpenFD of
        cdef lisafs_statx st
        cdef Node node
        cdef int host_fd = -1, lookup_err = 0
        if mid == _wire.CHANNEL:
            return self.h_channel(o)

        if mid == _wire.SETSTAT:
            f = <ControlFD>self.need(q["fd"], ControlFD, o)
            if q["mask"] & ~SETSTAT_MASK:
                return E.EPERM
            with Guard(self.server, f.node, WRITE):
                if f.node.deleted and not self.opts.set_attr_on_deleted:
                    return E.EINVAL
                try:
                    res = f.impl.set_stat(q["mask"], q["mode"], q["uid"], q["gid"], q["size"],
                                          (q["atime_sec"], q["atime_nsec"]),
                                          (q["mtime_sec"], q["mtime_nsec"]))
                except OSError as e:
                    res = (q["mask"], errno_of(e, mid))
            mask, err = res if res else (0, 0)
            w_u32(&o.w, mask)
            w_u32(&o.w, err)
            return 0

        if mid in (_wire.OPEN_CREATE_AT, _wire.MKDIR_AT, _wire.MKNOD_AT, _wire.SYMLINK_AT,
                   _wire.BIND_AT):
            d = self.directory(q["dir_fd"], q["name"], o)
            with Guard(self.server, d.node, WRITE):
                if d.node.deleted:
                    return E.EINVAL
                if mid == _wire.OPEN_CREATE_AT:
                    res = d.impl.open_create(q["mode"], q["uid"], q["gid"], q["name"],
                                             q["flags"] & OPEN_FLAGS_MASK)
                elif mid == _wire.MKDIR_AT:
                    res = d.impl.mkdir(q["mode"], q["uid"], q["gid"], q["name"])
                elif mid == _wire.MKNOD_AT:
                    res = d.impl.mknod(q["mode"], q["uid"], q["gid"], q["name"],
                                       q["minor"], q["major"])
                elif mid == _wire.SYMLINK_AT:
                    if b"\0" in q["target"]:
                        return E.EINVAL     # not a C string: what symlinkat(2) would say
                    res = d.impl.symlink(q["name"], q["target"], q["uid"], q["gid"])
                else:
                    res = d.impl.bind_at(q["sock_type"], q["name"], q["mode"], q["uid"], q["gid"])
                if mid == _wire.OPEN_CREATE_AT or mid == _wire.BIND_AT:
                    # (child ControlFDImpl, Statx, open/bound impl, host FD)
                    child, stx, extra, fd = res
                    host_fd = -1 if fd is None else fd
                    if host_fd >= 0:
                        o.fds[0] = host_fd
                        o.nfds = 1
                    f = self.new_child(d, q["name"], (child, stx), &st)
                    w_inode(&o.w, f.id, &st)
                    if mid == _wire.OPEN_CREATE_AT:
                        w_u64(&o.w, self.add_open_fd(f, extra, q["flags"] & O_ACCMODE))
                    else:
                        if host_fd < 0:
                            raise OSError(E.EBADF, "bind_at() must return a host socket FD")
                        w_u64(&o.w, self.add_bound_socket_fd(f, extra))
                else:
                    f = self.new_child(d, q["name"], res, &st)
                    w_inode(&o.w, f.id, &st)
            return 0

        if mid == _wire.LINK_AT:
            d = self.directory(q["dir_fd"], q["name"], o)
            t = <ControlFD>self.need(q["target"], ControlFD, o)
            if t.is_dir():
                return E.EPERM
            with Guard(self.server, d.node, WRITE):
                with Guard(None, t.node, READ):
                    if d.node.deleted or t.node.deleted:
                        return E.EINVAL
                    res = t.impl.link(d.impl, q["name"])
                    f = self.new_child(d, q["name"], res, &st)
            w_inode(&o.w, f.id, &st)
            return 0

        if mid == _wire.UNLINK_AT:
            d = self.directory(q["dir_fd"], q["name"], o)
            with Guard(self.server, d.node, WRITE):
                if d.node.deleted:
                    return E.EINVAL
                child_node = d.node.children.get(q["name"])
                with Guard(None, child_node, WRITE):
                    d.impl.unlink(q["name"], q["flags"])
                    if child_node is not None:
                        node_detach(<Node>child_node)
                        node_mark_deleted(<Node>child_node)
            return 0

        if mid == _wire.RENAME_AT or mid == _wire.RENAME_AT2:
            return self.h_rename(q["old_dir"], q["old_name"], q["new_dir"], q["new_name"],
                                 q.get("flags", 0), o)

        if mid == _wire.FSYNC:
            first = 0
            for fdid in q["fds"]:
                try:
                    of = <OpenFD>self.need(fdid, OpenFD, o)
                    try:
                        with Guard(self.server, of.control.node, READ):
                            of.impl.sync()
                    finally:
                        release_held(o)          # one at a time: the list is unbounded
                except BaseException as e:
                    first = first or errno_of(e, mid)
            return first

        if mid == _wire.FALLOCATE or mid == _wire.FLUSH:
            of = <OpenFD>self.need(q["fd"], OpenFD, o)
            if mid == _wire.FLUSH:
                with Guard(self.server, of.control.node, READ):
                    of.impl.flush()
                return 0
            if not of.writable:
                return E.EBADF
            with Guard(self.server, of.control.node, WRITE):
                if of.control.node.deleted and not self.opts.allocate_on_deleted:
                    return E.EINVAL
                # Offsets: see OFF_MAX. gVisor would truncate a mode beyond
                # 32 bits (fallocate's int); we refuse it instead.
                if q["mode"] > 0xffffffff or q["offset"] > OFF_MAX or q["length"] > OFF_MAX:
                    return E.EINVAL
                of.impl.allocate(q["mode"], q["offset"], q["length"])
            return 0

        if mid == _wire.LISTEN or mid == _wire.ACCEPT:
            bfd = self.lookup(q["fd"], BoundSocketFD, &lookup_err, o)
            if bfd is None:
                return lookup_err
            node = (<BoundSocketFD>bfd).control.node
            with Guard(self.server, node, READ):
                if node.deleted:
                    return E.EINVAL
                if mid == _wire.LISTEN:
                    (<BoundSocketFD>bfd).impl.listen(q["backlog"])
                    return 0
                host_fd, peer = (<BoundSocketFD>bfd).impl.accept()
            o.fds[0] = host_fd
            o.nfds = 1
            w_str(&o.w, peer, len(peer))
            return 0

        # The rest act on one ControlFD under a read (or, to mutate, write) lock.
        f = <ControlFD>self.need(q["fd"], ControlFD, o)
        if mid == _wire.READLINK_AT and f.ftype != S_IFLNK:
            return E.EINVAL
        if (mid == _wire.CONNECT or mid == _wire.CONNECT_WITH_CREDS) and f.ftype != S_IFSOCK:
            return E.ENOTSOCK
        with Guard(self.server, f.node, WRITE if mid in MUTATING else READ):
            if f.node.deleted and mid != _wire.FSTATFS:
                return E.EINVAL
            if mid in XATTR_NAMED and b"\0" in q["name"]:
                return E.EINVAL         # not a C string: what the host's xattr calls say
            if mid == _wire.FSTATFS:
                sfs = f.impl.statfs()
                for name in STATFS_FIELDS:
                    w_u64(&o.w, <uint64_t>getattr(sfs, name))
            elif mid == _wire.READLINK_AT:
                target = f.impl.readlink()
                w_str(&o.w, target, len(target))
            elif mid == _wire.CONNECT:
                o.fds[0] = f.impl.connect(q["sock_type"])
                o.nfds = 1
            elif mid == _wire.CONNECT_WITH_CREDS:
                o.fds[0] = f.impl.connect_with_creds(q["sock_type"], q["uid"], q["gid"])
                o.nfds = 1
            elif mid == _wire.FGETXATTR:
                value = f.impl.get_xattr(q["name"], q["buf_size"])
                if q["buf_size"] and len(value) > q["buf_size"]:
                    return E.ERANGE
                if len(value) > 0xffff:
                    return E.E2BIG          # beyond a SizedString (getxattr(2)'s E2BIG)
                w_str(&o.w, value, len(value))
            elif mid == _wire.FSETXATTR:
                f.impl.set_xattr(q["name"], q["value"], q["flags"])
            elif mid == _wire.FLISTXATTR:
                names = f.impl.list_xattr(q["size"])
                # As listxattr(2): a non-zero size too small for the NUL-
                # separated list is ERANGE.
                if q["size"] and sum(len(n) + 1 for n in names) > q["size"]:
                    return E.ERANGE
                w_u16(&o.w, len(names))
                for name in names:
                    w_str(&o.w, name, len(name))
            elif mid == _wire.FREMOVEXATTR:
                f.impl.remove_xattr(q["name"])
            else:
                return E.EOPNOTSUPP
        return 0

    cdef int h_channel(self, Out* o) except -1:
        # Under the lock teardown takes to set `closed` and collect the
        # channels (a Channel RPC may come over a channel, racing it): a
        # channel is either refused or recorded, its thread started, before
        # teardown looks, so none outlives the connection.
        with self.channels_lock:
            if self.closed:
                return E.ENOSYS
            return self.new_channel(o)

    cdef int new_channel(self, Out* o) except -1:
        cdef int64_t offset
        cdef uint64_t length
        cdef int pair[2]
        cdef int rc
        cdef Channel ch
        if len(self.channels) >= MAX_CHANNELS:
            return E.ENOMEM
        if self.pwa.fd < 0:
            rc = gofer_pwa_init(&self.pwa)
            if rc:
                return -rc
        rc = gofer_pwa_alloc(&self.pwa, FLIPCALL_HEADER + CHANNEL_HEADER + self.max_msg,
                             &offset, &length)
        if rc:
            return -rc
        ch = Channel.__new__(Channel)
        ch.conn = self
        rc = gofer_fc_init(&ch.ep, self.pwa.fd, offset, length)
        if rc:
            return -rc
        ch.mapped = True
        gofer_fc_set_spin_ns(&ch.ep, SPIN_NS)
        ch.req = <char*>malloc(self.max_msg)
        if ch.req == NULL:
            return E.ENOMEM
        rc = gofer_fdchan_pair(pair)
        if rc:
            return -rc
        ch.fdsock = pair[0]
        o.fds[1] = pair[1]
        o.fds[0] = dup(self.pwa.fd)
        o.nfds = 2
        if o.fds[0] < 0:
            o.fds[0] = pair[1]
            o.nfds = 1
            return E.EMFILE
        # The service thread waits for the client's handshake before the
        # response (with the FDs) is even sent.
        ch.thread = threading.Thread(target=ch.serve, daemon=True, name="gofer-channel")
        try:
            ch.thread.start()
        except RuntimeError:            # "can't start new thread": out of a resource
            ch.thread = None            # (it refers to ch: let ch go now, FDs and all)
            return E.ENOMEM
        self.channels.append(ch)
        w_u64(&o.w, <uint64_t>offset)
        w_u64(&o.w, length)
        return 0

    cdef void close_channels(self) noexcept:
        """Closes the connection to channels: no new one starts, and every
        one it has is woken, waited for and unmapped."""
        cdef Channel ch
        with self.channels_lock:
            self.closed = True
            chans, self.channels = self.channels, []
        for c in chans:
            (<Channel>c).shutdown()
        for c in chans:
            try:
                (<Channel>c).thread.join()
            except BaseException:
                continue
            (<Channel>c).release()
        if self.pwa.fd >= 0:
            gofer_pwa_destroy(&self.pwa)

    cdef uint64_t add_open_fd(self, ControlFD cfd, impl, uint32_t acc) except 0:
        if not isinstance(impl, OpenFDImpl):
            raise TypeError("expected an OpenFDImpl, got %s" % type(impl).__name__)
        cdef OpenFD ofd = OpenFD.__new__(OpenFD)
        ofd.control = cfd
        cfd.refs += 1
        ofd.impl = <OpenFDImpl>impl
        ofd.readable = acc == O_RDONLY or acc == O_RDWR
        ofd.writable = acc == O_WRONLY or acc == O_RDWR
        return self.add_fd(ofd)

    cdef uint64_t add_bound_socket_fd(self, ControlFD cfd, impl) except 0:
        if not isinstance(impl, BoundSocketFDImpl):
            raise TypeError("expected a BoundSocketFDImpl, got %s" % type(impl).__name__)
        cdef BoundSocketFD b = BoundSocketFD.__new__(BoundSocketFD)
        b.control = cfd
        cfd.refs += 1
        b.impl = <BoundSocketFDImpl>impl
        return self.add_fd(b)

    cdef int h_rename(self, uint64_t old_dir, bytes old_name, uint64_t new_dir,
                      bytes new_name, uint32_t flags, Out* o) except -1:
        cdef const char* p = old_name
        cdef const char* q = new_name
        if check_safe_name(p, len(old_name)) or check_safe_name(q, len(new_name)):
            return E.EINVAL
        cdef ControlFD od = <ControlFD>self.need(old_dir, ControlFD, o)
        cdef ControlFD nd = <ControlFD>self.need(new_dir, ControlFD, o)
        if not od.is_dir() or not nd.is_dir():
            return E.ENOTDIR
        with Guard(self.server, None, GLOBAL):
            if od.node.deleted or nd.node.deleted:
                return E.EINVAL
            if od.node is nd.node and old_name == new_name:
                return 0
            od.impl.rename_at(old_name, nd.impl, new_name, flags)
            # The host rename happened; make the tree say the same.
            replaced = nd.node.children.get(new_name)
            renamed = od.node.children.get(old_name)
            if replaced is not None:
                node_detach(<Node>replaced)
            if renamed is not None:
                node_detach(<Node>renamed)
            if replaced is not None:
                if flags & RENAME_EXCHANGE:
                    node_attach(<Node>replaced, od.node, old_name)
                else:
                    node_mark_deleted(<Node>replaced)
            if renamed is not None:
                node_attach(<Node>renamed, nd.node, new_name)
        return 0


    # ------------------------------------------------------------ transport

    def serve(self, int sock):
        """Serves requests on a connected AF_UNIX SOCK_STREAM socket until EOF;
        then releases every FD of the connection. Takes ownership of `sock`."""
        self.sock = sock
        cdef char* req = <char*>malloc(self.max_msg + 8)
        cdef char* resp = <char*>malloc(self.max_msg + 8)
        cdef Out o
        cdef uint32_t plen
        cdef uint16_t mid, rmid
        if req == NULL or resp == NULL:
            free(req); free(resp)
            raise MemoryError()
        o.w.buf = resp + 8
        o.w.cap = self.max_msg
        o.w.growable = False
        cdef gofer_spin spin
        gofer_spin_init(&spin, SPIN_NS)
        try:
            while True:
                if sock_read(sock, req, 8, &spin) <= 0:
                    break
                plen = lisafs_ld32(req)
                mid = lisafs_ld16(req + 4)
                if plen > self.max_msg:
                    # Consume the payload so the stream stays in step, then
                    # refuse it (gVisor does the same).
                    if sock_discard(sock, req, self.max_msg, plen) <= 0:
                        break
                    rmid = self.dispatch(mid, req, plen, &o)
                else:
                    if plen and sock_read(sock, req, plen) <= 0:
                        break
                    rmid = self.dispatch(mid, req, plen, &o)
                lisafs_st32(resp, <uint32_t>o.w.len)
                lisafs_st16(resp + 4, rmid)
                lisafs_st16(resp + 6, 0)
                err = sock_write(sock, resp, 8 + o.w.len, o.fds, o.nfds)
                while o.nfds > 0:
                    o.nfds -= 1
                    close(o.fds[o.nfds])
                if err < 0:
                    break
        finally:
            free(req)
            free(resp)
            self.close_channels()
            self.close_all()
            self.sock = -1
            close(sock)
