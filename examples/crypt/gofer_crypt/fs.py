"""The served tree: a host directory whose files hold encrypted contents.

Every host call is relative to an O_PATH FD of a directory already inside
the mount, with a single name the core has checked, and never follows a
symlink (walks open with O_NOFOLLOW; creates, unlinks and renames do not
follow the last component): nothing outside the mount's directory is
reached, as with the stock backend. Files are reopened for I/O through
the gofer's FD directory (`reopen_fd`), so there is no path lookup.

No host FD is ever given to the client, not even the mount point's: the
sentry sees file contents only as this backend decrypts them.
"""
import ctypes
import errno
import os
import stat
import threading
import time
import weakref

from gofer import lisafs
from gofer.lisafs import (MID, ConnectionImpl, ControlFDImpl, Dirent, OpenFDImpl, StatFS, Statx,
                          reopen_fd)

from gofer_crypt.cipher import (BLOCK_SIZE, HEADER_SIZE, SEALED_BLOCK, FileCipher, host_size,
                                plain_size)

AT_REMOVEDIR = 0x200
NO_ID = 0xFFFFFFFF
HOLE_STEP = 256 * BLOCK_SIZE       # zeros sealed per step when a write or truncate leaves a hole
# Holes are stored as sealed zeros, so what one RPC may add past the end of a
# file is bounded (EFBIG beyond): no client holds the gofer for long.
MAX_HOLE = 128 << 20
SERVED_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)

# Python has no renameat2; glibc's releases the GIL like any ctypes call.
_renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
_renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def _err(code):
    return OSError(code, os.strerror(code))


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class _Lock:
    """One lock per host file, shared by every FD open on it (and alive as
    long as one holds it): a write is a read-modify-write of whole blocks."""
    __slots__ = ("lock", "__weakref__")

    def __init__(self):
        self.lock = threading.Lock()

    def __enter__(self):
        self.lock.acquire()

    def __exit__(self, *exc):
        self.lock.release()


_locks = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def _file_lock(st):
    with _locks_guard:
        lk = _locks.get((st.st_dev, st.st_ino))
        if lk is None:
            lk = _locks[st.st_dev, st.st_ino] = _Lock()
        return lk


def to_statx(st):
    size = plain_size(st.st_size) if stat.S_ISREG(st.st_mode) else st.st_size
    out = Statx(mask=lisafs.STATX_BASIC_STATS, blksize=BLOCK_SIZE, nlink=st.st_nlink,
                uid=st.st_uid, gid=st.st_gid, mode=st.st_mode, ino=st.st_ino, size=size,
                blocks=(size + 511) // 512, dev_major=os.major(st.st_dev),
                dev_minor=os.minor(st.st_dev))
    for name in ("atime", "mtime", "ctime"):
        sec, nsec = divmod(getattr(st, "st_%s_ns" % name), 10**9)
        setattr(out, name + "_sec", sec)
        setattr(out, name + "_nsec", nsec)
    return out


