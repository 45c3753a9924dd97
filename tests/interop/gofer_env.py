"""Shared helpers for the interop suites that drive *our* gofer with gVisor's Go client.

Starting `gofer serve` costs ~0.3 s, so servers are shared per session: a
``ServerPool`` keeps one server per (kind, flags) serving its own base directory,
and each test gets a fresh subdirectory ``tN`` of it (built on the host before the
client connects) plus a fresh Go client; ``Side.top`` is the test's FDID for ``tN``.
The same tree is built under gVisor's own fsgofer (refgofer) for differential
checks, and in memfs (where the tree is made over the protocol).

Host paths stay short (sun_path is 108 bytes): /tmp/gi-pool-XXXX/g0/t12/...
"""

import hashlib
import itertools
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import ServerProc

FILE_BYTES = bytes(range(256)) * 20 + b"tail"
AT_REMOVEDIR = 0x200
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
XATTR_CREATE, XATTR_REPLACE = 1, 2
STATX_MODE, STATX_UID, STATX_GID = 0x2, 0x8, 0x10
STATX_ATIME, STATX_MTIME, STATX_SIZE = 0x20, 0x40, 0x200
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
DT = {stat.S_IFREG: 8, stat.S_IFDIR: 4, stat.S_IFLNK: 10, stat.S_IFSOCK: 12,
      stat.S_IFIFO: 1, stat.S_IFCHR: 2, stat.S_IFBLK: 6}


def build_tree(root):
    """The default per-test tree (host side)."""
    (root / "file.bin").write_bytes(FILE_BYTES)
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "leaf").write_bytes(b"leaf")
    (root / "empty").mkdir()
    (root / "link").symlink_to("file.bin")
    (root / "dirlink").symlink_to("sub")


class Served:
    """One server process serving ``base``; tests use fresh subdirectories."""

    def __init__(self, kind, argv, base, sock, log):
        self.kind, self.base, self.socket = kind, base, str(sock)
        self.proc = ServerProc(argv, sock, log).wait_ready()
        self._n = itertools.count()

    def new_dir(self):
        d = self.base / f"t{next(self._n)}"
        d.mkdir()
        return d

    def alive(self):
        return self.proc.proc.poll() is None


class ServerPool:
    def __init__(self, tmp, refgofer):
        self.tmp, self.refgofer = tmp, refgofer
        self._servers = {}
        self._n = itertools.count()
        self.outside_root = tmp / "outside"
        self.outside_root.mkdir()
        self._outs = itertools.count()

    def argv(self, kind, base, sock, readonly, host_uds, host_fifo):
        # Our servers run under the seccomp filter (kill mode), as in production:
        # a syscall the allowlist misses ends the server and fails the test.
        if kind == "gofer":
            argv = [sys.executable, "-m", "gofer", "serve", base, "--socket", sock,
                    "--seccomp=kill"]
            argv += ["--readonly"] * readonly
            argv += ["--host-uds", host_uds] if host_uds else []
            argv += ["--host-fifo", host_fifo] if host_fifo else []
        elif kind == "ref":
            argv = [self.refgofer, "-root", base, "-socket", sock]
            argv += ["-readonly"] * readonly
            argv += ["-host-uds", host_uds] if host_uds else []
            argv += ["-host-fifo", host_fifo] if host_fifo else []
        elif kind == "memfs":
            argv = [sys.executable, "-m", "gofer", "serve", "--extension", "memfs",
                    "--socket", sock, "--seccomp=kill"] + ["--readonly"] * readonly
        else:
            raise ValueError(kind)
        return argv

    def get(self, kind, readonly=False, host_uds=None, host_fifo=None):
        key = (kind, readonly, host_uds, host_fifo)
        srv = self._servers.get(key)
        if srv is not None and not srv.alive():
            pytest.fail(f"{kind} server {key} died earlier:\n{srv.proc.stderr()}", pytrace=False)
        if srv is None:
            n = next(self._n)
            base = self.tmp / f"g{n}"
            base.mkdir()
            sock = self.tmp / f"g{n}.sock"
            argv = self.argv(kind, base, sock, readonly, host_uds, host_fifo)
            srv = Served(kind, argv, base, sock, self.tmp / f"g{n}.log")
            self._servers[key] = srv
        return srv

    def new_outside(self):
        d = self.outside_root / f"o{next(self._outs)}"
        d.mkdir()
        return d

    def stop(self):
        died = []
        for key, srv in self._servers.items():
            if srv.proc.stop() is not None:
                died.append((key, srv.proc.stderr()))
        return died


