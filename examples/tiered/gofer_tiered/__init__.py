"""gofer-tiered: a read-through, write-back cache on a local directory in
front of a slower backend, any other extension (gofer-s3 by default).

Directories and names are the backend's: walks, listings, mkdir, unlink and
rename go straight to it. A regular file's content is cached whole:

- On open, the backend is asked what the file is now (its `validator()` when
  it has one, as gofer-s3's ETag, else inode, size and mtime) and the cached
  copy is used only if it was taken from that same version. The cache file's
  name hashes the file's `cache_key()` (the same from every mount of the
  store) with that validator, so two mounts, or two gofers, sharing a cache
  directory never serve each other stale bytes, and a file changed
  underneath is fetched again. A miss reads the whole file from the backend.
- A read-only open donates the cached copy's FD (the sandbox can mmap and
  exec it); reads on it never reach the backend.
- Writes go to a working copy in the cache directory and are written back
  (the backend's file truncated and rewritten, then fsync'd and closed) on
  fsync, flush and the last close; the written copy then becomes the cached
  version. The last writer wins if the file also changed in the backend.
- Cached files beyond the size limit are evicted, least recently used first
  (an open file keeps its FD: eviction only drops the name).

Configuration: the cache directory is the launcher's, GOFER_TIERED_CACHE_DIR,
opened when the extension loads (before `gofer gofer` confines itself), and
its size limit GOFER_TIERED_SIZE_LIMIT (bytes, default 1 GiB). Per mount
(a later source wins): GOFER_TIERED_BACKEND, the annotation
dev.gofer.tiered.backend, the mount option tiered.backend=NAME. The backend
extension must be loaded (installed, and named too if `--extension` is
given); it gets the mount as if it claimed it itself, so its own settings
(for gofer-s3: dev.gofer.s3.bucket, s3.bucket=...) apply.
"""
import collections
import errno
import os
import stat
import threading

from gofer import extension, lisafs
from gofer.extension import Extension, log
from gofer.lisafs import (MID, ConnectionImpl, ConnectionOpts, ControlFDImpl, OpenFDImpl,
                          reopen_fd)

CHUNK = 1 << 20
DEFAULT_LIMIT = 1 << 30


def _err(code):
    return OSError(code, os.strerror(code))


def _copy(read, fd):
    """Writes what read(offset, count) gives into fd from 0; returns the size."""
    off = 0
    while chunk := read(off, CHUNK):
        os.pwrite(fd, chunk, off)
        off += len(chunk)
    os.ftruncate(fd, off)
    return off


