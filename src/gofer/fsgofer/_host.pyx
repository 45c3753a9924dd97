# cython: language_level=3, boundscheck=False, wraparound=False
"""The stock backend's hot paths: a host directory served through FDs.

Every ControlFD holds an O_PATH|O_NOFOLLOW host FD. Walks go one component
at a time with openat() from the parent's FD, never through a path string,
so a symlink (or a directory swapped for one) is never followed on the host.
Files are (re)opened through /proc/self/fd, as gVisor's fsgofer does.
"""
import os
import errno as E

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.errno cimport errno, EINTR
from libc.stdint cimport uint16_t, uint32_t, uint64_t, int32_t, int64_t
from posix.unistd cimport close, dup

import _socket as socket          # the C module: `socket`'s enums cost start-up

from gofer.lisafs cimport (BoundSocketFDImpl, ConnectionImpl, ControlFDImpl, OpenFDImpl, Statx,
                          Writer, lisafs_statx)
from gofer._wire import StatFS
from gofer import _wire

cdef extern from "<fcntl.h>" nogil:
    int openat(int, const char*, int, ...)
    int O_PATH, O_NOFOLLOW, O_CLOEXEC, O_RDONLY, O_NONBLOCK, AT_EMPTY_PATH
    int O_WRONLY
    int fcntl(int, int, ...)
    int F_GETFL, F_SETFL
    int AT_SYMLINK_NOFOLLOW

cdef extern from "<sys/stat.h>" nogil:
    int S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFSOCK, S_IFIFO, S_IFCHR

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec

cdef extern from "<sys/stat.h>" nogil:
    int utimensat(int, const char*, const timespec*, int)

cdef extern from "<fcntl.h>" nogil:
    int fallocate(int, int, long, long)
    int fchownat(int, const char*, unsigned, unsigned, int)
    int unlinkat(int, const char*, int)

cdef extern from "<sys/vfs.h>" nogil:
    struct statfs:
        long f_type
        long f_bsize
        unsigned long f_blocks, f_bfree, f_bavail, f_files, f_ffree
        long f_namelen
    int fstatfs(int, statfs*)

cdef extern from "<sys/syscall.h>" nogil:
    long syscall(long, ...)
    long SYS_setreuid, SYS_setregid

cdef extern from "<sys/socket.h>" nogil:
    int listen(int, int)
    int accept4(int, void*, void*, int)
    int SOCK_NONBLOCK, SOCK_CLOEXEC

cdef extern from "hostcalls.h" nogil:
    # Shared with the core's GIL-free fast path, so both answer alike.
    int gofer_host_fstat(int fd, lisafs_statx* out)
    int gofer_host_control_stat(int fd, lisafs_statx* out)
    int gofer_host_walk(int dirfd, const char* name, lisafs_statx* out)
    int gofer_host_reopen(int fd_dir, int fd, int flags)
    int gofer_host_mkdir(int dirfd, const char* name, uint32_t mode, uint32_t uid,
                         uint32_t gid, lisafs_statx* out)
    int gofer_host_create(int dirfd, int fd_dir, const char* name, uint32_t mode, uint32_t uid,
                          uint32_t gid, int flags, lisafs_statx* out, int* open_fd)
    int gofer_host_unlink(int dirfd, const char* name, int flags)
    int gofer_host_rename(int old_dir, const char* old_name, int new_dir,
                          const char* new_name, unsigned flags)
    Py_ssize_t gofer_host_pio(int fd, char* buf, size_t count, int64_t offset, int writing)
    int gofer_host_fsync(int fd)
    int gofer_host_getdents64(int fd, int32_t count, int seek0, char* out, size_t cap,
                              size_t* outlen)

cdef enum:
    UTIME_OMIT = (1 << 30) - 2

# Files are reopened through this process's FD directory: openat(dir, "N").
# Opened at import, while /proc is reachable; `use_fd_directory` replaces it
# with the private bind gofer.sandbox leaves once /proc is gone.
cdef int _proc_self_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
# Calls that take only a path (xattrs, connect, bind) name a file as
# _fd_path_prefix + "N": absolute while /proc is mounted, else relative to
# the working directory, which is then the FD directory.
cdef bytes _fd_path_prefix = b"/proc/self/fd/"


cdef inline int proc_self_fd() noexcept:
    return _proc_self_fd


