# Included into _server.pyx. One handler per message, found by MID in
# HANDLERS: each decodes its request in place with the bounds-checked Reader
# (the whole request before acting on any of it, as gVisor does), enforces
# gVisor's protocol rules (handlers.go) for every backend, calls the backend
# under its concurrency level (_locks.pxi) and writes its response to the
# Out. Each returns 0 or an errno; the readonly rule is applied before them
# (Connection.handle).

# A u64 offset or length above this is a negative off_t to the host, which
# refuses it with EINVAL (gVisor's fsgofer passes int64(x) on); the core
# answers that for every backend, so none ever sees a negative offset.
OFF_MAX = 0x7fffffffffffffff
STATFS_FIELDS = ("type", "block_size", "blocks", "blocks_free", "blocks_available", "files",
                 "files_free", "name_length")


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


cdef FD need(Connection conn, uint64_t fdid, type kind, Out* o):
    """lookup() that raises the errno instead of returning None."""
    cdef int err = 0
    cdef FD fd = conn.lookup(fdid, kind, &err, o)
    if fd is None:
        raise OSError(err, os.strerror(err))
    return fd


cdef ControlFD directory(Connection conn, uint64_t fdid, const char* name, uint16_t n, Out* o):
    """The directory ControlFD for a create/unlink of `name`."""
    if check_safe_name(name, n):
        raise OSError(E.EINVAL, "unsafe name")
    cdef ControlFD d = <ControlFD>need(conn, fdid, ControlFD, o)
    if not d.is_dir():
        raise OSError(E.ENOTDIR, os.strerror(E.ENOTDIR))
    return d


cdef ControlFD new_child(Connection conn, ControlFD parent, bytes name, res, Out* o):
    """Registers an implementation's (ControlFDImpl, Statx) for a new child
    and writes its Inode."""
    cdef lisafs_statx st
    child, stx = res
    if not isinstance(child, ControlFDImpl):
        raise TypeError("expected a ControlFDImpl, got %s" % type(child).__name__)
    _statx_out(stx, &st)
    cdef ControlFD f = conn.new_control_fd(node_child(parent.node, name), <ControlFDImpl>child,
                                           st.mode)
    w_inode(&o.w, f.c.id, &st)
    return f


cdef ControlFD new_open_child(Connection conn, ControlFD parent, bytes name, res, Out* o):
    """new_child() for OpenCreateAt and BindAt, whose backends answer
    (ControlFDImpl, Statx, open or bound impl, host FD or None): the host
    FD, if any, is donated (o.nfds 1)."""
    child, stx, extra, fd = res
    cdef int host_fd = -1 if fd is None else fd
    if host_fd >= 0:
        o.fds[0] = host_fd              # closed by dispatch if what follows fails
        o.nfds = 1
    return new_child(conn, parent, name, (child, stx), o)


cdef uint64_t r_create(Reader* r, uint32_t* uid, uint32_t* gid, uint16_t* mode) except? 0:
    """The header of OpenCreateAt, MkdirAt, MknodAt and BindAt: the
    directory's FDID, uid, gid, mode and padding."""
    cdef uint64_t dir_fd = r_u64(r)
    uid[0] = r_u32(r)
    gid[0] = r_u32(r)
    mode[0] = r_u16(r)
    r_bytes(r, 6)
    return dir_fd


# ------------------------------------------------------------ the hot RPCs