class Cache:
    """The cache directory: published copies named <sha256>.data, working
    copies w-<uuid>, the total size of the first kept under `limit`."""

    def __init__(self, dir_fd, limit):
        # Loaded here, before the seccomp filter goes on, rather than with
        # the module: every gofer start loads the extension, few use a cache.
        import hashlib
        self.sha256 = hashlib.sha256
        self.fd, self.limit = dir_fd, limit
        self.lock = threading.Lock()
        self.lru = collections.OrderedDict()          # name -> size, oldest first
        for name in os.listdir(dir_fd):
            if name.startswith("w-"):                 # a gofer stopped before writing back
                log.warning("gofer-tiered: unsent working copy %s left in the cache", name)
            elif name.endswith(".data"):
                self.lru[name] = os.stat(name, dir_fd=dir_fd).st_size
        self.total = sum(self.lru.values())
        self.evict()

    def name(self, key, validator):
        return self.sha256(("%s\0%s" % (key, validator)).encode("utf-8", "surrogateescape")
                              ).hexdigest() + ".data"

    def open(self, key, validator):
        """A read-only FD of the cached version, or -1."""
        name = self.name(key, validator)
        with self.lock:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
            except FileNotFoundError:
                self.lru.pop(name, None)
                return -1
            if name in self.lru:
                self.lru.move_to_end(name)
            else:                                     # published by another gofer
                self.lru[name] = os.fstat(fd).st_size
                self.total += self.lru[name]
        return fd

    def working(self):
        """(name, FD) of a new working copy."""
        name = "w-" + os.urandom(16).hex()
        return name, os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                             dir_fd=self.fd)

    def publish(self, work_name, key, validator):
        """Makes a working copy the cached version of (key, validator)."""
        name = self.name(key, validator)
        size = os.stat(work_name, dir_fd=self.fd).st_size
        with self.lock:
            os.rename(work_name, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            self.total += size - self.lru.pop(name, 0)
            self.lru[name] = size
        self.evict()

    def discard(self, work_name):
        os.unlink(work_name, dir_fd=self.fd)

    def evict(self):
        with self.lock:
            while self.total > self.limit and self.lru:
                name, size = self.lru.popitem(last=False)
                self.total -= size
                try:
                    os.unlink(name, dir_fd=self.fd)
                except FileNotFoundError:
                    pass

    def fetch(self, key, validator, read):
        """Reads the whole file with read(offset, count) into the cache;
        returns a read-only FD of it (valid even if evicted at once)."""
        work, fd = self.working()
        try:
            _copy(read, fd)
            ro = os.open(work, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
            self.publish(work, key, validator)
            return ro
        except BaseException:
            try:
                self.discard(work)
            except FileNotFoundError:
                pass
            raise
        finally:
            os.close(fd)


class Handle:
    """The write-back state of one file, shared by its open FDs on a mount."""

    def __init__(self, tier, key):
        self.tier, self.key = tier, key
        self.refs = 0
        self.work_name, self.work = None, -1
        self.dirty = False
        self.lock = threading.Lock()

    def ensure_work(self, ctl, truncate):
        """The working copy, made from the current content on first use."""
        if self.work < 0:
            self.work_name, self.work = self.tier.cache.working()
            if not truncate:
                src = self.tier.open_cached(ctl)
                try:
                    _copy(lambda off, n: os.pread(src, n, off), self.work)
                finally:
                    os.close(src)
        if truncate:
            os.ftruncate(self.work, 0)
            self.dirty = True
        return self.work

    def write_back(self, ctl):
        """Sends a dirty working copy to the backend, then caches it."""
        if not self.dirty:
            return
        res = ctl.inner.open(os.O_WRONLY | os.O_TRUNC)
        ofd = res[0] if isinstance(res, tuple) else res
        if isinstance(res, tuple) and res[1] >= 0:
            os.close(res[1])
        try:
            off, size = 0, os.fstat(self.work).st_size
            while off < size:
                chunk = os.pread(self.work, CHUNK, off)
                while chunk:
                    n = ofd.write(off, chunk)
                    off += n
                    chunk = chunk[n:]
            ofd.sync()
        finally:
            ofd.close()                               # gofer-s3 uploads here
        self.dirty = False
        # The written copy is now that version of the file: cache it.
        new_name, new_fd = self.tier.cache.working()
        try:
            _copy(lambda o, n: os.pread(self.work, n, o), new_fd)
        finally:
            os.close(new_fd)
        self.tier.cache.publish(new_name, self.key, self.tier.validator(ctl.inner))

    def release(self, ctl):
        with self.lock:
            self.refs -= 1
            if self.refs:
                return
            self.tier.handles.pop(self.key, None)
            if self.work < 0:
                return
            try:
                self.write_back(ctl)
            except OSError:
                log.warning("gofer-tiered: writing %s back failed: its content stays in "
                            "%s", self.key, self.work_name)
                os.close(self.work)
                raise
            os.close(self.work)
            self.tier.cache.discard(self.work_name)


class Tier:
    """One mount: the backend's connection and the shared cache."""

    def __init__(self, inner, cache):
        self.inner, self.cache = inner, cache
        self.handles = {}
        self.lock = threading.Lock()

    def key(self, inner_ctl):
        if hasattr(inner_ctl, "cache_key"):
            return inner_ctl.cache_key()
        st = inner_ctl.stat()
        return "%s:%d:%d:%d" % (id(self), st.dev_major, st.dev_minor, st.ino)

    @staticmethod
    def validator(inner_ctl):
        if hasattr(inner_ctl, "validator"):
            return inner_ctl.validator()
        st = inner_ctl.stat()
        return "%d:%d:%d.%d" % (st.ino, st.size, st.mtime_sec, st.mtime_nsec)

    def open_cached(self, ctl):
        """A read-only FD of the current version, fetched on a miss."""
        key, validator = self.key(ctl.inner), self.validator(ctl.inner)
        fd = self.cache.open(key, validator)
        if fd >= 0:
            return fd
        res = ctl.inner.open(os.O_RDONLY)
        ofd = res[0] if isinstance(res, tuple) else res
        if isinstance(res, tuple) and res[1] >= 0:
            os.close(res[1])
        try:
            return self.cache.fetch(key, validator, ofd.read)
        finally:
            ofd.close()

    def handle(self, key):
        with self.lock:
            h = self.handles.get(key)
            if h is None:
                h = self.handles[key] = Handle(self, key)
            h.refs += 1
            return h


class TieredControlFD(ControlFDImpl):
    def __init__(self, tier, inner):
        self.tier, self.inner = tier, inner

    def _wrap(self, res):
        return (TieredControlFD(self.tier, res[0]),) + tuple(res[1:])

    def stat(self):
        st = self.inner.stat()
        if stat.S_ISREG(st.mode):
            h = self.tier.handles.get(self.tier.key(self.inner))
            if h is not None and h.work >= 0:         # unsent writes count
                st.size = os.fstat(h.work).st_size
        return st

    def walk(self, name):
        return self._wrap(self.inner.walk(name))

    def open(self, flags):
        if not stat.S_ISREG(self.inner.stat().mode):
            res = self.inner.open(flags)
            if isinstance(res, tuple):
                return TieredOpenFD(self, res[0], None), res[1]
            return TieredOpenFD(self, res, None)
        h = self.tier.handle(self.tier.key(self.inner))
        try:
            if flags & os.O_ACCMODE == os.O_RDONLY:
                with h.lock:
                    if h.work < 0:                    # nothing unsent: the cached copy
                        fd = self.tier.open_cached(self)
                        return TieredOpenFD(self, None, h, fd), reopen_fd(fd, os.O_RDONLY)
            with h.lock:
                h.ensure_work(self, truncate=bool(flags & os.O_TRUNC))
            return TieredOpenFD(self, None, h)
        except BaseException:
            h.release(self)
            raise

    def open_create(self, mode, uid, gid, name, flags):
        ctl, st, ofd, host_fd = self.inner.open_create(mode, uid, gid, name, flags)
        if host_fd >= 0:
            os.close(host_fd)
        child = TieredControlFD(self.tier, ctl)
        h = self.tier.handle(self.tier.key(ctl))
        ofd.close()                                   # the content starts in the cache
        try:
            with h.lock:
                h.ensure_work(child, truncate=True)
        except BaseException:
            h.release(child)
            raise
        return child, st, TieredOpenFD(child, None, h), -1

    def set_stat(self, mask, mode, uid, gid, size, atime, mtime):
        if mask & lisafs.STATX_SIZE and stat.S_ISREG(self.inner.stat().mode):
            h = self.tier.handle(self.tier.key(self.inner))
            try:
                with h.lock:
                    os.ftruncate(h.ensure_work(self, truncate=size == 0), size)
                    h.dirty = True
            finally:
                h.release(self)
            mask &= ~lisafs.STATX_SIZE
            if not mask:
                return None
        return self.inner.set_stat(mask, mode, uid, gid, size, atime, mtime)

    def mkdir(self, *a):
        return self._wrap(self.inner.mkdir(*a))

    def mknod(self, *a):
        return self._wrap(self.inner.mknod(*a))

    def symlink(self, *a):
        return self._wrap(self.inner.symlink(*a))

    def link(self, dir, name):
        return self._wrap(self.inner.link(dir.inner, name))

    def rename_at(self, old_name, new_dir, new_name, flags):
        return self.inner.rename_at(old_name, new_dir.inner, new_name, flags)

    def statfs(self):
        return self.inner.statfs()

    def readlink(self):
        return self.inner.readlink()

    def unlink(self, name, flags):
        return self.inner.unlink(name, flags)

    def get_xattr(self, name, size):
        return self.inner.get_xattr(name, size)

    def set_xattr(self, name, value, flags):
        return self.inner.set_xattr(name, value, flags)

    def list_xattr(self, size):
        return self.inner.list_xattr(size)

    def remove_xattr(self, name):
        return self.inner.remove_xattr(name)

    def close(self):
        return self.inner.close()


class TieredOpenFD(OpenFDImpl):
    """A directory of the backend (inner), or a cached file: a read-only copy
    (`fd`) or the shared working copy of its handle."""

    def __init__(self, ctl, inner, handle, fd=-1):
        self.ctl, self.inner, self.handle, self.fd = ctl, inner, handle, fd

    def stat(self):
        return self.ctl.stat()

    def read(self, offset, count):
        if self.fd >= 0:
            return os.pread(self.fd, count, offset)
        if self.handle is None:
            raise _err(errno.EISDIR)
        with self.handle.lock:
            return os.pread(self.handle.work, count, offset)

    def write(self, offset, data):
        h = self.handle
        with h.lock:
            n = os.pwrite(h.work, data, offset)
            h.dirty = True
        return n

    def allocate(self, mode, offset, length):
        if mode:
            raise _err(errno.EOPNOTSUPP)
        with self.handle.lock:
            os.posix_fallocate(self.handle.work, offset, length)
            self.handle.dirty = True

    def _write_back(self):
        h = self.handle
        if h is not None and self.fd < 0:
            with h.lock:
                h.write_back(self.ctl)

    sync = flush = _write_back

    def getdents64(self, count, seek0):
        if self.inner is None:
            raise _err(errno.ENOTDIR)
        return self.inner.getdents64(count, seek0)

    def close(self):
        if self.inner is not None:
            self.inner.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        h, self.handle = self.handle, None
        if h is not None:
            try:
                h.release(self.ctl)
            except OSError:
                pass                  # logged, and the working copy kept (Handle.release)


class TieredConnection(ConnectionImpl):
    OURS = {MID.FStat, MID.SetStat, MID.Walk, MID.WalkStat, MID.OpenAt,
            MID.OpenCreateAt, MID.Close, MID.FSync, MID.PWrite, MID.PRead, MID.MkdirAt,
            MID.MknodAt, MID.SymlinkAt, MID.LinkAt, MID.FStatFS, MID.FAllocate,
            MID.ReadLinkAt, MID.UnlinkAt, MID.RenameAt, MID.RenameAt2,
            MID.Getdents64, MID.FGetXattr, MID.FSetXattr, MID.FListXattr,
            MID.FRemoveXattr, MID.Flush}

    def __init__(self, inner, cache):
        self.inner = inner
        self.tier = Tier(inner, cache)

    @property
    def does_not_keep(self):
        """What the backend's storage does not keep (for gofer.testing)."""
        return getattr(self.inner, "does_not_keep", frozenset())

    def mount(self):
        return TieredControlFD(self.tier, self.inner.mount())

    def supported_messages(self):
        # Reads and writes are ours whatever the backend does with them.
        own = {MID.PRead, MID.PWrite, MID.FSync, MID.Flush, MID.FAllocate, MID.Close}
        return sorted(self.OURS & (set(self.inner.supported_messages()) | own))


_loaded = {}


def _backend(name):
    """The backend extension: already registered, or loaded once by its entry
    point (under `gofer serve --extension tiered`, which loads only this one)."""
    for ext in extension.registered():
        if ext.name == name:
            return ext
    if name not in _loaded:
        ep = extension.installed_entry_points(extension.ENTRY_POINT_GROUP).get(name)
        if ep is None:
            raise ValueError("backend extension %r is not installed" % name)
        obj = ep.load()
        _loaded[name] = obj if isinstance(obj, Extension) else obj()
    return _loaded[name]


class TieredExtension(Extension):
    """Claims OCI mounts of type "tiered" or listed in dev.gofer.tiered.mounts
    (the root under `gofer serve`, or with dev.gofer.tiered.root "true")."""

    name = "tiered"

    def __init__(self, environ=os.environ):
        self.environ = environ
        self.cache = None
        path = environ.get("GOFER_TIERED_CACHE_DIR")
        if path:
            os.makedirs(path, 0o700, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.cache = Cache(fd, int(environ.get("GOFER_TIERED_SIZE_LIMIT", DEFAULT_LIMIT)))

    def backend_name(self, spec, mount):
        name = self.environ.get("GOFER_TIERED_BACKEND", "s3")
        name = ((spec or {}).get("annotations") or {}).get("dev.gofer.tiered.backend", name)
        for opt in (mount or {}).get("options") or []:
            if opt.startswith("tiered.backend="):
                name = opt.partition("=")[2]
        return name

    def new_connection(self, spec, mount, mount_path, readonly):
        annotations = (spec or {}).get("annotations") or {}
        if mount is None:
            claim = spec is None or annotations.get("dev.gofer.tiered.root") == "true"
        else:
            claim = mount.get("type") == "tiered" or \
                mount_path in annotations.get("dev.gofer.tiered.mounts", "").split(",")
        if not claim:
            return None
        if self.cache is None:
            raise ValueError("no cache directory: set GOFER_TIERED_CACHE_DIR")
        backend = _backend(self.backend_name(spec, mount))
        # The backend claims the mount as if it were listed for it.
        inner_spec = None
        if spec is not None:
            inner_spec = dict(spec, annotations=dict(annotations))
            key = "dev.gofer.%s." % backend.name
            inner_spec["annotations"][key + ("root" if mount is None else "mounts")] = \
                "true" if mount is None else mount_path
        got = backend.new_connection(inner_spec, mount, mount_path, readonly)
        if got is None:
            raise ValueError("backend extension %r declined %s" % (backend.name, mount_path))
        return TieredConnection(got[0], self.cache), ConnectionOpts(readonly=readonly)

    def seccomp_rules(self):
        # Under `gofer gofer` the backend is registered and brings its own;
        # under `gofer serve --extension tiered` it is not.
        name = self.backend_name(None, None)
        if any(e.name == name for e in extension.registered()):
            return []
        try:
            return _backend(name).seccomp_rules()
        except (ValueError, ImportError):
            return []