def use_fd_directory(int fd):
    """Serves from now on through `fd`, an open directory of this process's
    FDs (see gofer.sandbox.setup_root), and makes it the working directory:
    with no /proc mounted, path-only calls reach a file as "N" from there.
    Takes ownership of `fd`."""
    global _proc_self_fd, _fd_path_prefix
    os.fchdir(fd)
    os.close(_proc_self_fd)
    _proc_self_fd = fd
    _fd_path_prefix = b""


cdef int reopen_fd(int fd, int flags) except -1:
    """A new open file description of the file open at `fd`, with `flags`
    (O_CLOEXEC added), through this process's FD directory: no path lookup,
    so nothing can be swapped in between."""
    cdef int nfd
    with nogil:
        nfd = gofer_host_reopen(_proc_self_fd, fd, flags)
    if nfd < 0:
        raise_errno(-nfd)
    return nfd


def reopen(int fd, int flags):
    """`reopen_fd` for backends: how one donates an FD whose access mode
    matches the client's open."""
    return reopen_fd(fd, flags)


cdef inline void close_once(int* fd) noexcept:
    """Closes *fd if it is open, and marks it closed; without the GIL, as
    the last close of a file may flush it to the host."""
    cdef int f = fd[0]
    if f >= 0:
        fd[0] = -1
        with nogil:
            close(f)


cdef inline int raise_errno(int err) except -1:
    raise OSError(err, os.strerror(err))


cdef inline int fstatx(int fd, lisafs_statx* out) except -1:
    cdef int rc
    with nogil:
        rc = gofer_host_fstat(fd, out)
    if rc < 0:
        raise_errno(-rc)
    return 0


cdef inline int as_int(uint32_t v) noexcept nogil:
    """A u32 flags word as the C int the syscall takes, bit for bit, as
    gVisor's int(flags) reaches the kernel: the kernel then refuses unknown
    high bits itself (EINVAL, or EOPNOTSUPP for fallocate's mode)."""
    return <int>v


cdef void unlink_quietly(int dir_fd, const char* name, int flags) noexcept:
    """Undoes a create that failed half-way (its own errno is moot)."""
    with nogil:
        unlinkat(dir_fd, name, flags)


cdef inline void check(int rc) except *:
    # The GIL was released around the call that returned rc; CPython keeps
    # errno across taking the GIL back.
    if rc < 0:
        raise_errno(errno)


cdef HostControlFD new_control(HostConnection conn, int fd, lisafs_statx* st):
    """Wraps a fresh O_PATH host FD; closes it if the file cannot be served."""
    cdef int rc
    with nogil:
        rc = gofer_host_control_stat(fd, st)
    if rc < 0:
        close(fd)
        raise_errno(-rc)
    return wrap_control(conn, fd, st.mode & S_IFMT)


cdef HostControlFD wrap_control(HostConnection conn, int fd, uint16_t ftype):
    cdef HostControlFD c = HostControlFD.__new__(HostControlFD)
    c.fd = fd
    c.ftype = ftype
    c.conn = conn
    return c


cdef Statx to_statx(lisafs_statx* st):
    return Statx.from_bytes(PyBytes_FromStringAndSize(<char*>st, sizeof(lisafs_statx)))


cdef set_owner(int fd, uint32_t uid, uint32_t gid):
    # NO_UID / NO_GID (0xFFFFFFFF) mean "leave as is", as fchownat's -1 does.
    cdef int rc = 0
    if uid != 0xFFFFFFFF or gid != 0xFFFFFFFF:
        with nogil:
            rc = fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
    check(rc)


