# Included into _server.pyx. The handler of every message: gVisor's
# protocol rules (handlers.go), enforced for every backend; each returns 0
# or an errno and writes its response to the Out.

XATTR_NAMED = frozenset([_wire.FGETXATTR, _wire.FSETXATTR, _wire.FREMOVEXATTR])
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


cdef inline void w_inode(Writer* w, uint64_t fdid, lisafs_statx* st) except *:
    cdef char* p = w_reserve(w, sizeof(lisafs_inode))
    lisafs_st64(p, fdid)
    memcpy(p + 8, st, sizeof(lisafs_statx))


# The hot handlers decode their request in place.

cdef int h_mount(Connection conn, Reader* r, Out* o) except -1:
    cdef lisafs_statx st
    cdef int host_fd = -1
    cdef Node node = conn.server.root
    cdef Node prev
    cdef ControlFD fd
    node.refs += 1
    for part in conn.mount_path.split(b"/"):
        if part:
            prev = node
            node = node_child(node, part)
            node_decref(prev)
    try:
        rlock(&conn.server.rename_lock)
        rlock(&node.op_lock)
        try:
            res = conn.impl.mount()
            if isinstance(res, tuple):      # (root, host_fd or None)
                res, donated = res
                host_fd = -1 if donated is None else donated
            if not isinstance(res, ControlFDImpl):
                raise TypeError("mount() must return a ControlFDImpl")
            (<ControlFDImpl>res).c_stat(&st)
        finally:
            unlock(&node.op_lock)
            unlock(&conn.server.rename_lock)
    except BaseException:
        node_decref(node)
        if host_fd >= 0:
            close(host_fd)
        raise
    fd = conn.new_control_fd(node, <ControlFDImpl>res, st.mode)
    conn.mounted = True
    w_inode(&o.w, fd.id, &st)
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
    cdef Node node
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
    rlock(&conn.server.rename_lock)
    rlock(&node.op_lock)
    try:
        if isinstance(fd, ControlFD):
            (<ControlFD>fd).impl.c_stat(&st)
        else:
            (<OpenFD>fd).impl.c_stat(&st)
    finally:
        unlock(&node.op_lock)
        unlock(&conn.server.rename_lock)
    memcpy(w_reserve(&o.w, sizeof(st)), &st, sizeof(st))
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
    cdef Node node
    if 3 + <Py_ssize_t>count * sizeof(lisafs_inode) > conn.max_msg:
        return E.EIO
    check_string_array(r, count)
    cdef Py_ssize_t start = o.w.len
    w_u8(&o.w, 0)
    w_u16(&o.w, 0)
    created = []
    rlock(&conn.server.rename_lock)
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
            cur = conn.new_control_fd(node, <ControlFDImpl>child, st.mode)
            created.append(cur.id)
            w_inode(&o.w, cur.id, &st)
            walked += 1
    except BaseException:
        err = -1
        raise
    finally:
        unlock(&conn.server.rename_lock)
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
    if 2 + <Py_ssize_t>count * sizeof(lisafs_statx) > conn.max_msg:
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
    rlock(&conn.server.rename_lock)
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
        unlock(&conn.server.rename_lock)
        if owned is not None:
            owned.c_close()
    if err:
        return err
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
    rlock(&conn.server.rename_lock)
    rlock(&cfd.node.op_lock)
    try:
        if cfd.node.deleted and not conn.opts.open_on_deleted:
            return E.EINVAL
        impl = cfd.impl.c_open(flags, &host_fd)
    finally:
        unlock(&cfd.node.op_lock)
        unlock(&conn.server.rename_lock)
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
    if not fd.readable:
        return E.EBADF
    if 8 + <uint64_t>count > conn.max_msg:
        return E.ENOBUFS
    if offset < 0:
        return E.EINVAL             # see OFF_MAX
    cdef char* hdr = w_reserve(&o.w, 8 + <Py_ssize_t>count)
    cdef Node node = fd.control.node
    cdef Py_ssize_t got
    rlock(&conn.server.rename_lock)
    rlock(&node.op_lock)
    try:
        got = fd.impl.c_read(hdr + 8, count, offset)
    finally:
        unlock(&node.op_lock)
        unlock(&conn.server.rename_lock)
    lisafs_st64(hdr, got)
    o.w.len -= count - got
    return 0