class Side:
    """One Go client on one server, rooted at the test's own directory.

    ``host`` is the test directory on the host (None for memfs).
    """

    def __init__(self, kind, gc, top, host, served):
        self.kind, self.gc, self.top, self.host, self.served = kind, gc, top, host, served

    def __repr__(self):
        return f"<Side {self.kind}>"

    # -- passthrough --
    def call(self, op, **kw):
        return self.gc.call(op, **kw)

    def errno(self, op, **kw):
        return self.gc.errno(op, **kw)

    def request(self, op, **kw):
        return self.gc.request(op, **kw)

    # -- conveniences --
    def walk(self, path="", fd=None):
        """Inode of a slash-separated path under top (one Walk RPC per component)."""
        fd = self.top if fd is None else fd
        ino = None
        for name in [p for p in path.split("/") if p]:
            ino = self.gc.call("walk", fd=fd, name=name)["inode"]
            fd = ino["fd"]
        return ino if ino is not None else {"fd": fd, "stat": self.fstat(fd)}

    def fd(self, path=""):
        return self.walk(path)["fd"] if path else self.top

    def fstat(self, fd):
        return self.gc.call("fstat", fd=fd)["stat"]

    def open(self, path, flags=os.O_RDONLY, **kw):
        return self.gc.call("open_at", fd=self.fd(path), flags=flags, **kw)

    def read_all(self, open_fd, size=1 << 20):
        out = b""
        while True:
            r = self.gc.call("pread", fd=open_fd, offset=len(out), count=size)
            if not r["data"]:
                return out
            out += r["data"]

    def read_file(self, path):
        ofd = self.open(path)["open_fd"]
        try:
            return self.read_all(ofd)
        finally:
            self.gc.call("close", fd=ofd)

    def listdir(self, path="", count=65536):
        """All dirents of a directory (OpenAt + Getdents64 until an empty batch)."""
        ofd = self.open(path)["open_fd"]
        out = []
        try:
            for _ in range(100000):
                batch = self.gc.call("getdents64", fd=ofd, count=count)["dirents"]
                if not batch:
                    break
                out += batch
        finally:
            self.gc.call("close", fd=ofd)
        return out

    def listdir_fd(self, open_fd, count=65536):
        out = []
        for _ in range(100000):
            batch = self.gc.call("getdents64", fd=open_fd, count=count)["dirents"]
            if not batch:
                return out
            out += batch
        raise AssertionError("getdents64 never ended")

    def names(self, path=""):
        """Sorted entry names, without "." and ".." (fsgofer never sends them)."""
        return sorted(e["name"] for e in self.listdir(path) if e["name"] not in (".", ".."))

    def mkfile(self, name, data=b"", fd=None, mode=0o644):
        r = self.gc.call("open_create_at", fd=self.top if fd is None else fd, name=name,
                         flags=os.O_RDWR, mode=mode)
        if data:
            self.gc.call("pwrite", fd=r["open_fd"], data=data, offset=0)
        self.gc.call("close", fd=r["open_fd"])
        return r["inode"]


def differential(open_side, scenario, **kw):
    """Run scenario(side) on our gofer and on gVisor's fsgofer (fresh identical trees,
    same transport and flags); the observations must be equal. Returns ours."""
    ours = scenario(open_side("gofer", **kw))
    ref = scenario(open_side("ref", **kw))
    if ours != ref:
        if isinstance(ours, list) and isinstance(ref, list) and len(ours) == len(ref):
            diffs = [f"  [{i}] ours={a!r}\n       ref ={b!r}"
                     for i, (a, b) in enumerate(zip(ours, ref)) if a != b]
        else:
            diffs = [f"  ours={ours!r}\n  ref ={ref!r}"]
        pytest.fail("our gofer differs from gVisor's fsgofer:\n" + "\n".join(diffs),
                    pytrace=False)
    return ours