cdef class HostControlFD(ControlFDImpl):
    cdef readonly int fd
    cdef uint16_t ftype
    cdef HostConnection conn
    cdef bint is_mount_point

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        close_once(&self.fd)

    cdef int c_stat(self, lisafs_statx* out) except -1:
        return fstatx(self.fd, out)

    cdef int c_host_fd(self) noexcept:
        # The core serves FStat itself, unless a subclass may answer
        # otherwise (a Python override would be bypassed).
        return self.fd if type(self) is HostControlFD else -1

    cdef const int* c_reopen_dir(self) noexcept:
        # OpenAt is exactly c_open's reopen (and dup, for a regular file)
        # but for FIFOs, sockets, devices and the mount point.
        if (self.ftype == S_IFREG or self.ftype == S_IFDIR) and not self.is_mount_point:
            return &_proc_self_fd
        return NULL

    cdef object c_adopt_open(self, int host_fd):
        cdef HostOpenFD ofd = HostOpenFD.__new__(HostOpenFD)
        ofd.fd = host_fd
        return ofd

    cdef const int* c_host_tree(self) noexcept:
        # c_walk is the core's host walk, and wrap_control its child.
        if self.ftype == S_IFDIR and type(self) is HostControlFD:
            return &_proc_self_fd
        return NULL

    cdef object c_adopt_walk(self, int host_fd, uint16_t ftype):
        return wrap_control(self.conn, host_fd, ftype)

    cdef object c_walk(self, bytes name, lisafs_statx* out):
        cdef const char* c_name = PyBytes_AS_STRING(name)
        cdef int fd
        # The same step as the core's GIL-free WalkStat (native/hostcalls.h).
        with nogil:
            fd = gofer_host_walk(self.fd, c_name, out)
        if fd == -E.ENOENT:
            return None
        if fd < 0:
            raise_errno(-fd)
        return wrap_control(self.conn, fd, out.mode & S_IFMT)

    cdef object c_open(self, uint32_t flags, int* host_fd):
        host_fd[0] = -1
        # Host FIFOs, sockets and devices open only as the policies allow.
        if (self.ftype == S_IFIFO and not self.conn.fifo_open) or \
                (self.ftype == S_IFSOCK and not self.conn.uds_open) or \
                (self.ftype == S_IFCHR and not self.conn.char_devices):
            raise_errno(E.EPERM)
        if self.ftype == S_IFIFO or self.ftype == S_IFCHR:
            # Opening a FIFO without a peer would block the server; the
            # client waits on the donated FD instead (ENXIO: no reader yet).
            flags |= O_NONBLOCK
        cdef int fd = self.reopen(flags)
        cdef HostOpenFD ofd = HostOpenFD.__new__(HostOpenFD)
        ofd.fd = fd
        if self.ftype == S_IFREG or self.ftype == S_IFIFO or self.ftype == S_IFCHR or \
                (self.is_mount_point and self.conn.donate_mount_fd):
            # With the host FD the client does I/O itself; FIFOs and devices
            # need it to wait on (the gofer never blocks on them).
            host_fd[0] = dup(fd)
            if host_fd[0] < 0 and self.ftype != S_IFREG:
                raise_errno(errno)
        return ofd

    cdef int reopen(self, uint32_t flags) except -1:
        """A new open file description of this file (see `reopen_fd`)."""
        return reopen_fd(self.fd, flags)

    cdef bytes proc_path(self):
        return _fd_path_prefix + str(self.fd).encode()

    cdef int c_close(self) except -1:
        close_once(&self.fd)
        return 0

    # Python-level API, so tools and extensions can wrap the stock backend.
    def stat(self):
        cdef lisafs_statx st
        self.c_stat(&st)
        return to_statx(&st)

    # ---------------------------------------------------------- cold RPCs

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        cdef timespec ts[2]
        cdef const char* c_name
        cdef int rc
        failed, err = 0, 0
        if mask & 0x2:                                    # STATX_MODE
            try:
                if self.ftype == S_IFLNK:
                    raise_errno(E.EOPNOTSUPP)
                os.chmod(str(self.fd), mode & 0o7777, dir_fd=proc_self_fd())
            except OSError as e:
                failed, err = failed | 0x2, e.errno
        if mask & 0x200:                                  # STATX_SIZE
            try:
                if self.ftype == S_IFDIR:
                    raise_errno(E.EISDIR)
                if size > 0x7fffffffffffffff:
                    raise_errno(E.EINVAL)       # what ftruncate(2) says to a negative off_t
                wfd = self.reopen(O_WRONLY | O_NONBLOCK)
                try:
                    os.ftruncate(wfd, size)
                finally:
                    close(wfd)
            except OSError as e:
                failed, err = failed | 0x200, e.errno
        if mask & 0x60:                                   # STATX_ATIME | STATX_MTIME
            ts[0].tv_sec, ts[0].tv_nsec = atime if mask & 0x20 else (0, UTIME_OMIT)
            ts[1].tv_sec, ts[1].tv_nsec = mtime if mask & 0x40 else (0, UTIME_OMIT)
            # Through the magic link the times land on this very inode, a
            # symlink included.
            name = str(self.fd).encode()
            c_name = name
            with nogil:
                rc = utimensat(_proc_self_fd, c_name, ts, 0)
            if rc < 0:
                failed, err = failed | (mask & 0x60), errno
        if mask & 0x18:                                   # STATX_UID | STATX_GID
            try:
                set_owner(self.fd, uid if mask & 0x8 else 0xFFFFFFFF,
                          gid if mask & 0x10 else 0xFFFFFFFF)
            except OSError as e:
                failed, err = failed | (mask & 0x18), e.errno
        return (failed, err) if failed else None

    cdef tuple created(self, bytes name, int fd, uint32_t uid, uint32_t gid):
        """Finishes a create: owner, stat, ControlFD; undoes it on failure."""
        cdef lisafs_statx st
        try:
            try:
                set_owner(fd, uid, gid)
            except BaseException:
                close(fd)
                raise
            child = new_control(self.conn, fd, &st)       # closes fd if it fails
        except BaseException:
            unlink_quietly(self.fd, name, 0)
            raise
        return child, to_statx(&st)

    cdef int open_child(self, bytes name, int flags) except -1:
        cdef const char* c_name = name
        cdef int fd
        with nogil:
            fd = openat(self.fd, c_name, flags | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0:
            err = errno
            unlink_quietly(self.fd, name, 0)
            raise_errno(err)
        return fd

    def open_create(self, uint32_t mode, uint32_t uid, uint32_t gid, bytes name, int flags):
        cdef const char* c_name = name
        cdef lisafs_statx st
        cdef int fd, open_fd = -1
        # The same host calls as the core's GIL-free OpenCreateAt.
        with nogil:
            fd = gofer_host_create(self.fd, _proc_self_fd, c_name, mode, uid, gid, flags, &st,
                                   &open_fd)
        if fd < 0:
            raise_errno(-fd)
        ofd = HostOpenFD.__new__(HostOpenFD)
        (<HostOpenFD>ofd).fd = open_fd
        return wrap_control(self.conn, fd, st.mode & S_IFMT), to_statx(&st), ofd, dup(open_fd)

    def mkdir(self, uint32_t mode, uint32_t uid, uint32_t gid, bytes name):
        cdef const char* c_name = name
        cdef lisafs_statx st
        cdef int fd
        # The same host calls as the core's GIL-free MkdirAt.
        with nogil:
            fd = gofer_host_mkdir(self.fd, c_name, mode, uid, gid, &st)
        if fd < 0:
            raise_errno(-fd)
        return wrap_control(self.conn, fd, S_IFDIR), to_statx(&st)

    def mknod(self, mode, uid, gid, bytes name, minor, major):
        # Regular files, and the 0:0 character device overlayfs uses as a
        # whiteout; nothing else (gVisor's policy).
        kind = mode & S_IFMT
        if not (kind == S_IFREG or (kind == S_IFCHR and minor == 0 and major == 0)):
            raise_errno(E.EPERM)
        os.mknod(name, mode, 0, dir_fd=self.fd)
        return self.created(name, self.open_child(name, O_PATH), uid, gid)

    def symlink(self, bytes name, bytes target, uid, gid):
        os.symlink(target, name, dir_fd=self.fd)
        return self.created(name, self.open_child(name, O_PATH), uid, gid)

    def link(self, ControlFDImpl dir, bytes name):
        # linkat() through the magic link needs no CAP_DAC_READ_SEARCH, unlike
        # AT_EMPTY_PATH, and involves no path the client controls.
        cdef HostControlFD d = <HostControlFD?>dir
        cdef lisafs_statx st
        os.link(str(self.fd), name, src_dir_fd=proc_self_fd(), dst_dir_fd=d.fd,
                follow_symlinks=True)
        child = new_control(self.conn, d.open_child(name, O_PATH), &st)
        return child, to_statx(&st)

    def statfs(self):
        cdef statfs s
        cdef int rc
        with nogil:
            rc = fstatfs(self.fd, &s)
        check(rc)
        return StatFS(s.f_type, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files,
                      s.f_ffree, s.f_namelen)

    def readlink(self):
        return os.readlink(b"", dir_fd=self.fd)

    cdef check_connect(self, sock_type):
        if not self.conn.uds_open:
            raise_errno(E.EPERM)
        if sock_type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
            raise_errno(E.ENXIO)

    def connect(self, sock_type):
        self.check_connect(sock_type)
        # Non-blocking: a listener whose backlog is full answers EAGAIN
        # rather than holding this connection (and its locks) until it
        # accepts.
        s = socket.socket(socket.AF_UNIX, sock_type | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            s.connect(self.proc_path())      # the socket file itself, not a path
        except BaseException:
            s.close()
            raise
        return s.detach()

    def connect_with_creds(self, sock_type, uint32_t uid, uint32_t gid):
        # The host checks the socket's permissions as the sandbox's user: this
        # thread alone (raw syscalls; glibc would switch every thread) takes
        # its euid/egid for the connect, as gVisor's fsgofer does. Refused
        # before any of that: without host UDS the seccomp filter allows
        # neither the get*id nor the setre*id calls, which would kill the gofer.
        self.check_connect(sock_type)
        cdef unsigned ruid = os.getuid(), euid = os.geteuid()
        cdef unsigned rgid = os.getgid(), egid = os.getegid()
        cdef long nothing = -1
        if gid != egid:
            check(<int>syscall(SYS_setregid, nothing, <long>gid))
        try:
            if uid != euid:
                check(<int>syscall(SYS_setreuid, nothing, <long>uid))
            try:
                return self.connect(sock_type)
            finally:
                if uid != euid and syscall(SYS_setreuid, <long>ruid, <long>euid) < 0:
                    os.abort()          # never serve with the sandbox user's identity
        finally:
            if gid != egid and syscall(SYS_setregid, <long>rgid, <long>egid) < 0:
                os.abort()

    def bind_at(self, sock_type, bytes name, mode, uid, gid):
        if not self.conn.uds_create:
            raise_errno(E.EPERM)
        if sock_type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
            raise_errno(E.ENXIO)
        path = self.proc_path() + b"/" + name
        if len(path) >= 108:
            raise_errno(E.EINVAL)
        s = socket.socket(socket.AF_UNIX, sock_type | socket.SOCK_CLOEXEC)
        try:
            os.fchmod(s.fileno(), mode & 0o7777)
            s.bind(path)
            child, st = self.created(name, self.open_child(name, O_PATH), uid, gid)
        except BaseException:
            s.close()
            raise
        bound = HostBoundSocketFD.__new__(HostBoundSocketFD)
        (<HostBoundSocketFD>bound).fd = s.detach()
        return child, st, bound, dup((<HostBoundSocketFD>bound).fd)

    def unlink(self, bytes name, uint32_t flags):
        cdef const char* c_name = name
        cdef int rc
        with nogil:
            rc = gofer_host_unlink(self.fd, c_name, as_int(flags))
        if rc < 0:
            raise_errno(-rc)

    def rename_at(self, bytes old_name, ControlFDImpl new_dir, bytes new_name, unsigned flags):
        cdef const char* old = old_name
        cdef const char* new = new_name
        cdef int new_fd = (<HostControlFD?>new_dir).fd, rc
        with nogil:
            rc = gofer_host_rename(self.fd, old, new_fd, new, flags)
        if rc < 0:
            raise_errno(-rc)

    def get_xattr(self, bytes name, size):
        return os.getxattr(self.proc_path(), name)

    def set_xattr(self, bytes name, bytes value, uint32_t flags):
        os.setxattr(self.proc_path(), name, value, as_int(flags))

    def list_xattr(self, size):
        return [os.fsencode(n) for n in os.listxattr(self.proc_path())]

    def remove_xattr(self, bytes name):
        os.removexattr(self.proc_path(), name)


cdef Py_ssize_t positional_io(int fd, char* buf, Py_ssize_t count, int64_t offset,
                              bint writing) except -1:
    """pread/pwrite with the GIL released: even a small one may wait (a FUSE
    or network file, a lock on the page)."""
    cdef Py_ssize_t n
    with nogil:
        n = gofer_host_pio(fd, buf, count, offset, writing)
    if n < 0:
        raise_errno(-n)
    return n


cdef class HostOpenFD(OpenFDImpl):
    cdef readonly int fd

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        close_once(&self.fd)

    cdef int c_stat(self, lisafs_statx* out) except -1:
        return fstatx(self.fd, out)

    cdef Py_ssize_t c_read(self, char* buf, Py_ssize_t count, int64_t offset) except -1:
        return positional_io(self.fd, buf, count, offset, False)

    cdef Py_ssize_t c_write(self, const char* buf, Py_ssize_t count, int64_t offset) except -1:
        return positional_io(self.fd, <char*>buf, count, offset, True)

    cdef int c_getdents64(self, Writer* w, int32_t count, bint seek0) except -1:
        # The server's Writer is fixed-size: what does not fit is EIO.
        cdef size_t n
        cdef int rc
        with nogil:
            rc = gofer_host_getdents64(self.fd, count, seek0, w.buf + w.len,
                                       <size_t>(w.cap - w.len), &n)
        if rc < 0:
            raise_errno(-rc)
        w.len += n
        return 0

    cdef int c_close(self) except -1:
        close_once(&self.fd)
        return 0

    cdef int c_host_fd(self) noexcept:
        # The core serves FStat, PRead, PWrite, FSync and Getdents64 itself,
        # unless a subclass may answer otherwise (a Python override would be
        # bypassed).
        return self.fd if type(self) is HostOpenFD else -1

    def sync(self):
        cdef int rc
        with nogil:
            rc = gofer_host_fsync(self.fd)
        if rc < 0:
            raise_errno(-rc)

    def allocate(self, uint32_t mode, int64_t offset, int64_t length):
        cdef int rc
        with nogil:
            rc = fallocate(self.fd, as_int(mode), offset, length)
        check(rc)


cdef class HostBoundSocketFD(BoundSocketFDImpl):
    cdef readonly int fd

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        close_once(&self.fd)

    def listen(self, int backlog):
        cdef int rc
        with nogil:
            rc = listen(self.fd, backlog)
        check(rc)

    def accept(self):
        # Never blocks: the listening socket's open file description is the
        # client's too, and a client may have cleared O_NONBLOCK on it; it
        # is set again first. Should a client clear it in between, only
        # this connection waits, with the GIL released. The peer address
        # stays private.
        cdef int fd, fl = fcntl(self.fd, F_GETFL)
        if fl >= 0 and not fl & O_NONBLOCK:
            fcntl(self.fd, F_SETFL, fl | O_NONBLOCK)
        with nogil:
            fd = accept4(self.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
        check(fd)
        return fd, b""

    def close(self):
        close_once(&self.fd)


HOST_UDS = {"none": (False, False), "open": (True, False), "create": (False, True),
            "all": (True, True)}
HOST_FIFO = {"none": False, "open": True}
CHAR_DEVICE_POLICY = {"emulated-only": False, "prefer-emulated": True, "passthrough": True}


cdef class HostConnection(ConnectionImpl):
    """Serves the host directory `root` (gVisor's stock fsgofer).

    The policies are gVisor's flags: host_uds (none/open/create/all),
    host_fifo (none/open), character_device_policy (emulated-only/
    prefer-emulated/passthrough), and donate_mount_fd (directfs).
    """
    cdef readonly bytes root
    cdef readonly bint uds_open, uds_create, fifo_open, char_devices, donate_mount_fd

    def __init__(self, root, *, host_uds="none", host_fifo="none",
                 character_device_policy="emulated-only", donate_mount_fd=False):
        self.root = os.fsencode(root)
        try:
            self.uds_open, self.uds_create = HOST_UDS[host_uds]
            self.fifo_open = HOST_FIFO[host_fifo]
            self.char_devices = CHAR_DEVICE_POLICY[character_device_policy]
        except KeyError as e:
            raise ValueError("unknown policy value %s" % e) from None
        self.donate_mount_fd = donate_mount_fd

    def supported_messages(self):
        # Everything but Flush, like gVisor's fsgofer (the client then treats
        # Flush as a no-op).
        return [m for m in range(3, 34) if m != _wire.FLUSH]

    def mount(self):
        cdef lisafs_statx st
        fd = os.open(self.root, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        cdef HostControlFD c = new_control(self, fd, &st)
        c.is_mount_point = True
        if not self.donate_mount_fd:
            return c
        host_fd = os.open(self.root, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        return c, host_fd