cdef int h_mount(Connection conn, Reader* r, Out* o) except -1:
    cdef lisafs_statx st
    cdef int host_fd = -1
    cdef gofer_node* node = conn.server.tree.root
    cdef gofer_node* prev
    cdef ControlFD fd
    gofer_node_incref(node)
    try:
        for part in conn.mount_path.split(b"/"):
            if part:
                prev = node
                node = node_child(node, part)
                gofer_node_decref(prev)
        lock(conn.server, node, READ)
        try:
            res = conn.impl.mount()
            if isinstance(res, tuple):      # (root, host_fd or None)
                res, donated = res
                host_fd = -1 if donated is None else donated
            if not isinstance(res, ControlFDImpl):
                raise TypeError("mount() must return a ControlFDImpl")
            (<ControlFDImpl>res).c_stat(&st)
        finally:
            unlock(conn.server, node, READ)
    except BaseException:
        gofer_node_decref(node)
        if host_fd >= 0:
            close(host_fd)
        raise
    fd = conn.new_control_fd(node, <ControlFDImpl>res, st.mode)
    conn.mounted = True
    w_inode(&o.w, fd.c.id, &st)
    w_u32(&o.w, conn.max_msg)
    w_u16(&o.w, len(conn.supported_list))
    for m in conn.supported_list:
        w_u16(&o.w, m)
    if host_fd >= 0:
        o.fds[0] = host_fd
        o.nfds = 1
    return 0

