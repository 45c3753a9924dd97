# cython: language_level=3, boundscheck=False, wraparound=False
"""LISAFS wire format: constants, the Statx value type, and a table-driven
codec for every message (MIDs 0-33) in both directions.

The table below is the single description of each message's layout
(`../shared/spec/lisafs-wire.md` §6). The Python client and the tests use it
through `encode_request`/`decode_response` (and the reverse pair, used by
tests). The server decodes each request in place with the inline readers of
`_wire.pxd` instead; the encoders of the composite types (statx, inode,
dirent) are those of `_wire.pxd`, shared by the codec, the server and its
backends.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport realloc, free
from libc.string cimport memset
from collections import namedtuple

# ---------------------------------------------------------------- constants

ERROR, MOUNT, CHANNEL, FSTAT, SETSTAT, WALK, WALK_STAT, OPEN_AT, \
    OPEN_CREATE_AT, CLOSE, FSYNC, PWRITE, PREAD, MKDIR_AT, MKNOD_AT, \
    SYMLINK_AT, LINK_AT, FSTATFS, FALLOCATE, READLINK_AT, FLUSH, CONNECT, \
    UNLINK_AT, RENAME_AT, GETDENTS64, FGETXATTR, FSETXATTR, FLISTXATTR, \
    FREMOVEXATTR, BIND_AT, LISTEN, ACCEPT, CONNECT_WITH_CREDS, RENAME_AT2 = range(34)

MID_NAMES = ("Error Mount Channel FStat SetStat Walk WalkStat OpenAt OpenCreateAt "
             "Close FSync PWrite PRead MkdirAt MknodAt SymlinkAt LinkAt FStatFS "
             "FAllocate ReadLinkAt Flush Connect UnlinkAt RenameAt Getdents64 "
             "FGetXattr FSetXattr FListXattr FRemoveXattr BindAt Listen Accept "
             "ConnectWithCreds RenameAt2").split()

WALK_SUCCESS, WALK_COMPONENT_DOES_NOT_EXIST, WALK_COMPONENT_SYMLINK = 0, 1, 2

STATX_TYPE, STATX_MODE, STATX_NLINK, STATX_UID, STATX_GID = 0x1, 0x2, 0x4, 0x8, 0x10
STATX_ATIME, STATX_MTIME, STATX_CTIME, STATX_INO, STATX_SIZE = 0x20, 0x40, 0x80, 0x100, 0x200
STATX_BLOCKS, STATX_BASIC_STATS, STATX_BTIME = 0x400, 0x7ff, 0x800

NO_UID = NO_GID = 0xFFFFFFFF
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2

SOCK_HEADER_SIZE = 8
CHANNEL_HEADER_SIZE = 4
STATX_SIZE_BYTES = 144
INODE_SIZE = 152


class ProtocolError(ValueError):
    """A message that does not decode: too short, or a length that overruns."""


class MessageTooLarge(OverflowError):
    """A message that does not fit its (fixed-size) buffer."""


cdef int raise_short(Py_ssize_t need, Py_ssize_t have) except -1:
    raise ProtocolError("message too short: need %d more bytes, %d left" % (need, have))


cdef int raise_full() except -1:
    raise MessageTooLarge("message exceeds the buffer")


cdef int w_grow(Writer* w, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef char* p
    if not w.growable:
        raise_full()
    cap = max(2 * w.cap, w.len + n, 256)
    p = <char*>realloc(w.buf, cap)
    if p == NULL:
        raise MemoryError()
    w.buf = p
    w.cap = cap
    return 0

# ---------------------------------------------------------------- values

cdef class Statx:
    """A file's attributes as LISAFS carries them (the first 144 bytes of
    Linux's struct statx). `mask` says which fields are valid."""

    def __init__(self, **fields):
        for k, v in fields.items():
            setattr(self, k, v)

    cdef void to_c(self, lisafs_statx* o) noexcept:
        memset(o, 0, sizeof(lisafs_statx))
        o.mask = self.mask; o.blksize = self.blksize; o.attributes = self.attributes
        o.nlink = self.nlink; o.uid = self.uid; o.gid = self.gid; o.mode = self.mode
        o.ino = self.ino; o.size = self.size; o.blocks = self.blocks
        o.attributes_mask = self.attributes_mask
        o.atime.sec = self.atime_sec; o.atime.nsec = self.atime_nsec
        o.btime.sec = self.btime_sec; o.btime.nsec = self.btime_nsec
        o.ctime.sec = self.ctime_sec; o.ctime.nsec = self.ctime_nsec
        o.mtime.sec = self.mtime_sec; o.mtime.nsec = self.mtime_nsec
        o.rdev_major = self.rdev_major; o.rdev_minor = self.rdev_minor
        o.dev_major = self.dev_major; o.dev_minor = self.dev_minor

    def to_bytes(self):
        cdef lisafs_statx st
        self.to_c(&st)
        return PyBytes_FromStringAndSize(<char*>&st, sizeof(st))

    @staticmethod
    def from_bytes(const unsigned char[:] data not None):
        if data.shape[0] < sizeof(lisafs_statx):
            raise ProtocolError("Statx needs 144 bytes, got %d" % data.shape[0])
        cdef lisafs_statx st
        memcpy(&st, &data[0], sizeof(st))
        return statx_from_c(&st)

    def as_dict(self):
        return {k: getattr(self, k) for k in STATX_FIELDS}

    def __eq__(self, other):
        return isinstance(other, Statx) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "Statx(%s)" % ", ".join("%s=%r" % kv for kv in self.as_dict().items() if kv[1])