def build_via_protocol(side):
    """The default tree made over LISAFS (for memfs, which has no host side)."""
    side.mkfile("file.bin", FILE_BYTES)
    sub = side.call("mkdir_at", fd=side.top, name="sub", mode=0o755)["inode"]["fd"]
    side.mkfile("inner.txt", b"inner\n", fd=sub)
    deeper = side.call("mkdir_at", fd=sub, name="deeper", mode=0o755)["inode"]["fd"]
    side.mkfile("leaf", b"leaf", fd=deeper)
    side.call("mkdir_at", fd=side.top, name="empty", mode=0o755)
    side.call("symlink_at", fd=side.top, name="link", target="file.bin")
    side.call("symlink_at", fd=side.top, name="dirlink", target="sub")


def assert_matches_host(sx, st, times=True):
    """A lisafs Statx (driver JSON) describes the same file as an os.stat_result."""
    assert sx["mode"] == st.st_mode
    assert sx["ino"] == st.st_ino
    assert (sx["dev_major"], sx["dev_minor"]) == (os.major(st.st_dev), os.minor(st.st_dev))
    assert sx["nlink"] == st.st_nlink
    assert (sx["uid"], sx["gid"]) == (st.st_uid, st.st_gid)
    assert sx["size"] == st.st_size
    if times:
        assert sx["mtime_sec"] * 10**9 + sx["mtime_nsec"] == st.st_mtime_ns


def snapshot(path, atime=True):
    """Everything observable about a host tree: per entry type, mode, uid/gid, size,
    mtime, nlink, ino (and atime of non-directories, to catch reads), symlink
    target, content hash and xattrs. Reading it does not disturb atimes."""
    path = Path(path)
    paths = [path]
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        paths += [Path(dirpath) / n for n in dirnames + filenames]
    out = {}
    for p in paths:
        st = os.lstat(p)
        rec = [stat.S_IFMT(st.st_mode), st.st_mode, st.st_uid, st.st_gid, st.st_size,
               st.st_mtime_ns, st.st_nlink, st.st_ino]
        if atime and not stat.S_ISDIR(st.st_mode):
            rec.append(st.st_atime_ns)
        if stat.S_ISLNK(st.st_mode):
            rec.append(os.readlink(p))
        elif stat.S_ISREG(st.st_mode):
            rec.append(hashlib.sha256(_read_noatime(p)).hexdigest())
        try:
            names = os.listxattr(p, follow_symlinks=False)
            rec.append(sorted((k, os.getxattr(p, k, follow_symlinks=False)) for k in names))
        except OSError:
            pass
        out[str(p.relative_to(path))] = rec
    return out


def _read_noatime(p):
    """Read without disturbing atime (O_NOATIME works for the owner, and for root)."""
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOATIME", 0) | os.O_NOFOLLOW)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_outside(d):
    """A sibling "outside" tree a malicious client must never reach."""
    (d / "secret").write_bytes(b"top secret\n")
    (d / "secretdir").mkdir()
    (d / "secretdir" / "f").write_bytes(b"f\n")
    # atime well before mtime: under relatime any read through the server updates it.
    for p in (d / "secret", d / "secretdir" / "f"):
        st = os.stat(p)
        os.utime(p, ns=(10**9, st.st_mtime_ns))
    for p in (d / "secret", d / "secretdir"):
        try:
            os.setxattr(p, "user.mark", b"m")  # attacks must neither see nor change it
        except OSError:
            pass
    return d


def new_pool():
    d = Path(tempfile.mkdtemp(prefix="gi-pool-", dir="/tmp"))
    os.chmod(d, 0o755)  # searchable by other uids (ConnectWithCreds tests), like a rootfs
    return d


def rm_pool(path):
    shutil.rmtree(path, ignore_errors=True)