class EncryptedFile:
    """A host FD on an encrypted file: reads, writes and truncates plaintext.
    Owns `fd`; EIO if the file's header is not ours or not under this key."""

    def __init__(self, fd, key):
        self.fd = fd
        try:
            self.lock = _file_lock(os.fstat(fd))
            self.cipher = FileCipher.from_header(key, os.pread(fd, HEADER_SIZE, 0))
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def create(cls, fd, key):
        """Writes a new header into the empty file `fd`."""
        _pwrite_all(fd, FileCipher.new_header(key)[1], 0)
        return cls(fd, key)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def size(self):
        return plain_size(os.fstat(self.fd).st_size)

    def _blocks(self, first, last, size):
        """The plaintext of blocks first..last of a file of `size` bytes."""
        count = last - first + 1
        raw = os.pread(self.fd, count * SEALED_BLOCK, HEADER_SIZE + first * SEALED_BLOCK)
        final = (size - 1) // BLOCK_SIZE
        return b"".join(self.cipher.open(first + i, raw[i * SEALED_BLOCK:(i + 1) * SEALED_BLOCK],
                                         first + i == final) for i in range(count))

    def _put(self, offset, data, size):
        """Writes `data` at `offset` <= `size`: seals the blocks it touches
        (and the old last block, which stops being last when the file grows).
        Returns the new size."""
        end = offset + len(data)
        new_size = max(size, end)
        first = offset // BLOCK_SIZE
        if new_size > size and size:
            first = min(first, (size - 1) // BLOCK_SIZE)
        last = (end - 1) // BLOCK_SIZE
        base, tail_base = first * BLOCK_SIZE, last * BLOCK_SIZE
        old_end = min(size, tail_base + BLOCK_SIZE)        # old bytes in the blocks touched
        region = bytearray(max(end, old_end) - base)
        # Only the edge blocks are read back: the bytes the write leaves in them.
        if offset > base:
            head = self._blocks(first, first, size)
            region[:len(head)] = head
        if end < old_end and (last > first or offset == base):
            tail = self._blocks(last, last, size)
            region[tail_base - base:tail_base - base + len(tail)] = tail
        region[offset - base:end - base] = data
        final = (new_size - 1) // BLOCK_SIZE
        sealed = b"".join(self.cipher.seal(first + i, region[j:j + BLOCK_SIZE],
                                           first + i == final)
                          for i, j in enumerate(range(0, len(region), BLOCK_SIZE)))
        _pwrite_all(self.fd, sealed, HEADER_SIZE + first * SEALED_BLOCK)
        return new_size

    def _grow(self, size, to):
        if to - size > MAX_HOLE:
            raise _err(errno.EFBIG)
        while size < to:
            size = self._put(size, bytes(min(to - size, HOLE_STEP)), size)
        return size

    def read(self, offset, count):
        with self.lock:
            size = self.size()
            end = min(size, offset + count)
            if offset >= end:
                return b""
            first = offset // BLOCK_SIZE
            plain = self._blocks(first, (end - 1) // BLOCK_SIZE, size)
            return plain[offset - first * BLOCK_SIZE:end - first * BLOCK_SIZE]

    def write(self, offset, data):
        if not data:
            return 0
        with self.lock:
            self._put(offset, data, self._grow(self.size(), offset))
        return len(data)

    def truncate(self, new_size):
        with self.lock:
            size = self._grow(self.size(), new_size)
            if new_size >= size:
                return
            if new_size:
                last = (new_size - 1) // BLOCK_SIZE
                plain = self._blocks(last, last, size)[:new_size - last * BLOCK_SIZE]
                _pwrite_all(self.fd, self.cipher.seal(last, plain, True),
                            HEADER_SIZE + last * SEALED_BLOCK)
            os.ftruncate(self.fd, host_size(new_size))


class CryptControlFD(ControlFDImpl):
    """An O_PATH FD of a file or directory inside the mount."""

    def __init__(self, fd, conn):
        self.fd = -1
        try:
            self.st = os.fstat(fd)
            if stat.S_IFMT(self.st.st_mode) not in SERVED_TYPES:
                raise _err(errno.EPERM)           # host FIFOs, sockets, devices: not served
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.conn = fd, conn

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    __del__ = close

    def _child(self, name, flags=0):
        child = CryptControlFD(os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | flags,
                                       dir_fd=self.fd), self.conn)
        return child, to_statx(child.st)

    def _reopen(self, flags):
        return reopen_fd(self.fd, flags)

    def stat(self):
        self.st = os.fstat(self.fd)
        return to_statx(self.st)

    def walk(self, name):
        return self._child(name)

    def open(self, flags):
        kind = stat.S_IFMT(self.st.st_mode)
        if kind == stat.S_IFDIR:
            return CryptDirFD(self._reopen(os.O_RDONLY | os.O_DIRECTORY))
        if kind != stat.S_IFREG:
            raise _err(errno.EINVAL)
        # Writes read whole blocks back, so a writer's host FD reads too.
        writes = flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC
        f = EncryptedFile(self._reopen(os.O_RDWR if writes else os.O_RDONLY), self.conn.key)
        try:
            if flags & os.O_TRUNC:
                f.truncate(0)
        except BaseException:
            f.close()
            raise
        return CryptFileFD(f)                      # and no host FD: the client sees plaintext

    def open_create(self, mode, uid, gid, name, flags):
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode & 0o7777, dir_fd=self.fd)
        try:
            f = EncryptedFile.create(fd, self.conn.key)
            try:
                self._chown(name, uid, gid)
                child = CryptControlFD(reopen_fd(f.fd, os.O_PATH), self.conn)
            except BaseException:
                f.close()
                raise
        except BaseException:
            os.unlink(name, dir_fd=self.fd)
            raise
        return child, to_statx(child.st), CryptFileFD(f), -1

    def _chown(self, name, uid, gid):
        if uid != NO_ID or gid != NO_ID:
            os.chown(name, -1 if uid == NO_ID else uid, -1 if gid == NO_ID else gid,
                     dir_fd=self.fd, follow_symlinks=False)

    def _made(self, name, uid, gid, is_dir):
        """Finishes a mkdir or symlink: owner, then the new file's ControlFD."""
        try:
            self._chown(name, uid, gid)
            return self._child(name)
        except BaseException:
            (os.rmdir if is_dir else os.unlink)(name, dir_fd=self.fd)
            raise

    def mkdir(self, mode, uid, gid, name):
        os.mkdir(name, mode & 0o7777, dir_fd=self.fd)
        return self._made(name, uid, gid, True)

    def symlink(self, name, target, uid, gid):
        os.symlink(target, name, dir_fd=self.fd)
        return self._made(name, uid, gid, False)

    def readlink(self):
        return os.readlink(b"", dir_fd=self.fd)

    def unlink(self, name, flags):
        (os.rmdir if flags & AT_REMOVEDIR else os.unlink)(name, dir_fd=self.fd)

    def rename_at(self, old_name, new_dir, new_name, flags):
        if not isinstance(new_dir, CryptControlFD):
            raise _err(errno.EXDEV)
        if _renameat2(self.fd, old_name, new_dir.fd, new_name, flags) < 0:
            raise _err(ctypes.get_errno())

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        failed, err = 0, 0
        kind = stat.S_IFMT(os.fstat(self.fd).st_mode)
        if mask & lisafs.STATX_SIZE:
            try:
                if kind != stat.S_IFREG:
                    raise _err(errno.EISDIR if kind == stat.S_IFDIR else errno.EINVAL)
                f = EncryptedFile(self._reopen(os.O_RDWR), self.conn.key)
                try:
                    f.truncate(size)
                finally:
                    f.close()
            except OSError as e:
                failed, err = failed | lisafs.STATX_SIZE, e.errno
        rest = mask & (lisafs.STATX_MODE | lisafs.STATX_UID | lisafs.STATX_GID |
                       lisafs.STATX_ATIME | lisafs.STATX_MTIME)
        if not rest:
            return (failed, err) if failed else None
        if kind == stat.S_IFLNK:                   # no FD of a symlink takes them
            return failed | rest, errno.EOPNOTSUPP
        fd = self._reopen(os.O_RDONLY | os.O_NONBLOCK)
        try:
            for bit, change in ((lisafs.STATX_MODE, lambda: os.chmod(fd, mode & 0o7777)),
                                (lisafs.STATX_UID | lisafs.STATX_GID, lambda: os.chown(
                                    fd, uid if mask & lisafs.STATX_UID else -1,
                                    gid if mask & lisafs.STATX_GID else -1)),
                                (lisafs.STATX_ATIME | lisafs.STATX_MTIME,
                                 lambda: os.utime(fd, ns=_times(fd, mask, atime, mtime)))):
                if mask & bit:
                    try:
                        change()
                    except OSError as e:
                        failed, err = failed | (mask & bit), e.errno
        finally:
            os.close(fd)
        return (failed, err) if failed else None

    def statfs(self):
        v = os.statvfs(self.fd)
        return StatFS(type=0x67637279, block_size=v.f_bsize, blocks=v.f_blocks,
                      blocks_free=v.f_bfree, blocks_available=v.f_bavail, files=v.f_files,
                      files_free=v.f_ffree, name_length=v.f_namemax)