cdef int h_pwrite(Connection conn, Reader* r, Out* o) except -1:
    if conn.opts.readonly:
        return E.EROFS
    cdef int err = 0
    cdef int64_t offset = <int64_t>r_u64(r)
    cdef OpenFD fd = <OpenFD>conn.lookup(r_u64(r), OpenFD, &err, o)
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
    rlock(&conn.server.rename_lock)
    wlock(&node.op_lock)
    try:
        done = fd.impl.c_write(data, count, offset)
    finally:
        unlock(&node.op_lock)
        unlock(&conn.server.rename_lock)
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
    cdef Node node = fd.control.node
    rlock(&conn.server.rename_lock)
    rlock(&node.op_lock)
    try:
        if node.deleted:
            return E.EINVAL
        fd.impl.c_getdents64(&o.w, count, seek0)
    finally:
        unlock(&node.op_lock)
        unlock(&conn.server.rename_lock)
    return 0

# The cold handlers, behind handle_cold(). Each takes the decoded request dict, enforces gVisor's protocol rules
# (handlers.go), calls the implementation under the right node locks and
# writes the response. Returns 0 or an errno.

cdef FD need(Connection conn, uint64_t fdid, type kind, Out* o):
    """lookup() that raises the errno instead of returning None."""
    cdef int err = 0
    cdef FD fd = conn.lookup(fdid, kind, &err, o)
    if fd is None:
        raise OSError(err, os.strerror(err))
    return fd

cdef ControlFD directory(Connection conn, uint64_t fdid, name, Out* o):
    """The directory ControlFD for a create/unlink of `name`."""
    cdef const char* p = name
    if check_safe_name(p, len(name)):
        raise OSError(E.EINVAL, "unsafe name")
    cdef ControlFD d = <ControlFD>need(conn, fdid, ControlFD, o)
    if not d.is_dir():
        raise OSError(E.ENOTDIR, os.strerror(E.ENOTDIR))
    return d

cdef ControlFD new_child(Connection conn, ControlFD parent, bytes name, res, lisafs_statx* st):
    """Registers an implementation's (ControlFDImpl, Statx) for a new child."""
    child, stx = res
    if not isinstance(child, ControlFDImpl):
        raise TypeError("expected a ControlFDImpl, got %s" % type(child).__name__)
    _statx_out(stx, st)
    return conn.new_control_fd(node_child(parent.node, name), <ControlFDImpl>child, st.mode)

