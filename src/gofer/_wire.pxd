# Declarations shared by the wire codec and the server core: the packed C
# structs of native/lisafs_wire.h, a bounds-checked reader over a request and
# a bounded writer into a response buffer (socket buffer or channel window).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.string cimport memcpy

cdef extern from "lisafs_wire.h" nogil:
    struct lisafs_ts:
        int64_t sec
        uint32_t nsec
        int32_t pad
    struct lisafs_statx:
        uint32_t mask
        uint32_t blksize
        uint64_t attributes
        uint32_t nlink
        uint32_t uid
        uint32_t gid
        uint16_t mode
        uint16_t pad
        uint64_t ino
        uint64_t size
        uint64_t blocks
        uint64_t attributes_mask
        lisafs_ts atime, btime, ctime, mtime
        uint32_t rdev_major, rdev_minor
        uint32_t dev_major, dev_minor
    struct lisafs_inode:
        uint64_t control_fd
        lisafs_statx stat
    struct lisafs_statfs:
        uint64_t type
        int64_t block_size
        uint64_t blocks, blocks_free, blocks_available, files, files_free, name_length
    uint16_t lisafs_ld16(const char *p)
    uint32_t lisafs_ld32(const char *p)
    uint64_t lisafs_ld64(const char *p)
    void lisafs_st16(char *p, uint16_t v)
    void lisafs_st32(char *p, uint32_t v)
    void lisafs_st64(char *p, uint64_t v)

cdef class Statx:
    cdef public uint32_t mask
    cdef public uint32_t blksize
    cdef public uint64_t attributes
    cdef public uint32_t nlink
    cdef public uint32_t uid
    cdef public uint32_t gid
    cdef public uint16_t mode
    cdef public uint64_t ino
    cdef public uint64_t size
    cdef public uint64_t blocks
    cdef public uint64_t attributes_mask
    cdef public int64_t atime_sec
    cdef public uint32_t atime_nsec
    cdef public int64_t btime_sec
    cdef public uint32_t btime_nsec
    cdef public int64_t ctime_sec
    cdef public uint32_t ctime_nsec
    cdef public int64_t mtime_sec
    cdef public uint32_t mtime_nsec
    cdef public uint32_t rdev_major
    cdef public uint32_t rdev_minor
    cdef public uint32_t dev_major
    cdef public uint32_t dev_minor
    cdef void to_c(self, lisafs_statx* out) noexcept

cdef Statx statx_from_c(const lisafs_statx* st)

cdef struct Reader:
    const char* buf
    Py_ssize_t len
    Py_ssize_t pos

cdef struct Writer:
    char* buf
    Py_ssize_t cap
    Py_ssize_t len
    bint growable      # a malloc'd buffer the writer may realloc (client side)

cdef int raise_short(Py_ssize_t need, Py_ssize_t have) except -1
cdef int raise_full() except -1

cdef inline int r_need(Reader* r, Py_ssize_t n) except -1:
    if r.len - r.pos < n:
        raise_short(n, r.len - r.pos)
    return 0

cdef inline uint8_t r_u8(Reader* r) except? 0xff:
    r_need(r, 1)
    r.pos += 1
    return <uint8_t>r.buf[r.pos - 1]

cdef inline uint16_t r_u16(Reader* r) except? 0xffff:
    r_need(r, 2)
    r.pos += 2
    return lisafs_ld16(r.buf + r.pos - 2)

cdef inline uint32_t r_u32(Reader* r) except? 0xffffffff:
    r_need(r, 4)
    r.pos += 4
    return lisafs_ld32(r.buf + r.pos - 4)

cdef inline uint64_t r_u64(Reader* r) except? 0xffffffffffffffff:
    r_need(r, 8)
    r.pos += 8
    return lisafs_ld64(r.buf + r.pos - 8)

cdef inline const char* r_bytes(Reader* r, Py_ssize_t n) except NULL:
    """Borrows n bytes of the buffer (no copy)."""
    r_need(r, n)
    r.pos += n
    return r.buf + r.pos - n

cdef inline const char* r_str(Reader* r, uint16_t* n) except NULL:
    """A SizedString: u16 length then the bytes, borrowed."""
    n[0] = r_u16(r)
    return r_bytes(r, n[0])

cdef int w_grow(Writer* w, Py_ssize_t n) except -1

cdef inline char* w_reserve(Writer* w, Py_ssize_t n) except NULL:
    """Room for n more bytes; returns where they go and advances the length."""
    if w.cap - w.len < n:
        w_grow(w, n)
    w.len += n
    return w.buf + w.len - n

cdef inline int w_u8(Writer* w, uint8_t v) except -1:
    w_reserve(w, 1)[0] = <char>v
    return 0

cdef inline int w_u16(Writer* w, uint16_t v) except -1:
    lisafs_st16(w_reserve(w, 2), v)
    return 0

cdef inline int w_u32(Writer* w, uint32_t v) except -1:
    lisafs_st32(w_reserve(w, 4), v)
    return 0

cdef inline int w_u64(Writer* w, uint64_t v) except -1:
    lisafs_st64(w_reserve(w, 8), v)
    return 0

cdef inline int w_bytes(Writer* w, const void* p, Py_ssize_t n) except -1:
    memcpy(w_reserve(w, n), p, n)
    return 0

cdef inline int w_str(Writer* w, const char* p, Py_ssize_t n) except -1:
    # A SizedString holds at most 65535 bytes; gVisor would silently wrap the
    # length, we refuse instead of sending a corrupt message.
    if n > 0xffff:
        raise ValueError("string of %d bytes does not fit a SizedString" % n)
    w_u16(w, <uint16_t>n)
    return w_bytes(w, p, n)

# One encoder per wire type, used by the server, its backends and the codec.

cdef inline int w_statx(Writer* w, const lisafs_statx* st) except -1:
    return w_bytes(w, st, sizeof(lisafs_statx))

cdef inline int w_inode(Writer* w, uint64_t control_fd, const lisafs_statx* st) except -1:
    cdef char* p = w_reserve(w, sizeof(lisafs_inode))
    lisafs_st64(p, control_fd)
    memcpy(p + 8, st, sizeof(lisafs_statx))
    return 0

cdef inline int w_dirent(Writer* w, uint64_t ino, uint32_t dev_minor, uint32_t dev_major,
                         uint64_t off, uint8_t type, const char* name, Py_ssize_t n) except -1:
    """A Dirent: ino, dev_minor, dev_major, off, type, then the name as a
    SizedString."""
    if n > 0xffff:
        raise ValueError("string of %d bytes does not fit a SizedString" % n)
    cdef char* p = w_reserve(w, 27 + n)
    lisafs_st64(p, ino)
    lisafs_st32(p + 8, dev_minor)
    lisafs_st32(p + 12, dev_major)
    lisafs_st64(p + 16, off)
    p[24] = <char>type
    lisafs_st16(p + 25, <uint16_t>n)
    memcpy(p + 27, name, n)
    return 0
