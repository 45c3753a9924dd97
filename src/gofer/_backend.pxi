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
        """Returns the file's `Statx` (mask must include STATX_TYPE). The
        default asks `c_stat`, so a Cython backend overriding only that has
        a consistent Python-level stat()."""
        return _stat_via_c(self)

    def walk(self, bytes name):
        """Returns `(child ControlFDImpl, child Statx)`; raise OSError(ENOENT)
        (or return None) when the name does not exist."""
        _not_implemented()

    def open(self, uint32_t flags):
        """Returns an `OpenFDImpl`, or `(OpenFDImpl, host_fd)` to donate an FD."""
        _not_implemented()

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        """Changes the attributes in `mask` (STATX_MODE|UID|GID|SIZE|ATIME|MTIME);
        atime/mtime are (sec, nsec) with nsec possibly UTIME_NOW/UTIME_OMIT.
        Returns None, or (failure_mask, errno) for a partial failure."""
        _not_implemented()

    def open_create(self, mode, uid, gid, bytes name, flags):
        """Creates and opens `name`: returns (ControlFDImpl, Statx, OpenFDImpl,
        host_fd or -1)."""
        _not_implemented()

    def mkdir(self, mode, uid, gid, bytes name):
        """Returns (ControlFDImpl, Statx) of the new directory."""
        _not_implemented()

    def mknod(self, mode, uid, gid, bytes name, minor, major):
        _not_implemented()

    def symlink(self, bytes name, bytes target, uid, gid):
        _not_implemented()

    def link(self, ControlFDImpl dir, bytes name):
        """Makes `dir`/`name` a hard link to this file; returns (impl, Statx)."""
        _not_implemented()

    def statfs(self):
        """Returns an object with the StatFS fields (see gofer.lisafs.StatFS)."""
        _not_implemented()

    def readlink(self):
        """Returns the symlink's target (bytes)."""
        _not_implemented()

    def connect(self, sock_type):
        """Returns a host FD connected to this socket file."""
        _not_implemented()

    def connect_with_creds(self, sock_type, uid, gid):
        return self.connect(sock_type)

    def bind_at(self, sock_type, bytes name, mode, uid, gid):
        """Returns (ControlFDImpl, Statx, BoundSocketFDImpl, host_fd)."""
        _not_implemented()

    def unlink(self, bytes name, flags):
        _not_implemented()

    def rename_at(self, bytes old_name, ControlFDImpl new_dir, bytes new_name, flags):
        """Renames this directory's `old_name` to `new_dir`/`new_name`
        (flags as renameat2(2): RENAME_NOREPLACE, RENAME_EXCHANGE...)."""
        _not_implemented()

    def get_xattr(self, bytes name, size):
        """Returns the value (size 0 means the whole value)."""
        _not_implemented()

    def set_xattr(self, bytes name, bytes value, flags):
        _not_implemented()

    def list_xattr(self, size):
        """Returns a list of names (bytes)."""
        _not_implemented()

    def remove_xattr(self, bytes name):
        _not_implemented()

    def close(self):
        """Called once when the core drops its last reference."""

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


cdef class OpenFDImpl:
    """An open file of a backend (gVisor's OpenFDImpl)."""

    def stat(self):
        return _stat_via_c(self)

    def read(self, int64_t offset, Py_ssize_t count):
        """Returns at most `count` bytes read at `offset` (b"" at EOF)."""
        _not_implemented()

    def write(self, int64_t offset, data):
        """Writes `data` (bytes) at `offset`; returns the count written."""
        _not_implemented()

    def getdents64(self, int32_t count, bint seek0):
        """Returns the next `Dirent`s, at most `count` bytes of them on the
        wire, restarting from the beginning when `seek0`; [] at the end. The
        default pages what readdir() lists (gofer.lisafs.page_dirents)."""
        from gofer.lisafs import page_dirents
        return page_dirents(self, count, seek0)

    def readdir(self):
        """Lists the whole directory (no "." or ".."): `Dirent`s."""
        _not_implemented()

    def sync(self):
        pass

    def allocate(self, mode, offset, length):
        _not_implemented()

    def flush(self):
        pass

    def close(self):
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


cdef class BoundSocketFDImpl:
    """A bound host socket of a backend (gVisor's BoundSocketFDImpl)."""

    def listen(self, backlog):
        _not_implemented()

    def accept(self):
        """Returns (host_fd of the new connection, peer address bytes)."""
        _not_implemented()

    def close(self):
        pass


cdef class ConnectionImpl:
    """One mount's backend: creates the root ControlFDImpl and says which
    messages it supports."""

    def mount(self):
        """Returns the root `ControlFDImpl`, or `(impl, host_fd)` to donate a
        host FD for the mount point."""
        _not_implemented()

    def supported_messages(self):
        """The MIDs this backend serves; the core adds Mount and Channel. The
        default: those whose methods the backend's classes override
        (gofer.lisafs.implemented_messages)."""
        from gofer.lisafs import implemented_messages
        return implemented_messages(self)