cdef int handle_cold(Connection conn, uint16_t mid, dict q, Out* o) except -1:
    cdef ControlFD d, f, t
    cdef OpenFD of
    cdef lisafs_statx st
    cdef Node node
    cdef int host_fd = -1, lookup_err = 0
    if mid == _wire.CHANNEL:
        return h_channel(conn, o)

    if mid == _wire.SETSTAT:
        f = <ControlFD>need(conn, q["fd"], ControlFD, o)
        if q["mask"] & ~SETSTAT_MASK:
            return E.EPERM
        with Guard(conn.server, f.node, WRITE):
            if f.node.deleted and not conn.opts.set_attr_on_deleted:
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
        d = directory(conn, q["dir_fd"], q["name"], o)
        with Guard(conn.server, d.node, WRITE):
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
                f = new_child(conn, d, q["name"], (child, stx), &st)
                w_inode(&o.w, f.id, &st)
                if mid == _wire.OPEN_CREATE_AT:
                    w_u64(&o.w, conn.add_open_fd(f, extra, q["flags"] & O_ACCMODE))
                else:
                    if host_fd < 0:
                        raise OSError(E.EBADF, "bind_at() must return a host socket FD")
                    w_u64(&o.w, conn.add_bound_socket_fd(f, extra))
            else:
                f = new_child(conn, d, q["name"], res, &st)
                w_inode(&o.w, f.id, &st)
        return 0

    if mid == _wire.LINK_AT:
        d = directory(conn, q["dir_fd"], q["name"], o)
        t = <ControlFD>need(conn, q["target"], ControlFD, o)
        if t.is_dir():
            return E.EPERM
        with Guard(conn.server, d.node, WRITE):
            with Guard(None, t.node, READ):
                if d.node.deleted or t.node.deleted:
                    return E.EINVAL
                res = t.impl.link(d.impl, q["name"])
                f = new_child(conn, d, q["name"], res, &st)
        w_inode(&o.w, f.id, &st)
        return 0

    if mid == _wire.UNLINK_AT:
        d = directory(conn, q["dir_fd"], q["name"], o)
        with Guard(conn.server, d.node, WRITE):
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
        return h_rename(conn, q["old_dir"], q["old_name"], q["new_dir"], q["new_name"],
                             q.get("flags", 0), o)

    if mid == _wire.FSYNC:
        first = 0
        for fdid in q["fds"]:
            try:
                of = <OpenFD>need(conn, fdid, OpenFD, o)
                try:
                    with Guard(conn.server, of.control.node, READ):
                        of.impl.sync()
                finally:
                    release_held(o)          # one at a time: the list is unbounded
            except BaseException as e:
                first = first or errno_of(e, mid)
        return first

    if mid == _wire.FALLOCATE or mid == _wire.FLUSH:
        of = <OpenFD>need(conn, q["fd"], OpenFD, o)
        if mid == _wire.FLUSH:
            with Guard(conn.server, of.control.node, READ):
                of.impl.flush()
            return 0
        if not of.writable:
            return E.EBADF
        with Guard(conn.server, of.control.node, WRITE):
            if of.control.node.deleted and not conn.opts.allocate_on_deleted:
                return E.EINVAL
            # Offsets: see OFF_MAX. gVisor would truncate a mode beyond
            # 32 bits (fallocate's int); we refuse it instead.
            if q["mode"] > 0xffffffff or q["offset"] > OFF_MAX or q["length"] > OFF_MAX:
                return E.EINVAL
            of.impl.allocate(q["mode"], q["offset"], q["length"])
        return 0

    if mid == _wire.LISTEN or mid == _wire.ACCEPT:
        bfd = conn.lookup(q["fd"], BoundSocketFD, &lookup_err, o)
        if bfd is None:
            return lookup_err
        node = (<BoundSocketFD>bfd).control.node
        with Guard(conn.server, node, READ):
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
    f = <ControlFD>need(conn, q["fd"], ControlFD, o)
    if mid == _wire.READLINK_AT and f.ftype != S_IFLNK:
        return E.EINVAL
    if (mid == _wire.CONNECT or mid == _wire.CONNECT_WITH_CREDS) and f.ftype != S_IFSOCK:
        return E.ENOTSOCK
    with Guard(conn.server, f.node, WRITE if mid in MUTATING else READ):
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

cdef int h_rename(Connection conn, uint64_t old_dir, bytes old_name, uint64_t new_dir,
                  bytes new_name, uint32_t flags, Out* o) except -1:
    cdef const char* p = old_name
    cdef const char* q = new_name
    if check_safe_name(p, len(old_name)) or check_safe_name(q, len(new_name)):
        return E.EINVAL
    cdef ControlFD od = <ControlFD>need(conn, old_dir, ControlFD, o)
    cdef ControlFD nd = <ControlFD>need(conn, new_dir, ControlFD, o)
    if not od.is_dir() or not nd.is_dir():
        return E.ENOTDIR
    with Guard(conn.server, None, GLOBAL):
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


# The hot handlers by MID, for Connection.handle; NULL (a C static starts
# zeroed): the cold path.
ctypedef int (*Handler)(Connection conn, Reader* r, Out* o) except -1
cdef Handler HOT_HANDLERS[MAX_MID + 1]
HOT_HANDLERS[_wire.MOUNT] = h_mount
HOT_HANDLERS[_wire.FSTAT] = h_fstat
HOT_HANDLERS[_wire.WALK] = h_walk
HOT_HANDLERS[_wire.WALK_STAT] = h_walk_stat
HOT_HANDLERS[_wire.OPEN_AT] = h_open_at
HOT_HANDLERS[_wire.CLOSE] = h_close
HOT_HANDLERS[_wire.PREAD] = h_pread
HOT_HANDLERS[_wire.PWRITE] = h_pwrite
HOT_HANDLERS[_wire.GETDENTS64] = h_getdents64
