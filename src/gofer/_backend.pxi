# Included into _server.pyx. The public base classes a backend subclasses;
# their c_* fast paths default to the snake_case Python methods.

cdef int _statx_out(st, lisafs_statx* out) except -1:
    """Checks an implementation's stat result and copies it out."""
    if not isinstance(st, Statx):
        raise TypeError("stat() must return gofer.lisafs.Statx, not %s" % type(st).__name__)
    (<Statx>st).to_c(out)
    if not (out.mask & STATX_TYPE):
        raise ValueError("stat() returned a Statx without STATX_TYPE in its mask")
    return 0


def _not_implemented(*args):
    raise OSError(E.EOPNOTSUPP, os.strerror(E.EOPNOTSUPP))


def _stat_via_c(impl):
    """The default Python stat(): whatever the (possibly Cython) c_stat says."""
    cdef lisafs_statx st
    if isinstance(impl, ControlFDImpl):
        (<ControlFDImpl>impl).c_stat(&st)
    else:
        (<OpenFDImpl>impl).c_stat(&st)
    return statx_from_c(&st)


cdef class ControlFDImpl:
    """A position in a backend's file tree (gVisor's ControlFDImpl).

    Subclasses implement the storage operations they support; the rest answer
    EOPNOTSUPP. Names given to them have already been checked to be single,
    safe path components.
    """

    def stat(self):
        """FStat: this file's attributes.

        Returns a `Statx` whose mask includes STATX_TYPE; (ino, dev_minor,
        dev_major) is the file's identity and must not change while it lives.
        Errors: any errno the storage gives (EIO: unreachable).
        Lock: read. The default answers what the C fast path `c_stat` says, so
        a Cython backend overriding only `c_stat` has a consistent stat()."""
        return _stat_via_c(self)

    def walk(self, bytes name):
        """Walk, WalkStat: the child `name` of this directory.

        Receives a single component (never "", ".", "..", nor with "/" or NUL).
        Returns Child(impl, stat), a new ControlFDImpl of the child and its Statx.
        Errors: ENOENT (raise it, or return None): no such name, which ends a
        walk without an error (WALK_COMPONENT_DOES_NOT_EXIST); EACCES: not
        searchable; any other errno ends the walk with that error.
        Lock: read, on this directory."""
        _not_implemented()

    def open(self, uint32_t flags):
        """OpenAt: opens this file.

        Receives `flags`: O_RDONLY, O_WRONLY or O_RDWR, maybe with O_TRUNC (the
        server refused to open a directory for writing: EISDIR).
        Returns OpenResult(impl, host_fd=None), or the OpenFDImpl alone; a
        host_fd is donated to the client (the server owns it then, and makes it
        non-blocking and close-on-exec): its access mode must be the client's.
        Errors: EACCES; ENXIO (a socket or FIFO that cannot be opened); ENOENT
        (gone from the storage).
        Lock: read."""
        _not_implemented()

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        """SetStat: changes the attributes in `mask`.

        Receives `mask` of STATX_MODE, STATX_UID, STATX_GID, STATX_SIZE,
        STATX_ATIME, STATX_MTIME (only those fields are meaningful); atime and
        mtime are (sec, nsec), nsec maybe UTIME_NOW or UTIME_OMIT.
        Returns None when all applied, SetStatResult(failed_mask, errno) when
        the attributes in failed_mask were not (the others were).
        Errors: raising OSError fails them all with its errno: EPERM (not
        allowed, or not kept by this storage), EISDIR (size of a directory),
        EINVAL.
        Lock: write."""
        _not_implemented()

    def open_create(self, mode, uid, gid, bytes name, flags):
        """OpenCreateAt: creates the regular file `name` in this directory,
        and opens it.

        Receives permission bits `mode`, the owner `uid`/`gid` (or NO_UID/
        NO_GID: the backend's default), `flags` (access mode, maybe O_TRUNC).
        Returns CreateResult(impl, stat, open, host_fd=None): the new file, its
        Statx, the open file and an optional host FD to donate (as open()).
        Errors: EEXIST (the name exists), ENOSPC, EACCES.
        Lock: write, on this directory."""
        _not_implemented()

    def mkdir(self, mode, uid, gid, bytes name):
        """MkdirAt: creates the directory `name` in this directory.

        Receives permission bits `mode` and the owner `uid`/`gid` (or NO_UID/
        NO_GID).
        Returns Child(impl, stat) of the new directory.
        Errors: EEXIST, ENOSPC, EMLINK, EACCES.
        Lock: write, on this directory."""
        _not_implemented()

    def mknod(self, mode, uid, gid, bytes name, minor, major):
        """MknodAt: creates the node `name` in this directory.

        Receives `mode` (type `mode & S_IFMT`: regular, FIFO, socket, character
        or block device, and permission bits), the owner `uid`/`gid`, and the
        device number `minor`/`major` of a device.
        Returns Child(impl, stat) of the new node.
        Errors: EEXIST; EPERM: a type this storage does not keep.
        Lock: write, on this directory."""
        _not_implemented()

    def symlink(self, bytes name, bytes target, uid, gid):
        """SymlinkAt: creates the symlink `name` -> `target` in this directory.

        Receives `target` (bytes, no NUL; not resolved) and the owner `uid`/
        `gid` (or NO_UID/NO_GID).
        Returns Child(impl, stat) of the new symlink.
        Errors: EEXIST, ENOSPC.
        Lock: write, on this directory."""
        _not_implemented()

    def link(self, ControlFDImpl dir, bytes name):
        """LinkAt: makes `dir`/`name` a hard link to this file.

        Receives `dir`, a ControlFDImpl of this backend, and `name` (this file is
        never a directory: the server answered EPERM).
        Returns Child(impl, stat) of the new name, with this file's identity
        (its nlink counts the new name).
        Errors: EEXIST, EMLINK, EXDEV.
        Lock: write on `dir`, read on this file."""
        _not_implemented()

    def statfs(self):
        """FStatFS: the statistics of the filesystem holding this file.

        Returns a `StatFS` (block_size and name_length non-zero).
        Lock: read."""
        _not_implemented()

    def readlink(self):
        """ReadLinkAt: this symlink's target.

        Returns bytes (the server checked this file is a symlink: EINVAL
        otherwise).
        Lock: read."""
        _not_implemented()

    def connect(self, sock_type):
        """Connect (and ConnectWithCreds by default): connects to this socket file.

        Receives `sock_type`, as socket(2)'s type.
        Returns a host FD connected to the socket, donated to the client.
        Errors: ECONNREFUSED, EPROTOTYPE (the server checked it is a socket).
        Lock: read."""
        _not_implemented()

    def connect_with_creds(self, sock_type, uid, gid):
        """ConnectWithCreds: as connect(), as `uid`/`gid`.

        Returns a host FD, donated. The default calls connect(sock_type).
        Lock: read."""
        return self.connect(sock_type)

    def bind_at(self, sock_type, bytes name, mode, uid, gid):
        """BindAt: creates and binds the socket file `name` in this directory.

        Receives `sock_type`, permission bits `mode`, the owner `uid`/`gid`.
        Returns BindResult(impl, stat, bound, host_fd): the new file, its Statx,
        the BoundSocketFDImpl and its host FD (required; donated, for events).
        Errors: EEXIST.
        Lock: write, on this directory."""
        _not_implemented()

    def unlink(self, bytes name, flags):
        """UnlinkAt: removes `name` from this directory.

        Receives `flags`: AT_REMOVEDIR to remove an (empty) directory.
        Returns None.
        Errors: ENOENT; EISDIR (a directory without AT_REMOVEDIR); ENOTDIR (not
        a directory with it); ENOTEMPTY.
        Lock: write, on this directory and on the child."""
        _not_implemented()

    def rename_at(self, bytes old_name, ControlFDImpl new_dir, bytes new_name, flags):
        """RenameAt, RenameAt2: renames this directory's `old_name` to
        `new_dir`/`new_name`.

        Receives `new_dir`, a ControlFDImpl of this backend, and `flags` as
        renameat2(2) (0 for RenameAt; RENAME_NOREPLACE, RENAME_EXCHANGE).
        Returns None. A backend that cannot rename atomically says so in its
        documentation.
        Errors: ENOENT; EEXIST (RENAME_NOREPLACE); ENOTEMPTY; EISDIR, ENOTDIR
        (kinds differ); EXDEV; EINVAL (into itself, or flags not supported).
        Lock: global (nothing else runs anywhere in the server tree)."""
        _not_implemented()

    def get_xattr(self, bytes name, size):
        """FGetXattr: the value of extended attribute `name`.

        Receives `size`, the client's buffer size (0: any length).
        Returns bytes (the server answers ERANGE if longer than a non-zero size).
        Errors: ENODATA (no such attribute); EOPNOTSUPP (no xattrs here).
        Lock: read."""
        _not_implemented()

    def set_xattr(self, bytes name, bytes value, flags):
        """FSetXattr: sets extended attribute `name` to `value`.

        Receives `flags`: XATTR_CREATE (EEXIST if present) or XATTR_REPLACE
        (ENODATA if absent), or 0.
        Returns None.
        Errors: EEXIST, ENODATA, ENOSPC, EOPNOTSUPP.
        Lock: write."""
        _not_implemented()

    def list_xattr(self, size):
        """FListXattr: the names of this file's extended attributes.

        Receives `size`, the client's buffer size (a hint: the server answers
        ERANGE when a non-zero size is too small).
        Returns a list of bytes.
        Lock: read."""
        _not_implemented()

    def remove_xattr(self, bytes name):
        """FRemoveXattr: removes extended attribute `name`.

        Returns None.
        Errors: ENODATA (no such attribute).
        Lock: write."""
        _not_implemented()

    def close(self):
        """Called once, when the server drops its last reference.

        Returns None; an exception is logged, never answered.
        Lock: none."""

    cdef int c_stat(self, lisafs_statx* out) except -1:
        if type(self).stat is ControlFDImpl.stat:
            _not_implemented()
        return _statx_out(self.stat(), out)

    cdef object c_walk(self, bytes name, lisafs_statx* out):
        try:
            res = self.walk(name)
        except OSError as e:            # OSError(errno.ENOENT) too: no subclass then
            if errno_of(e, _wire.WALK) != E.ENOENT:
                raise
            return None
        if res is None:
            return None
        child, st = res
        if not isinstance(child, ControlFDImpl):
            raise TypeError("walk() must return a ControlFDImpl, not %s" % type(child).__name__)
        _statx_out(st, out)
        return child

    cdef object c_open(self, uint32_t flags, int* host_fd):
        res = self.open(flags)
        host_fd[0] = -1
        if isinstance(res, tuple):      # (impl, host_fd or None): OpenResult
            res, fd = res
            host_fd[0] = -1 if fd is None else fd
        if not isinstance(res, OpenFDImpl):
            if host_fd[0] >= 0:
                close(host_fd[0])
            raise TypeError("open() must return an OpenFDImpl, not %s" % type(res).__name__)
        return res

    cdef int c_close(self) except -1:
        self.close()
        return 0

    cdef int c_host_fd(self) noexcept:
        """-1, or the host FD whose statx is exactly this file's FStat and,
        for a directory, whose host tree below (walked with openat O_PATH,
        not following symlinks) is exactly what c_walk finds (the stock
        backend's): the core then serves FStat and WalkStat itself, without
        the GIL (native/fastpath.h), and Close too, calling c_close a little
        later. It must stay open until c_close."""
        return -1

    cdef const int* c_reopen_dir(self) noexcept:
        """NULL, or, with c_host_fd, where to find the FD of a directory of
        this process's FDs (/proc/self/fd) when OpenAt on this file is
        exactly: a reopen of the host FD through it with the client's
        access mode and O_TRUNC (openat(dir, "N"); native/hostcalls.h), and
        for a regular file a dup of the new FD donated (the stock
        backend's, for regular files and directories but the mount point).
        The core then serves OpenAt itself, without the GIL, and later
        hands the new FD to c_adopt_open. Read when the FD is made; what it
        points to must stay valid while the server runs."""
        return NULL

    cdef object c_adopt_open(self, int host_fd):
        """The OpenFDImpl for `host_fd`, which the core opened as
        c_reopen_dir says, and whose OpenAt it has answered; it is the
        impl's from now on (its c_host_fd must return it until c_close)."""
        raise NotImplementedError("c_reopen_dir without c_adopt_open")

    cdef const int* c_host_tree(self) noexcept:
        """NULL, or, for a directory with c_host_fd, a c_reopen_dir for the
        files below it when this directory is a host directory exactly as
        the stock backend serves one (native/hostcalls.h): Walk from it is,
        at each step, the host walk (an O_PATH|O_NOFOLLOW openat of the name
        and its statx; c_walk), MkdirAt is gofer_host_mkdir, OpenCreateAt
        gofer_host_create through this pointer's FD directory (and a dup of
        the open FD donated), UnlinkAt unlinkat(2), and RenameAt between two
        such directories renameat2(2);
        each file walked to or made is a control FD whose c_host_fd is that
        FD, whose c_reopen_dir is this for a regular file or directory (else
        NULL), and whose c_host_tree is this for a directory. The core then
        serves those RPCs itself, without the GIL, and later asks the parent
        of each new FD for its impl with c_adopt_walk."""
        return NULL

    cdef object c_adopt_walk(self, int host_fd, uint16_t ftype):
        """The ControlFDImpl of this directory's child open at `host_fd`
        (of file type `ftype`, S_IFMT bits), which the core walked to as
        c_host_tree says; host_fd is the impl's from now on."""
        raise NotImplementedError("c_host_tree without c_adopt_walk")


