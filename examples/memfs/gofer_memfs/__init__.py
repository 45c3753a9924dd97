"""gofer-memfs: an in-memory filesystem as a gofer extension.

A regular file's bytes live in a memfd of its own, which `open` donates to
the client (reopened with the client's access mode): the sentry then reads,
writes and maps the file directly, which it needs to exec a program from a
shared mount. The memfd keeps the file's size, atime and mtime; everything
else is kept here. Each regular file holds one FD of the gofer, so the number
of files is bounded by its RLIMIT_NOFILE (memfd_create answers EMFILE).

Only storage lives here. The gofer core checks names, FD kinds, readonly and
locking before any of these methods runs, and turns an OSError into its
errno on the wire.
"""
import errno
import itertools
import os
import stat
import time

from gofer import lisafs
from gofer.extension import Extension
from gofer.lisafs import (AT_REMOVEDIR, RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE,
                          XATTR_REPLACE, Child, ConnectionImpl, ConnectionOpts, ControlFDImpl,
                          CreateResult, Dirent, OpenFDImpl, OpenResult, StatFS, Statx, reopen_fd)

S_IFMT = 0o170000
NO_ID = 0xFFFFFFFF
_dev_minor = itertools.count(1)


def _err(code):
    return OSError(code, errno.errorcode.get(code, str(code)))


def _now():
    return time.time_ns()