STATX_FIELDS = ("mask blksize attributes nlink uid gid mode ino size blocks attributes_mask "
                "atime_sec atime_nsec btime_sec btime_nsec ctime_sec ctime_nsec "
                "mtime_sec mtime_nsec rdev_major rdev_minor dev_major dev_minor").split()


cdef Statx statx_from_c(const lisafs_statx* s):
    cdef Statx o = Statx.__new__(Statx)
    o.mask = s.mask; o.blksize = s.blksize; o.attributes = s.attributes
    o.nlink = s.nlink; o.uid = s.uid; o.gid = s.gid; o.mode = s.mode
    o.ino = s.ino; o.size = s.size; o.blocks = s.blocks
    o.attributes_mask = s.attributes_mask
    o.atime_sec = s.atime.sec; o.atime_nsec = s.atime.nsec
    o.btime_sec = s.btime.sec; o.btime_nsec = s.btime.nsec
    o.ctime_sec = s.ctime.sec; o.ctime_nsec = s.ctime.nsec
    o.mtime_sec = s.mtime.sec; o.mtime_nsec = s.mtime.nsec
    o.rdev_major = s.rdev_major; o.rdev_minor = s.rdev_minor
    o.dev_major = s.dev_major; o.dev_minor = s.dev_minor
    return o


Inode = namedtuple("Inode", "control_fd stat")
Dirent = namedtuple("Dirent", "ino dev_minor dev_major off type name")
StatFS = namedtuple("StatFS", "type block_size blocks blocks_free blocks_available files "
                              "files_free name_length")

# ---------------------------------------------------------------- layouts

# Field kinds. Integers are little-endian; PAD fields are written as zeros and
# never checked; STR is a SizedString (u16 length); DATA32/DATA64 are byte
# strings preceded by a u32/u64 length.
cdef enum Kind:
    U8, U16, U32, U64, I32, I64, PAD16, PAD32, STR, STRS, FDS, STATX, INODE, \
    INODES, STATXS, MIDS, DIRENTS, DATA32, DATA64

_CREATE = [("dir_fd", U64), ("uid", U32), ("gid", U32), ("mode", U16), (None, PAD16), (None, PAD32)]
_FD = [("fd", U64)]
_EMPTY = []