cdef class OpenFDImpl:
    """An open file of a backend (gVisor's OpenFDImpl)."""

    def stat(self):
        """FStat on the open file.

        Returns its `Statx`, as ControlFDImpl.stat() does.
        Lock: read. The default answers what `c_stat` says."""
        return _stat_via_c(self)

    def read(self, int64_t offset, Py_ssize_t count):
        """PRead: at most `count` bytes at `offset`.

        Returns bytes, b"" at the end (a hole reads as zeros).
        Errors: EIO; EISDIR.
        Lock: read (reads of one file may run at once)."""
        _not_implemented()

    def write(self, int64_t offset, data):
        """PWrite: writes `data` at `offset`.

        Receives `data` (bytes; the server checked the FD was opened for
        writing: EBADF).
        Returns the count written, 0..len(data).
        Errors: ENOSPC, EFBIG, EIO.
        Lock: write."""
        _not_implemented()

    def getdents64(self, int32_t count, bint seek0):
        """Getdents64: the next directory entries.

        Receives `count`, the most bytes of entries on the wire (see
        page_dirents), and `seek0`: restart from the beginning.
        Returns a list of `Dirent` ([] at the end). The default pages what
        readdir() lists (gofer.lisafs.page_dirents): override readdir() instead.
        Errors: ENOTDIR.
        Lock: read."""
        from gofer.lisafs import page_dirents
        return page_dirents(self, count, seek0)

    def readdir(self):
        """Lists this directory, for the default getdents64().

        Returns an iterable of `Dirent` (no "." or ".."; `off` is set by the
        server). Called when the client starts, or restarts, reading.
        Lock: read."""
        _not_implemented()

    def sync(self):
        """FSync: makes what was written durable.

        Returns None. Default: nothing (right for a backend without a cache).
        Errors: EIO (could not be written out).
        Lock: read."""
        pass

    def allocate(self, mode, offset, length):
        """FAllocate, as fallocate(2).

        Receives `mode` (0: allocate, extending the size), `offset`, `length`
        (the server checked the FD was opened for writing: EBADF).
        Returns None.
        Errors: EOPNOTSUPP (a mode not supported), ENOSPC.
        Lock: write."""
        _not_implemented()

    def flush(self):
        """Flush: the client closes its file (close(2) may report errors).

        Returns None. Default: nothing.
        Errors: EIO (buffered writes could not be written out).
        Lock: read."""
        pass

    def close(self):
        """Called once, when the server drops its last reference.

        Returns None; an exception is logged, never answered.
        Lock: none."""
        pass

    cdef int c_stat(self, lisafs_statx* out) except -1:
        if type(self).stat is OpenFDImpl.stat:
            _not_implemented()
        return _statx_out(self.stat(), out)

    cdef Py_ssize_t c_read(self, char* buf, Py_ssize_t count, int64_t offset) except -1:
        data = self.read(offset, count)
        cdef const unsigned char[:] v = data
        if v.shape[0] > count:
            raise ValueError("read() returned %d bytes, more than the %d asked" % (v.shape[0], count))
        if v.shape[0]:
            memcpy(buf, &v[0], v.shape[0])
        return v.shape[0]

    cdef Py_ssize_t c_write(self, const char* buf, Py_ssize_t count, int64_t offset) except -1:
        n = self.write(offset, PyBytes_FromStringAndSize(buf, count))
        if not isinstance(n, int) or not 0 <= n <= count:
            raise ValueError("write() must return a count between 0 and %d, not %r" % (count, n))
        return n

    cdef int c_getdents64(self, Writer* w, int32_t count, bint seek0) except -1:
        ents = self.getdents64(count, seek0)
        if len(ents) > 0xFFFF:      # the wire's count is a u16: never wrap it
            raise OSError(E.EIO, "getdents64 returned more than 65535 entries")
        w_u16(w, len(ents))
        for d in ents:
            name = <bytes?>d.name
            w_dirent(w, d.ino, d.dev_minor, d.dev_major, d.off, d.type, name, len(name))
        return 0

    cdef int c_close(self) except -1:
        self.close()
        return 0

    cdef int c_host_fd(self) noexcept:
        """-1, or the host FD whose statx, pread, pwrite, fsync and (for a
        directory) getdents64 are exactly this file's FStat, PRead, PWrite,
        FSync and Getdents64 (the stock backend's): the core then serves
        those itself, without the GIL (native/fastpath.h), and Close too,
        calling c_close a little later. It must stay open until c_close."""
        return -1


