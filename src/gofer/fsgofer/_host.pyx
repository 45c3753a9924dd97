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
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.string cimport memcpy, strlen
from posix.unistd cimport close, dup

from gofer._wire cimport (Writer, lisafs_statx, w_reserve, w_u16, w_u32, w_u64,
                          w_u8, w_bytes, lisafs_st16)
from gofer._server cimport ControlFDImpl, OpenFDImpl, ConnectionImpl
from gofer._server import donate_fd

cdef extern from "<fcntl.h>" nogil:
    int openat(int, const char*, int, ...)
    int O_PATH, O_NOFOLLOW, O_CLOEXEC, O_RDONLY, O_DIRECTORY, O_NONBLOCK, AT_EMPTY_PATH
    int AT_SYMLINK_NOFOLLOW, AT_STATX_DONT_SYNC

cdef extern from "<sys/stat.h>" nogil:
    struct statx:
        pass
    int c_statx "statx"(int, const char*, int, unsigned, statx*)
    unsigned STATX_BASIC_STATS, STATX_BTIME
    int S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFSOCK, S_IFIFO, S_IFCHR
    unsigned gnu_dev_major(unsigned long long)
    unsigned gnu_dev_minor(unsigned long long)

cdef extern from "<unistd.h>" nogil:
    ssize_t pread(int, void*, size_t, long)
    ssize_t pwrite(int, const void*, size_t, long)
    long lseek(int, long, int)

cdef extern from "<dirent.h>" nogil:
    ssize_t getdents64(int, void*, size_t)

cdef extern from *:
    """
    /* The kernel's struct statx begins with exactly LISAFS's 144-byte Statx. */
    _Static_assert(sizeof(struct statx) >= 144, "struct statx");
    struct gofer_dirent64 {
        unsigned long long d_ino;
        long long d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
    };
    """
    struct gofer_dirent64:
        unsigned long long d_ino
        long long d_off
        unsigned short d_reclen
        unsigned char d_type
        char d_name[1]

cdef enum:
    STAT_MASK = 0x7ff | 0x800       # STATX_BASIC_STATS | STATX_BTIME
    # Large reads and writes release the GIL; small ones are faster holding it.
    NOGIL_IO_BYTES = 64 * 1024
    DIRENT_BUF = 8192

cdef int _proc_self_fd = -1


cdef int proc_self_fd() except -1:
    global _proc_self_fd
    if _proc_self_fd < 0:
        _proc_self_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return _proc_self_fd


cdef inline int raise_errno(int err) except -1:
    raise OSError(err, os.strerror(err))


cdef inline int fstatx(int fd, lisafs_statx* out) except -1:
    cdef char buf[256]            # struct statx is 256 bytes
    if c_statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STAT_MASK, <statx*>buf) < 0:
        raise_errno(errno)
    memcpy(out, buf, sizeof(lisafs_statx))
    out.pad = 0
    return 0


cdef inline bint supported_type(uint16_t mode) noexcept:
    cdef int t = mode & S_IFMT
    return t == S_IFREG or t == S_IFDIR or t == S_IFLNK or t == S_IFSOCK or \
        t == S_IFIFO or t == S_IFCHR