REQUESTS = {
    ERROR: _EMPTY,
    MOUNT: _EMPTY,
    CHANNEL: _EMPTY,
    FSTAT: _FD,
    SETSTAT: [("fd", U64), ("mask", U32), ("mode", U32), ("uid", U32), ("gid", U32), ("size", U64),
              ("atime_sec", I64), ("atime_nsec", I64), ("mtime_sec", I64), ("mtime_nsec", I64)],
    WALK: [("dir_fd", U64), ("path", STRS)],
    WALK_STAT: [("dir_fd", U64), ("path", STRS)],
    OPEN_AT: [("fd", U64), ("flags", U32), (None, PAD32)],
    OPEN_CREATE_AT: _CREATE + [("flags", U32), ("name", STR)],
    CLOSE: [("fds", FDS)],
    FSYNC: [("fds", FDS)],
    PWRITE: [("offset", U64), ("fd", U64), ("data", DATA32)],
    PREAD: [("offset", U64), ("fd", U64), ("count", U32), (None, PAD32)],
    MKDIR_AT: _CREATE + [("name", STR)],
    MKNOD_AT: _CREATE + [("minor", U32), ("major", U32), ("name", STR)],
    SYMLINK_AT: [("dir_fd", U64), ("uid", U32), ("gid", U32), ("name", STR), ("target", STR)],
    LINK_AT: [("dir_fd", U64), ("target", U64), ("name", STR)],
    FSTATFS: _FD,
    FALLOCATE: [("fd", U64), ("mode", U64), ("offset", U64), ("length", U64)],
    READLINK_AT: _FD,
    FLUSH: _FD,
    CONNECT: [("fd", U64), ("sock_type", U32), (None, PAD32)],
    UNLINK_AT: [("dir_fd", U64), ("flags", U32), ("name", STR)],
    RENAME_AT: [("old_dir", U64), ("new_dir", U64), ("old_name", STR), ("new_name", STR)],
    GETDENTS64: [("dir_fd", U64), ("count", I32), (None, PAD32)],
    FGETXATTR: [("fd", U64), ("buf_size", U32), ("name", STR)],
    FSETXATTR: [("fd", U64), ("flags", U32), ("name", STR), ("value", STR)],
    FLISTXATTR: [("fd", U64), ("size", U64)],
    FREMOVEXATTR: [("fd", U64), ("name", STR)],
    BIND_AT: _CREATE + [("sock_type", U32), ("name", STR)],
    LISTEN: [("fd", U64), ("backlog", I32), (None, PAD32)],
    ACCEPT: _FD,
    CONNECT_WITH_CREDS: [("fd", U64), ("sock_type", U32), (None, PAD32), ("uid", U32), ("gid", U32)],
    RENAME_AT2: [("old_dir", U64), ("new_dir", U64), ("old_name", STR), ("new_name", STR),
                 ("flags", U32)],
}