cdef class BoundSocketFDImpl:
    """A bound host socket of a backend (gVisor's BoundSocketFDImpl)."""

    def listen(self, backlog):
        """Listen: marks the socket as accepting connections.

        Receives `backlog`, as listen(2). Returns None.
        Lock: read."""
        _not_implemented()

    def accept(self):
        """Accept: takes the first pending connection.

        Returns (host FD of the new connection, donated; peer address bytes,
        maybe b"").
        Errors: EAGAIN (none pending).
        Lock: read."""
        _not_implemented()

    def close(self):
        """Called once, when the server drops its last reference.

        Lock: none."""
        pass


cdef class ConnectionImpl:
    """One mount's backend: creates the root ControlFDImpl and says which
    messages it supports."""

    def mount(self):
        """Mount: the root of this backend's tree.

        Returns MountResult(root, host_fd=None), or the ControlFDImpl alone; a
        host_fd of the mount point is donated.
        Errors: any errno fails the mount.
        Lock: read."""
        _not_implemented()

    def supported_messages(self):
        """The MIDs this backend serves; the server adds Mount and Channel.

        Returns a sequence of MID (ints). Asked once, when the connection
        starts; others answer EOPNOTSUPP. The default: those whose methods the
        backend's classes override (gofer.lisafs.implemented_messages).
        Lock: none."""
        from gofer.lisafs import implemented_messages
        return implemented_messages(self)