def _times(fd, mask, atime, mtime):
    """(atime, mtime) in ns for os.utime: UTIME_OMIT keeps the current one."""
    st = os.fstat(fd)
    out = []
    for bit, (sec, nsec), current in ((lisafs.STATX_ATIME, atime, st.st_atime_ns),
                                      (lisafs.STATX_MTIME, mtime, st.st_mtime_ns)):
        if not mask & bit or nsec == lisafs.UTIME_OMIT:
            out.append(current)
        elif nsec == lisafs.UTIME_NOW:
            out.append(time.time_ns())
        else:
            out.append(sec * 10**9 + nsec)
    return tuple(out)


class CryptFileFD(OpenFDImpl):
    def __init__(self, f):
        self.f = f

    def stat(self):
        return to_statx(os.fstat(self.f.fd))

    def read(self, offset, count):
        return self.f.read(offset, count)

    def write(self, offset, data):
        return self.f.write(offset, data)

    def sync(self):
        os.fsync(self.f.fd)

    def close(self):
        self.f.close()

    __del__ = close


class CryptDirFD(OpenFDImpl):
    def __init__(self, fd):
        self.fd = fd
        self.entries = None
        self.cursor = 0

    def stat(self):
        return to_statx(os.fstat(self.fd))

    def sync(self):
        os.fsync(self.fd)

    def getdents64(self, count, seek0):
        if seek0 or self.entries is None:
            dev = os.fstat(self.fd).st_dev
            with os.scandir(self.fd) as it:     # no "." or "..", as gVisor's fsgofer
                self.entries = [(os.fsencode(e.name), e.inode(), _dtype(e)) for e in it]
            self.dev = os.major(dev), os.minor(dev)
            self.cursor = 0
        out, used = [], 0
        while self.cursor < len(self.entries):
            name, ino, dtype = self.entries[self.cursor]
            reclen = (19 + len(name) + 1 + 7) & ~7           # what a host dirent takes
            if out and used + reclen > count:
                break
            used += reclen
            self.cursor += 1
            out.append(Dirent(ino=ino, dev_major=self.dev[0], dev_minor=self.dev[1],
                              off=self.cursor, type=dtype, name=name))
        return out

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    __del__ = close


def _dtype(entry):
    if entry.is_symlink():
        return 10
    if entry.is_dir(follow_symlinks=False):
        return 4
    if entry.is_file(follow_symlinks=False):
        return 8
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode) >> 12


class CryptConnection(ConnectionImpl):
    """Serves the host directory `root` with file contents sealed under `key`."""

    def __init__(self, root, key):
        self.root, self.key = root, key

    def mount(self):
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        return CryptControlFD(fd, self)            # never a host FD of the mount point

    def supported_messages(self):
        return [MID.FStat, MID.SetStat, MID.Walk, MID.WalkStat, MID.OpenAt,
                MID.OpenCreateAt, MID.Close, MID.FSync, MID.PWrite, MID.PRead,
                MID.MkdirAt, MID.SymlinkAt, MID.FStatFS, MID.ReadLinkAt,
                MID.UnlinkAt, MID.RenameAt, MID.RenameAt2, MID.Getdents64]