RESPONSES = {
    ERROR: [("errno", U32)],
    MOUNT: [("root", INODE), ("max_message_size", U32), ("supported", MIDS)],
    CHANNEL: [("data_offset", I64), ("data_length", U64)],
    FSTAT: [("stat", STATX)],
    SETSTAT: [("failure_mask", U32), ("failure_errno", U32)],
    WALK: [("status", U8), ("inodes", INODES)],
    WALK_STAT: [("stats", STATXS)],
    OPEN_AT: [("open_fd", U64)],
    OPEN_CREATE_AT: [("child", INODE), ("new_fd", U64)],
    CLOSE: _EMPTY,
    FSYNC: _EMPTY,
    PWRITE: [("count", U64)],
    PREAD: [("data", DATA64)],
    MKDIR_AT: [("child", INODE)],
    MKNOD_AT: [("child", INODE)],
    SYMLINK_AT: [("child", INODE)],
    LINK_AT: [("child", INODE)],
    FSTATFS: [("type", U64), ("block_size", I64), ("blocks", U64), ("blocks_free", U64),
              ("blocks_available", U64), ("files", U64), ("files_free", U64), ("name_length", U64)],
    FALLOCATE: _EMPTY,
    READLINK_AT: [("target", STR)],
    FLUSH: _EMPTY,
    CONNECT: _EMPTY,
    UNLINK_AT: _EMPTY,
    RENAME_AT: _EMPTY,
    GETDENTS64: [("dirents", DIRENTS)],
    FGETXATTR: [("value", STR)],
    FSETXATTR: _EMPTY,
    FLISTXATTR: [("xattrs", STRS)],
    FREMOVEXATTR: _EMPTY,
    BIND_AT: [("child", INODE), ("bound_socket_fd", U64)],
    LISTEN: _EMPTY,
    ACCEPT: [("peer_addr", STR)],
    CONNECT_WITH_CREDS: _EMPTY,
    RENAME_AT2: _EMPTY,
}

# ---------------------------------------------------------------- codec

cdef int _w_count(Writer* w, Py_ssize_t n) except -1:
    if n > 0xffff:
        raise ValueError("%d elements do not fit a u16 count" % n)
    return w_u16(w, <uint16_t>n)


cdef int _w_inode(Writer* w, inode) except -1:
    cdef lisafs_statx st
    (<Statx?>inode[1]).to_c(&st)
    return w_inode(w, inode[0], &st)


cdef int _w_field(Writer* w, int kind, v) except -1:
    cdef const unsigned char[:] data
    cdef lisafs_statx st
    if kind == U8:
        w_u8(w, v)
    elif kind == U16:
        w_u16(w, v)
    elif kind == U32:
        w_u32(w, v)
    elif kind == U64:
        w_u64(w, v)
    elif kind == I32:
        w_u32(w, <uint32_t><int32_t>v)
    elif kind == I64:
        w_u64(w, <uint64_t><int64_t>v)
    elif kind == PAD16:
        w_u16(w, 0)
    elif kind == PAD32:
        w_u32(w, 0)
    elif kind == STR:
        data = v
        if data.shape[0]:
            w_str(w, <const char*>&data[0], data.shape[0])
        else:
            w_u16(w, 0)
    elif kind == STRS:
        _w_count(w, len(v))
        for s in v:
            _w_field(w, STR, s)
    elif kind == FDS or kind == MIDS:
        _w_count(w, len(v))
        for x in v:
            if kind == FDS:
                w_u64(w, x)
            else:
                w_u16(w, x)
    elif kind == STATX:
        (<Statx?>v).to_c(&st)
        w_statx(w, &st)
    elif kind == INODE:
        _w_inode(w, v)
    elif kind == INODES:
        _w_count(w, len(v))
        for x in v:
            _w_inode(w, x)
    elif kind == STATXS:
        _w_count(w, len(v))
        for x in v:
            _w_field(w, STATX, x)
    elif kind == DIRENTS:
        _w_count(w, len(v))
        for d in v:
            data = d.name
            w_dirent(w, d.ino, d.dev_minor, d.dev_major, d.off, d.type,
                     <const char*>&data[0] if data.shape[0] else NULL, data.shape[0])
    elif kind == DATA32 or kind == DATA64:
        data = v
        if kind == DATA32:
            w_u32(w, len(data))
        else:
            w_u64(w, len(data))
        if len(data):
            w_bytes(w, &data[0], len(data))
    return 0


cdef object _r_statx(Reader* r):
    cdef lisafs_statx st
    memcpy(&st, r_bytes(r, sizeof(st)), sizeof(st))
    return statx_from_c(&st)