cdef int h_fstat(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef lisafs_statx st
    cdef FD fd
    cdef gofer_node* node
    cdef int err = 0
    fd = conn.lookup(fdid, None, &err, o)
    if fd is None:
        return err
    if isinstance(fd, ControlFD):
        node = (<ControlFD>fd).node
    elif isinstance(fd, OpenFD):
        node = (<OpenFD>fd).control.node
    else:
        return E.EINVAL
    lock(conn.server, node, READ)
    try:
        if isinstance(fd, ControlFD):
            (<ControlFD>fd).impl.c_stat(&st)
        else:
            (<OpenFD>fd).impl.c_stat(&st)
    finally:
        unlock(conn.server, node, READ)
    w_statx(&o.w, &st)
    return 0

cdef int h_walk(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef ControlFD cur = <ControlFD>conn.lookup(r_u64(r), ControlFD, &err, o)
    if cur is None:
        return err
    if not cur.is_dir():
        return E.ENOTDIR
    cdef uint16_t count = r_u16(r), i, n
    cdef const char* p
    cdef lisafs_statx st
    cdef uint8_t status = _wire.WALK_SUCCESS
    cdef uint16_t walked = 0
    cdef ControlFD parent
    if 3 + <Py_ssize_t>count * sizeof(lisafs_inode) > conn.max_msg:
        return E.EIO
    check_string_array(r, count)
    cdef Py_ssize_t start = o.w.len
    w_u8(&o.w, 0)
    w_u16(&o.w, 0)
    created = []
    lock(conn.server, NULL, READ)
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
            # The child's node is made under its parent's lock, which an
            # UnlinkAt of the name would hold exclusively.
            parent = cur
            lock(None, parent.node, READ)
            try:
                child = None if gofer_node_deleted(parent.node) else parent.impl.c_walk(name, &st)
                if child is not None:
                    cur = conn.new_control_fd(node_child(parent.node, name),
                                              <ControlFDImpl>child, st.mode)
            finally:
                unlock(None, parent.node, READ)
            if child is None:
                status = _wire.WALK_COMPONENT_DOES_NOT_EXIST
                break
            # Referenced while walked from: a Close of its FDID, which a
            # client could guess, must not free its node meanwhile.
            cur.refs += 1
            if walked:
                fd_decref(parent)
            created.append(cur.c.id)
            w_inode(&o.w, cur.c.id, &st)
            walked += 1
    except BaseException:
        err = -1
        raise
    finally:
        unlock(conn.server, NULL, READ)
        if walked:
            fd_decref(cur)
        if err:
            for fdid in created:
                conn.remove_fd(fdid)
    if err:
        return err
    (o.w.buf + start)[0] = <char>status
    lisafs_st16(o.w.buf + start + 1, walked)
    return 0

cdef int h_walk_stat(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef ControlFD start = <ControlFD>conn.lookup(r_u64(r), ControlFD, &err, o)
    if start is None:
        return err
    cdef uint16_t count = r_u16(r), i, n
    cdef const char* p
    cdef lisafs_statx st
    cdef uint16_t nstats = 0
    cdef Py_ssize_t save = r.pos
    check_string_array(r, count)
    # As gVisor: a non-directory start takes only the path [""] (its own
    # stat); every name is checked before the walk (EINVAL even past a
    # missing component); then the answer's size.
    for i in range(count):
        p = r_str(r, &n)
        if i == 0 and n == 0:
            continue
        if not start.is_dir():
            return E.ENOTDIR
        err = check_safe_name(p, n)
        if err:
            return err
    r.pos = save
    if 2 + <Py_ssize_t>count * sizeof(lisafs_statx) > conn.max_msg:
        return E.EIO
    cdef Py_ssize_t hdr = o.w.len
    w_u16(&o.w, 0)
    cdef ControlFDImpl cur = start.impl
    cdef ControlFDImpl owned = None     # an intermediate impl we must close
    cdef uint16_t ftype = start.ftype
    cdef gofer_node* node = start.node  # NULL below the known tree
    cdef gofer_node* above
    lock(conn.server, NULL, READ)
    try:
        for i in range(count):
            p = r_str(r, &n)
            if i == 0 and n == 0:
                lock(None, node, READ)
                try:
                    cur.c_stat(&st)
                finally:
                    unlock(None, node, READ)
                w_statx(&o.w, &st)
                nstats += 1
                continue
            if ftype != S_IFDIR or (node != NULL and gofer_node_deleted(node)):
                break
            name = PyBytes_FromStringAndSize(p, n)
            lock(None, node, READ)
            try:
                child = cur.c_walk(name, &st)
            finally:
                unlock(None, node, READ)
            if owned is not None:
                owned.c_close()
                owned = None
            if child is None:
                break
            owned = cur = <ControlFDImpl>child
            w_statx(&o.w, &st)
            nstats += 1
            ftype = st.mode & S_IFMT
            if ftype == S_IFLNK:
                break
            # Deeper nodes may exist in the tree with a deleted mark.
            above = node
            node = gofer_node_find(node, p, n) if node != NULL else NULL
            if above != start.node and above != NULL:
                gofer_node_decref(above)
    finally:
        unlock(conn.server, NULL, READ)
        if node != start.node and node != NULL:
            gofer_node_decref(node)
        if owned is not None:
            owned.c_close()
    lisafs_st16(o.w.buf + hdr, nstats)
    return 0

cdef int h_open_at(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef uint64_t fdid = r_u64(r)
    cdef uint32_t flags = r_u32(r) & OPEN_FLAGS_MASK
    cdef uint32_t acc = flags & O_ACCMODE
    cdef int host_fd = -1
    if conn.opts.readonly and (acc != O_RDONLY or flags & O_TRUNC):
        return E.EROFS              # before the FD lookup, as gVisor
    cdef ControlFD cfd = <ControlFD>conn.lookup(fdid, ControlFD, &err, o)
    if cfd is None:
        return err
    if cfd.ftype == S_IFDIR and (acc != O_RDONLY or flags & O_TRUNC):
        return E.EISDIR
    if cfd.ftype == S_IFLNK:
        return E.EINVAL
    lock(conn.server, cfd.node, READ)
    try:
        if gofer_node_deleted(cfd.node) and not conn.opts.open_on_deleted:
            return E.EINVAL
        impl = cfd.impl.c_open(flags, &host_fd)
    finally:
        unlock(conn.server, cfd.node, READ)
    if host_fd >= 0:
        o.fds[0] = host_fd          # closed by dispatch if what follows fails
        o.nfds = 1
    w_u64(&o.w, conn.add_open_fd(cfd, impl, acc))
    return 0

cdef int h_close(Connection conn, Reader* r, Out* o) except -1:
    cdef uint16_t n = r_u16(r), i
    r_need(r, 8 * <Py_ssize_t>n)
    for i in range(n):
        conn.remove_fd(r_u64(r))
    return 0

cdef int h_pread(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef int64_t offset = <int64_t>r_u64(r)
    cdef OpenFD fd = <OpenFD>conn.lookup(r_u64(r), OpenFD, &err, o)
    cdef uint32_t count = r_u32(r)
    if fd is None:
        return err
    if not fd.c.readable:
        return E.EBADF
    if 8 + <uint64_t>count > conn.max_msg:
        return E.ENOBUFS
    if offset < 0:
        return E.EINVAL             # see OFF_MAX
    cdef char* hdr = w_reserve(&o.w, 8 + <Py_ssize_t>count)
    cdef gofer_node* node = fd.control.node
    cdef Py_ssize_t got
    lock(conn.server, node, READ)
    try:
        got = fd.impl.c_read(hdr + 8, count, offset)
    finally:
        unlock(conn.server, node, READ)
    lisafs_st64(hdr, got)
    o.w.len -= count - got
    return 0

cdef int h_pwrite(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef int64_t offset = <int64_t>r_u64(r)
    cdef OpenFD fd = <OpenFD>conn.lookup(r_u64(r), OpenFD, &err, o)
    cdef uint32_t count = r_u32(r)
    cdef const char* data = r_bytes(r, count)
    if fd is None:
        return err
    if not fd.c.writable:
        return E.EBADF
    if offset < 0:
        return E.EINVAL             # see OFF_MAX
    cdef gofer_node* node = fd.control.node
    cdef Py_ssize_t done
    lock(conn.server, node, WRITE)
    try:
        done = fd.impl.c_write(data, count, offset)
    finally:
        unlock(conn.server, node, WRITE)
    w_u64(&o.w, done)
    return 0

cdef int h_getdents64(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef OpenFD fd = <OpenFD>conn.lookup(r_u64(r), OpenFD, &err, o)
    cdef int32_t count = <int32_t>r_u32(r)
    if fd is None:
        return err
    if not fd.control.is_dir():
        return E.ENOTDIR
    cdef bint seek0 = count < 0
    if seek0:
        count = -count if count != -2147483648 else 2147483647
    # Bound the host read by what a response could ever carry.
    if <uint32_t>count > conn.max_msg:
        count = conn.max_msg
    cdef gofer_node* node = fd.control.node
    lock(conn.server, node, READ)
    try:
        if gofer_node_deleted(node):
            return E.EINVAL
        fd.impl.c_getdents64(&o.w, count, seek0)
    finally:
        unlock(conn.server, node, READ)
    return 0

# ------------------------------------------------------------ the rest
# These call the backend's Python-level methods with arguments decoded.

cdef int h_set_stat(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint32_t mask = r_u32(r)
    cdef uint32_t mode = r_u32(r)
    cdef uint32_t uid = r_u32(r)
    cdef uint32_t gid = r_u32(r)
    cdef uint64_t size = r_u64(r)
    cdef int64_t atime_sec = <int64_t>r_u64(r)
    cdef int64_t atime_nsec = <int64_t>r_u64(r)
    cdef int64_t mtime_sec = <int64_t>r_u64(r)
    cdef int64_t mtime_nsec = <int64_t>r_u64(r)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    if mask & ~SETSTAT_MASK:
        return E.EPERM
    lock(conn.server, f.node, WRITE)
    try:
        if gofer_node_deleted(f.node) and not conn.opts.set_attr_on_deleted:
            return E.EINVAL
        try:
            res = f.impl.set_stat(mask, mode, uid, gid, size, (atime_sec, atime_nsec),
                                  (mtime_sec, mtime_nsec))
        except OSError as e:
            res = (mask, errno_of(e, _wire.SETSTAT))
    finally:
        unlock(conn.server, f.node, WRITE)
    failed, err = res if res else (0, 0)
    w_u32(&o.w, failed)
    w_u32(&o.w, err)
    return 0

cdef int h_open_create_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint32_t uid, gid, flags
    cdef uint16_t mode, n
    cdef uint64_t dir_fd = r_create(r, &uid, &gid, &mode)
    flags = r_u32(r)
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    cdef ControlFD f
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        res = d.impl.open_create(mode, uid, gid, name, flags & OPEN_FLAGS_MASK)
        f = new_open_child(conn, d, name, res, o)
        try:
            w_u64(&o.w, conn.add_open_fd(f, res[2], flags & O_ACCMODE))
        except BaseException:
            conn.remove_fd(f.c.id)      # an error answers: no client knows its FDID
            raise
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_bind_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint32_t uid, gid, sock_type
    cdef uint16_t mode, n
    cdef uint64_t dir_fd = r_create(r, &uid, &gid, &mode)
    sock_type = r_u32(r)
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    cdef ControlFD f
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        res = d.impl.bind_at(sock_type, name, mode, uid, gid)
        f = new_open_child(conn, d, name, res, o)
        try:
            if o.nfds == 0:             # no host FD donated
                raise OSError(E.EBADF, "bind_at() must return a host socket FD")
            w_u64(&o.w, conn.add_bound_socket_fd(f, res[2]))
        except BaseException:
            conn.remove_fd(f.c.id)      # as in h_open_create_at
            raise
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_mkdir_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint32_t uid, gid
    cdef uint16_t mode, n
    cdef uint64_t dir_fd = r_create(r, &uid, &gid, &mode)
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        new_child(conn, d, name, d.impl.mkdir(mode, uid, gid, name), o)
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_mknod_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint32_t uid, gid, minor, major
    cdef uint16_t mode, n
    cdef uint64_t dir_fd = r_create(r, &uid, &gid, &mode)
    minor = r_u32(r)
    major = r_u32(r)
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        new_child(conn, d, name, d.impl.mknod(mode, uid, gid, name, minor, major), o)
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_symlink_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t dir_fd = r_u64(r)
    cdef uint32_t uid = r_u32(r)
    cdef uint32_t gid = r_u32(r)
    cdef uint16_t n, tn
    cdef const char* p = r_str(r, &n)
    cdef const char* t = r_str(r, &tn)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        if memchr(t, 0, tn) != NULL:
            return E.EINVAL     # not a C string: what symlinkat(2) would say
        target = PyBytes_FromStringAndSize(t, tn)
        new_child(conn, d, name, d.impl.symlink(name, target, uid, gid), o)
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_link_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t dir_fd = r_u64(r)
    cdef uint64_t target = r_u64(r)
    cdef uint16_t n
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    cdef ControlFD t = <ControlFD>need(conn, target, ControlFD, o)
    if t.is_dir():
        return E.EPERM
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        lock(None, t.node, READ)
        try:
            if gofer_node_deleted(d.node) or gofer_node_deleted(t.node):
                return E.EINVAL
            new_child(conn, d, name, t.impl.link(d.impl, name), o)
        finally:
            unlock(None, t.node, READ)
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_unlink_at(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t dir_fd = r_u64(r)
    cdef uint32_t flags = r_u32(r)
    cdef uint16_t n
    cdef const char* p = r_str(r, &n)
    cdef ControlFD d = directory(conn, dir_fd, p, n, o)
    cdef gofer_node* child
    name = PyBytes_FromStringAndSize(p, n)
    lock(conn.server, d.node, WRITE)
    try:
        if gofer_node_deleted(d.node):
            return E.EINVAL
        child = gofer_node_find(d.node, p, n)
        lock(None, child, WRITE)
        try:
            d.impl.unlink(name, flags)
            if child != NULL:
                gofer_node_delete(child)
        finally:
            unlock(None, child, WRITE)
            if child != NULL:
                gofer_node_decref(child)
    finally:
        unlock(conn.server, d.node, WRITE)
    return 0

cdef int h_rename_at(Connection conn, Reader* r, Out* o) except -1:
    return rename(conn, r, 0, o)

cdef int h_rename_at2(Connection conn, Reader* r, Out* o) except -1:
    return rename(conn, r, 1, o)

cdef int rename(Connection conn, Reader* r, bint with_flags, Out* o) except -1:
    """RenameAt, and RenameAt2 (the same with renameat2(2)'s flags)."""
    cdef uint64_t old_dir = r_u64(r)
    cdef uint64_t new_dir = r_u64(r)
    cdef uint16_t on, nn
    cdef const char* op = r_str(r, &on)
    cdef const char* np = r_str(r, &nn)
    cdef uint32_t flags = r_u32(r) if with_flags else 0
    if check_safe_name(op, on) or check_safe_name(np, nn):
        return E.EINVAL
    cdef ControlFD od = <ControlFD>need(conn, old_dir, ControlFD, o)
    cdef ControlFD nd = <ControlFD>need(conn, new_dir, ControlFD, o)
    if not od.is_dir() or not nd.is_dir():
        return E.ENOTDIR
    old_name = PyBytes_FromStringAndSize(op, on)
    new_name = PyBytes_FromStringAndSize(np, nn)
    lock(conn.server, NULL, GLOBAL)
    try:
        if gofer_node_deleted(od.node) or gofer_node_deleted(nd.node):
            return E.EINVAL
        if od.node == nd.node and old_name == new_name:
            return 0
        od.impl.rename_at(old_name, nd.impl, new_name, flags)
        # The host rename happened; make the tree say the same.
        if gofer_node_rename(od.node, op, on, nd.node, np, nn, flags & RENAME_EXCHANGE):
            log.warning("out of memory: the node tree left out a rename")
    finally:
        unlock(conn.server, NULL, GLOBAL)
    return 0

cdef int h_fsync(Connection conn, Reader* r, Out* o) except -1:
    cdef uint16_t n = r_u16(r), i
    cdef OpenFD of
    cdef int first = 0
    r_need(r, 8 * <Py_ssize_t>n)
    for i in range(n):
        fdid = r_u64(r)
        try:
            of = <OpenFD>need(conn, fdid, OpenFD, o)
            try:
                lock(conn.server, of.control.node, READ)
                try:
                    of.impl.sync()
                finally:
                    unlock(conn.server, of.control.node, READ)
            finally:
                release_held(o)          # one at a time: the list is unbounded
        except BaseException as e:
            first = first or errno_of(e, _wire.FSYNC)
    return first

cdef int h_fallocate(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint64_t mode = r_u64(r)
    cdef uint64_t offset = r_u64(r)
    cdef uint64_t length = r_u64(r)
    cdef OpenFD of = <OpenFD>need(conn, fdid, OpenFD, o)
    if not of.c.writable:
        return E.EBADF
    cdef gofer_node* node = of.control.node
    lock(conn.server, node, WRITE)
    try:
        if gofer_node_deleted(node) and not conn.opts.allocate_on_deleted:
            return E.EINVAL
        # Offsets: see OFF_MAX. gVisor would truncate a mode beyond
        # 32 bits (fallocate's int); we refuse it instead.
        if mode > 0xffffffff or offset > OFF_MAX or length > OFF_MAX:
            return E.EINVAL
        of.impl.allocate(mode, offset, length)
    finally:
        unlock(conn.server, node, WRITE)
    return 0

cdef int h_flush(Connection conn, Reader* r, Out* o) except -1:
    cdef OpenFD of = <OpenFD>need(conn, r_u64(r), OpenFD, o)
    lock(conn.server, of.control.node, READ)
    try:
        of.impl.flush()
    finally:
        unlock(conn.server, of.control.node, READ)
    return 0

cdef int h_listen(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef uint64_t fdid = r_u64(r)
    cdef int32_t backlog = <int32_t>r_u32(r)
    cdef BoundSocketFD b = <BoundSocketFD>conn.lookup(fdid, BoundSocketFD, &err, o)
    if b is None:
        return err
    lock(conn.server, b.control.node, READ)
    try:
        if gofer_node_deleted(b.control.node):
            return E.EINVAL
        b.impl.listen(backlog)
    finally:
        unlock(conn.server, b.control.node, READ)
    return 0

cdef int h_accept(Connection conn, Reader* r, Out* o) except -1:
    cdef int err = 0
    cdef BoundSocketFD b = <BoundSocketFD>conn.lookup(r_u64(r), BoundSocketFD, &err, o)
    if b is None:
        return err
    lock(conn.server, b.control.node, READ)
    try:
        if gofer_node_deleted(b.control.node):
            return E.EINVAL
        host_fd, peer = b.impl.accept()
    finally:
        unlock(conn.server, b.control.node, READ)
    o.fds[0] = host_fd
    o.nfds = 1
    w_str(&o.w, peer, len(peer))
    return 0

# The rest act on one ControlFD under a read (or, to mutate, write) lock,
# and refuse a deleted file (but FStatFS).

cdef int h_fstatfs(Connection conn, Reader* r, Out* o) except -1:
    cdef ControlFD f = <ControlFD>need(conn, r_u64(r), ControlFD, o)
    lock(conn.server, f.node, READ)
    try:
        sfs = f.impl.statfs()
    finally:
        unlock(conn.server, f.node, READ)
    for name in STATFS_FIELDS:
        w_u64(&o.w, <uint64_t>getattr(sfs, name))
    return 0

cdef int h_readlink_at(Connection conn, Reader* r, Out* o) except -1:
    cdef ControlFD f = <ControlFD>need(conn, r_u64(r), ControlFD, o)
    if f.ftype != S_IFLNK:
        return E.EINVAL
    lock(conn.server, f.node, READ)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        target = f.impl.readlink()
    finally:
        unlock(conn.server, f.node, READ)
    w_str(&o.w, target, len(target))
    return 0

cdef int h_connect(Connection conn, Reader* r, Out* o) except -1:
    return connect(conn, r, False, o)

cdef int h_connect_with_creds(Connection conn, Reader* r, Out* o) except -1:
    return connect(conn, r, True, o)

cdef int connect(Connection conn, Reader* r, bint with_creds, Out* o) except -1:
    """Connect, and ConnectWithCreds (the same as the sandbox's uid/gid)."""
    cdef uint64_t fdid = r_u64(r)
    cdef uint32_t sock_type = r_u32(r), uid = 0, gid = 0
    r_bytes(r, 4)
    if with_creds:
        uid = r_u32(r)
        gid = r_u32(r)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    if f.ftype != S_IFSOCK:
        return E.ENOTSOCK
    lock(conn.server, f.node, READ)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        if with_creds:
            o.fds[0] = f.impl.connect_with_creds(sock_type, uid, gid)
        else:
            o.fds[0] = f.impl.connect(sock_type)
        o.nfds = 1
    finally:
        unlock(conn.server, f.node, READ)
    return 0

cdef bytes xattr_name(const char* p, uint16_t n):
    """An xattr name as the backend gets it; EINVAL for one that is not a C
    string, as the host's xattr calls would say."""
    if memchr(p, 0, n) != NULL:
        raise OSError(E.EINVAL, "NUL in an xattr name")
    return PyBytes_FromStringAndSize(p, n)

cdef int h_fgetxattr(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint32_t buf_size = r_u32(r)
    cdef uint16_t n
    cdef const char* p = r_str(r, &n)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    lock(conn.server, f.node, READ)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        value = f.impl.get_xattr(xattr_name(p, n), buf_size)
    finally:
        unlock(conn.server, f.node, READ)
    if buf_size and len(value) > buf_size:
        return E.ERANGE
    if len(value) > 0xffff:
        return E.E2BIG          # beyond a SizedString (getxattr(2)'s E2BIG)
    w_str(&o.w, value, len(value))
    return 0

cdef int h_fsetxattr(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint32_t flags = r_u32(r)
    cdef uint16_t n, vn
    cdef const char* p = r_str(r, &n)
    cdef const char* v = r_str(r, &vn)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    lock(conn.server, f.node, WRITE)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        f.impl.set_xattr(xattr_name(p, n), PyBytes_FromStringAndSize(v, vn), flags)
    finally:
        unlock(conn.server, f.node, WRITE)
    return 0

cdef int h_flistxattr(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint64_t size = r_u64(r)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    lock(conn.server, f.node, READ)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        names = f.impl.list_xattr(size)
    finally:
        unlock(conn.server, f.node, READ)
    # As listxattr(2): a non-zero size too small for the NUL-separated
    # list is ERANGE.
    if size and sum(len(n) + 1 for n in names) > size:
        return E.ERANGE
    w_u16(&o.w, len(names))
    for name in names:
        w_str(&o.w, name, len(name))
    return 0

cdef int h_fremovexattr(Connection conn, Reader* r, Out* o) except -1:
    cdef uint64_t fdid = r_u64(r)
    cdef uint16_t n
    cdef const char* p = r_str(r, &n)
    cdef ControlFD f = <ControlFD>need(conn, fdid, ControlFD, o)
    lock(conn.server, f.node, WRITE)
    try:
        if gofer_node_deleted(f.node):
            return E.EINVAL
        f.impl.remove_xattr(xattr_name(p, n))
    finally:
        unlock(conn.server, f.node, WRITE)
    return 0


# Every handler by MID, for Connection.handle (MID 0, Error, is never a
# request: dispatch refuses it as unsupported).
ctypedef int (*Handler)(Connection conn, Reader* r, Out* o) except -1
cdef Handler HANDLERS[MAX_MID + 1]
HANDLERS[_wire.MOUNT] = h_mount
HANDLERS[_wire.CHANNEL] = h_channel
HANDLERS[_wire.FSTAT] = h_fstat
HANDLERS[_wire.SETSTAT] = h_set_stat
HANDLERS[_wire.WALK] = h_walk
HANDLERS[_wire.WALK_STAT] = h_walk_stat
HANDLERS[_wire.OPEN_AT] = h_open_at
HANDLERS[_wire.OPEN_CREATE_AT] = h_open_create_at
HANDLERS[_wire.CLOSE] = h_close
HANDLERS[_wire.FSYNC] = h_fsync
HANDLERS[_wire.PWRITE] = h_pwrite
HANDLERS[_wire.PREAD] = h_pread
HANDLERS[_wire.MKDIR_AT] = h_mkdir_at
HANDLERS[_wire.MKNOD_AT] = h_mknod_at
HANDLERS[_wire.SYMLINK_AT] = h_symlink_at
HANDLERS[_wire.LINK_AT] = h_link_at
HANDLERS[_wire.FSTATFS] = h_fstatfs
HANDLERS[_wire.FALLOCATE] = h_fallocate
HANDLERS[_wire.READLINK_AT] = h_readlink_at
HANDLERS[_wire.FLUSH] = h_flush
HANDLERS[_wire.CONNECT] = h_connect
HANDLERS[_wire.UNLINK_AT] = h_unlink_at
HANDLERS[_wire.RENAME_AT] = h_rename_at
HANDLERS[_wire.GETDENTS64] = h_getdents64
HANDLERS[_wire.FGETXATTR] = h_fgetxattr
HANDLERS[_wire.FSETXATTR] = h_fsetxattr
HANDLERS[_wire.FLISTXATTR] = h_flistxattr
HANDLERS[_wire.FREMOVEXATTR] = h_fremovexattr
HANDLERS[_wire.BIND_AT] = h_bind_at
HANDLERS[_wire.LISTEN] = h_listen
HANDLERS[_wire.ACCEPT] = h_accept
HANDLERS[_wire.CONNECT_WITH_CREDS] = h_connect_with_creds
HANDLERS[_wire.RENAME_AT2] = h_rename_at2