class Inode:
    """One file. Directories map names to inodes; symlinks hold a target."""

    def __init__(self, fs, mode, uid=0, gid=0, target=b""):
        self.fs = fs
        self.ino = next(fs.inos)
        self.mode = mode
        self.uid, self.gid = uid, gid
        # The flags the gofer's seccomp filter allows memfd_create.
        self.memfd = (os.memfd_create("memfs", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
                      if stat.S_ISREG(mode) else -1)
        self.children = {} if stat.S_ISDIR(mode) else None
        self.target = target
        self.xattrs = {}
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.atime = self.mtime = self.ctime = self.btime = _now()

    def __del__(self):
        if self.memfd >= 0:
            os.close(self.memfd)

    def statx(self):
        size = len(self.target) if stat.S_ISLNK(self.mode) else 4096
        if self.memfd >= 0:
            host = os.fstat(self.memfd)
            size = host.st_size
            self.atime, self.mtime = host.st_atime_ns, host.st_mtime_ns
            self.ctime = max(self.ctime, host.st_ctime_ns)
        st = Statx(mask=lisafs.STATX_BASIC_STATS | lisafs.STATX_BTIME, blksize=4096, nlink=self.nlink,
                   uid=self.uid, gid=self.gid, mode=self.mode, ino=self.ino, size=size,
                   blocks=(size + 511) // 512, dev_major=0, dev_minor=self.fs.dev_minor)
        for name in ("atime", "mtime", "ctime", "btime"):
            sec, nsec = divmod(getattr(self, name), 10**9)
            setattr(st, name + "_sec", sec)
            setattr(st, name + "_nsec", nsec)
        return st

    def touch(self, *names):
        now = _now()
        for n in names:
            setattr(self, n, now)

    def set_times(self, atime, mtime):
        """Sets atime and mtime (nanoseconds); on a regular file, in its memfd."""
        self.atime, self.mtime = atime, mtime
        if self.memfd >= 0:
            os.utime(self.memfd, ns=(atime, mtime))


class MemFS:
    def __init__(self):
        self.inos = itertools.count(1)
        self.dev_minor = next(_dev_minor)
        self.root = Inode(self, stat.S_IFDIR | 0o755)


def _holds(tree, inode):
    """Whether directory `inode` is the directory `tree` or under it."""
    stack = [tree] if tree is not None and tree.children is not None else []
    while stack:
        n = stack.pop()
        if n is inode:
            return True
        stack.extend(c for c in n.children.values() if c.children is not None)
    return False


class MemControlFD(ControlFDImpl):
    def __init__(self, inode):
        self.inode = inode

    def _dir(self):
        if self.inode.children is None:
            raise _err(errno.ENOTDIR)
        return self.inode.children

    def _child(self, name):
        try:
            return self._dir()[name]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def _new(self, name, mode, uid, gid, **kw):
        d = self._dir()
        if name in d:
            raise _err(errno.EEXIST)
        owner = (uid if uid != NO_ID else 0, gid if gid != NO_ID else 0)
        node = Inode(self.inode.fs, mode, *owner, **kw)
        d[name] = node
        if node.children is not None:
            self.inode.nlink += 1
        self.inode.touch("mtime", "ctime")
        return Child(MemControlFD(node), node.statx())

    def stat(self):
        return self.inode.statx()

    def walk(self, name):
        node = self._child(name)
        return Child(MemControlFD(node), node.statx())

    def open(self, flags):
        ofd = MemOpenFD(self.inode)
        if self.inode.memfd < 0:
            return OpenResult(ofd)
        if flags & os.O_TRUNC:
            os.ftruncate(self.inode.memfd, 0)
        return OpenResult(ofd, reopen_fd(self.inode.memfd, flags & os.O_ACCMODE))

    def open_create(self, mode, uid, gid, name, flags):
        child = self._new(name, stat.S_IFREG | (mode & 0o7777), uid, gid)
        return CreateResult(child.impl, child.stat, MemOpenFD(child.impl.inode),
                            reopen_fd(child.impl.inode.memfd, flags & os.O_ACCMODE))

    def mkdir(self, mode, uid, gid, name):
        return self._new(name, stat.S_IFDIR | (mode & 0o7777), uid, gid)

    def mknod(self, mode, uid, gid, name, minor, major):
        if mode & S_IFMT not in (0, stat.S_IFREG):
            raise _err(errno.EPERM)
        return self._new(name, stat.S_IFREG | (mode & 0o7777), uid, gid)

    def symlink(self, name, target, uid, gid):
        return self._new(name, stat.S_IFLNK | 0o777, uid, gid, target=target)

    def link(self, dir, name):
        d = dir._dir()
        if name in d:
            raise _err(errno.EEXIST)
        d[name] = self.inode
        self.inode.nlink += 1
        self.inode.touch("ctime")
        return Child(MemControlFD(self.inode), self.inode.statx())

    def readlink(self):
        return self.inode.target

    def unlink(self, name, flags):
        node = self._child(name)
        is_dir = node.children is not None
        if flags & AT_REMOVEDIR:
            if not is_dir:
                raise _err(errno.ENOTDIR)
            if node.children:
                raise _err(errno.ENOTEMPTY)
            self.inode.nlink -= 1
        elif is_dir:
            raise _err(errno.EISDIR)
        del self.inode.children[name]
        node.nlink -= 1 if not is_dir else 2
        self.inode.touch("mtime", "ctime")

    def rename_at(self, old_name, new_dir, new_name, flags):
        src, dst = self._dir(), new_dir._dir()
        node = self._child(old_name)
        other = dst.get(new_name)
        # A directory cannot move under itself (the server's rename lock
        # keeps the tree still while we look).
        if _holds(node, new_dir.inode) or (flags & RENAME_EXCHANGE and _holds(other, self.inode)):
            raise _err(errno.EINVAL)
        if flags & RENAME_EXCHANGE:
            if other is None:
                raise _err(errno.ENOENT)
            src[old_name], dst[new_name] = other, node
            return
        if other is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if (other.children is None) != (node.children is None):
                raise _err(errno.EISDIR if other.children is not None else errno.ENOTDIR)
            if other.children:
                raise _err(errno.ENOTEMPTY)
        elif flags & ~RENAME_NOREPLACE:
            raise _err(errno.EINVAL)
        del src[old_name]
        dst[new_name] = node
        self.inode.touch("mtime", "ctime")
        new_dir.inode.touch("mtime", "ctime")

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        n = self.inode
        failed = 0
        if mask & lisafs.STATX_MODE:
            n.mode = (n.mode & S_IFMT) | (mode & 0o7777)
        if mask & lisafs.STATX_UID:
            n.uid = uid
        if mask & lisafs.STATX_GID:
            n.gid = gid
        if mask & lisafs.STATX_SIZE:
            if n.memfd < 0:
                failed |= lisafs.STATX_SIZE
            else:
                os.ftruncate(n.memfd, size)
        n.statx()                                           # the memfd's times
        times = [n.atime, n.mtime]
        for i, (bit, (sec, nsec)) in enumerate(((lisafs.STATX_ATIME, atime),
                                                (lisafs.STATX_MTIME, mtime))):
            if mask & bit and nsec != lisafs.UTIME_OMIT:
                times[i] = _now() if nsec == lisafs.UTIME_NOW else sec * 10**9 + nsec
        n.set_times(*times)
        n.touch("ctime")
        return lisafs.SetStatResult(failed, errno.EISDIR) if failed else None

    def statfs(self):
        return StatFS(type=0x01021994, block_size=4096, blocks=1 << 20, blocks_free=1 << 19,
                      blocks_available=1 << 19, files=1 << 20, files_free=1 << 19, name_length=255)

    def get_xattr(self, name, size):
        try:
            return self.inode.xattrs[name]
        except KeyError:
            raise _err(errno.ENODATA) from None

    def set_xattr(self, name, value, flags):
        exists = name in self.inode.xattrs
        if flags & XATTR_CREATE and exists:
            raise _err(errno.EEXIST)
        if flags & XATTR_REPLACE and not exists:
            raise _err(errno.ENODATA)
        self.inode.xattrs[name] = value

    def list_xattr(self, size):
        return list(self.inode.xattrs)

    def remove_xattr(self, name):
        if self.inode.xattrs.pop(name, None) is None:
            raise _err(errno.ENODATA)


class MemOpenFD(OpenFDImpl):
    def __init__(self, inode):
        self.inode = inode

    def stat(self):
        return self.inode.statx()

    def _memfd(self):
        if self.inode.memfd < 0:
            raise _err(errno.EISDIR)
        return self.inode.memfd

    def read(self, offset, count):
        return os.pread(self._memfd(), count, offset)

    def write(self, offset, data):
        return os.pwrite(self._memfd(), data, offset)

    def allocate(self, mode, offset, length):
        if mode:
            raise _err(errno.EOPNOTSUPP)
        os.posix_fallocate(self._memfd(), offset, length)

    def readdir(self):
        # No "." or "..", as gVisor's fsgofer; the server pages the list.
        return [Dirent(ino=child.ino, dev_minor=self.inode.fs.dev_minor, dev_major=0, off=0,
                       type=(child.mode & S_IFMT) >> 12, name=name)
                for name, child in self.inode.children.items()]


class MemConnection(ConnectionImpl):
    """One mount of an in-memory tree (new and empty unless `fs` is given)."""

    def __init__(self, fs=None):
        self.fs = fs or MemFS()

    def mount(self):
        # supported_messages() is the default: the MIDs of the methods above.
        return MemControlFD(self.fs.root)


class MemFSExtension(Extension):
    """Claims OCI mounts of type "memfs" or whose destination is listed in the
    annotation dev.gofer.memfs.mounts (comma-separated), and the root when the
    annotation dev.gofer.memfs.root is "true" (always under `gofer serve
    --extension memfs`, which has no spec)."""

    name = "memfs"

    def new_connection(self, spec, mount, mount_path, readonly):
        annotations = (spec or {}).get("annotations") or {}
        if mount is None:
            claim = spec is None or annotations.get("dev.gofer.memfs.root") == "true"
        else:
            listed = annotations.get("dev.gofer.memfs.mounts", "").split(",")
            claim = mount.get("type") == "memfs" or mount_path in listed
        if not claim:
            return None
        return MemConnection(), ConnectionOpts(readonly=readonly)