cdef class HostControlFD(ControlFDImpl):
    cdef readonly int fd
    cdef uint16_t ftype

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    cdef int c_stat(self, lisafs_statx* out) except -1:
        return fstatx(self.fd, out)

    cdef object c_walk(self, bytes name, lisafs_statx* out):
        cdef int fd = openat(self.fd, PyBytes_AS_STRING(name), O_PATH | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0:
            if errno == E.ENOENT:
                return None
            raise_errno(errno)
        try:
            fstatx(fd, out)
        except BaseException:
            close(fd)
            raise
        if not supported_type(out.mode):
            close(fd)
            raise_errno(E.EPERM)
        cdef HostControlFD child = HostControlFD.__new__(HostControlFD)
        child.fd = fd
        child.ftype = out.mode & S_IFMT
        return child

    cdef object c_open(self, uint32_t flags, int* host_fd):
        host_fd[0] = -1
        if self.ftype == S_IFIFO or self.ftype == S_IFSOCK or self.ftype == S_IFCHR:
            # Host FIFOs, sockets and devices are not opened by default (gVisor's
            # --host-fifo / --host-uds / character-device policies).
            raise_errno(E.EPERM)
        cdef bytes proc_name = str(self.fd).encode()
        cdef int fd = openat(proc_self_fd(), PyBytes_AS_STRING(proc_name), flags | O_CLOEXEC)
        if fd < 0:
            raise_errno(errno)
        cdef HostOpenFD ofd = HostOpenFD.__new__(HostOpenFD)
        ofd.fd = fd
        if self.ftype == S_IFREG:
            # Best effort: with the host FD the client reads and writes directly.
            host_fd[0] = dup(fd)
            if host_fd[0] >= 0:
                donate_fd(host_fd[0])
        return ofd

    cdef int c_close(self) except -1:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        return 0

    # Python-level API, so tools and extensions can wrap the stock backend.
    def stat(self):
        from gofer._wire import Statx
        cdef lisafs_statx st
        self.c_stat(&st)
        return Statx.from_bytes(PyBytes_FromStringAndSize(<char*>&st, sizeof(st)))


cdef class HostOpenFD(OpenFDImpl):
    cdef readonly int fd

    def __cinit__(self):
        self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    cdef int c_stat(self, lisafs_statx* out) except -1:
        return fstatx(self.fd, out)

    cdef Py_ssize_t c_read(self, char* buf, Py_ssize_t count, int64_t offset) except -1:
        cdef Py_ssize_t n
        while True:
            if count >= NOGIL_IO_BYTES:
                with nogil:
                    n = pread(self.fd, buf, count, offset)
            else:
                n = pread(self.fd, buf, count, offset)
            if n >= 0:
                return n
            if errno != EINTR:
                return raise_errno(errno)

    cdef Py_ssize_t c_write(self, const char* buf, Py_ssize_t count, int64_t offset) except -1:
        cdef Py_ssize_t n
        while True:
            if count >= NOGIL_IO_BYTES:
                with nogil:
                    n = pwrite(self.fd, buf, count, offset)
            else:
                n = pwrite(self.fd, buf, count, offset)
            if n >= 0:
                return n
            if errno != EINTR:
                return raise_errno(errno)

    cdef int c_getdents64(self, Writer* w, int32_t count, bint seek0) except -1:
        cdef char buf[DIRENT_BUF]
        cdef char stx[256]
        cdef Py_ssize_t n, pos, hdr = w.len, want
        cdef int32_t consumed = 0
        cdef uint16_t nents = 0, namelen
        cdef gofer_dirent64* d
        cdef char* p
        cdef uint32_t* devs
        if seek0 and lseek(self.fd, 0, 0) < 0:
            raise_errno(errno)
        w_u16(w, 0)
        while consumed < count and nents < 0xffff:
            want = min(<Py_ssize_t>DIRENT_BUF, <Py_ssize_t>(count - consumed))
            n = getdents64(self.fd, buf, want)
            if n < 0:
                if errno == E.EINVAL and nents > 0:
                    break           # buffer too small for the next entry
                raise_errno(errno)
            if n == 0:
                break
            pos = 0
            while pos < n:
                d = <gofer_dirent64*>(buf + pos)
                pos += d.d_reclen
                consumed += d.d_reclen
                # The client wants each entry's device too (gVisor skips the
                # entries it cannot stat).
                if c_statx(self.fd, d.d_name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0,
                           <statx*>stx) < 0:
                    continue
                devs = <uint32_t*>(stx + 136)        # stx_dev_major, stx_dev_minor
                namelen = <uint16_t>strlen(d.d_name)
                p = w_reserve(w, 27 + namelen)
                memcpy(p, &d.d_ino, 8)
                memcpy(p + 8, &devs[1], 4)
                memcpy(p + 12, &devs[0], 4)
                memcpy(p + 16, &d.d_off, 8)
                p[24] = <char>d.d_type
                lisafs_st16(p + 25, namelen)
                memcpy(p + 27, d.d_name, namelen)
                nents += 1
        lisafs_st16(w.buf + hdr, nents)
        return 0

    cdef int c_close(self) except -1:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        return 0


cdef class HostConnection(ConnectionImpl):
    """Serves the host directory `root` (gVisor's stock fsgofer)."""
    cdef readonly bytes root

    def __init__(self, root):
        self.root = os.fsencode(root)

    def mount(self):
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        cdef HostControlFD c = HostControlFD.__new__(HostControlFD)
        c.fd = fd
        c.ftype = S_IFDIR
        return c