cdef object _r_field(Reader* r, int kind):
    cdef uint16_t n, i
    cdef uint64_t n64
    cdef const char* p
    if kind == U8:
        return r_u8(r)
    if kind == U16:
        return r_u16(r)
    if kind == U32:
        return r_u32(r)
    if kind == U64:
        return r_u64(r)
    if kind == I32:
        return <int32_t>r_u32(r)
    if kind == I64:
        return <int64_t>r_u64(r)
    if kind == PAD16:
        r_bytes(r, 2)
        return None
    if kind == PAD32:
        r_bytes(r, 4)
        return None
    if kind == STR:
        p = r_str(r, &n)
        return PyBytes_FromStringAndSize(p, n)
    if kind == STATX:
        return _r_statx(r)
    if kind == INODE:
        fd = r_u64(r)
        return Inode(fd, _r_statx(r))
    if kind == DATA32 or kind == DATA64:
        n64 = r_u32(r) if kind == DATA32 else r_u64(r)
        if n64 > <uint64_t>(r.len - r.pos):
            raise_short(<Py_ssize_t>min(n64, <uint64_t>0x7fffffffffffffff), r.len - r.pos)
        p = r_bytes(r, <Py_ssize_t>n64)
        return PyBytes_FromStringAndSize(p, <Py_ssize_t>n64)
    # Counted arrays.
    n = r_u16(r)
    out = []
    if kind == STRS:
        for i in range(n):
            out.append(_r_field(r, STR))
    elif kind == FDS:
        r_need(r, 8 * <Py_ssize_t>n)
        for i in range(n):
            out.append(r_u64(r))
    elif kind == MIDS:
        r_need(r, 2 * <Py_ssize_t>n)
        for i in range(n):
            out.append(r_u16(r))
    elif kind == INODES:
        r_need(r, sizeof(lisafs_inode) * <Py_ssize_t>n)
        for i in range(n):
            out.append(_r_field(r, INODE))
    elif kind == STATXS:
        r_need(r, sizeof(lisafs_statx) * <Py_ssize_t>n)
        for i in range(n):
            out.append(_r_statx(r))
    elif kind == DIRENTS:
        for i in range(n):
            ino = r_u64(r)
            minor = r_u32(r)
            major = r_u32(r)
            off = r_u64(r)
            typ = r_u8(r)
            out.append(Dirent(ino, minor, major, off, typ, _r_field(r, STR)))
    else:
        raise AssertionError("unknown field kind %d" % kind)
    return out


cdef bytes _encode(layout, dict msg):
    cdef Writer w
    w.buf = NULL
    w.cap = 0
    w.len = 0
    w.growable = True
    try:
        for name, kind in layout:
            _w_field(&w, kind, None if name is None else msg[name])
        return PyBytes_FromStringAndSize(w.buf, w.len) if w.len else b""
    finally:
        free(w.buf)


cdef dict _decode(layout, const unsigned char[:] payload):
    cdef Reader r
    r.buf = NULL
    if payload.shape[0]:
        r.buf = <const char*>&payload[0]
    r.len = payload.shape[0]
    r.pos = 0
    out = {}
    for name, kind in layout:
        v = _r_field(&r, kind)
        if name is not None:
            out[name] = v
    # Trailing bytes are ignored, as gVisor's unmarshallers do.
    return out


def _layout(table, mid):
    try:
        return table[mid]
    except KeyError:
        raise ProtocolError("unknown message id %r" % (mid,)) from None


def encode_request(int mid, dict msg):
    """Payload bytes of request `mid` from a dict of its fields."""
    return _encode(_layout(REQUESTS, mid), msg)


def decode_request(int mid, const unsigned char[:] payload not None):
    return _decode(_layout(REQUESTS, mid), payload)


def encode_response(int mid, dict msg):
    return _encode(_layout(RESPONSES, mid), msg)


def decode_response(int mid, const unsigned char[:] payload not None):
    """Fields of response `mid` (0 = Error) as a dict; ProtocolError if short."""
    return _decode(_layout(RESPONSES, mid), payload)
