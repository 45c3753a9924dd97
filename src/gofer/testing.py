"""A conformance kit for gofer backends: the checks gVisor runs on its own
backend, for yours, over the socket and over flipcall channels.

In a pytest file of your project:

    from gofer.testing import conformance_tests
    from mybackend import MyConnection

    test_conformance = conformance_tests(lambda workdir: MyConnection())

`conformance_tests` takes a factory called once per check with a new empty
directory (for a backend that stores files on the host; ignore it
otherwise) and returns a pytest test, parametrized over every check the
backend claims (by its supported_messages()) and both transports. Each check
runs on a new backend, served in-process by gofer's server and driven by
gofer's Python client (`gofer.client`).

Without pytest: `run_check(check, factory, channels)` runs one check of
`CHECKS` and raises AssertionError naming what failed.
"""
import errno
import fcntl
import os
import shutil
import socket
import stat
import tempfile

from gofer.lisafs import (AT_REMOVEDIR, MID, RENAME_NOREPLACE, STATX_MODE, STATX_MTIME,
                          STATX_SIZE, STATX_TYPE, WALK_COMPONENT_DOES_NOT_EXIST,
                          WALK_COMPONENT_SYMLINK, WALK_SUCCESS, XATTR_CREATE, ConnectionOpts)

__all__ = ["CHECKS", "conformance_tests", "run_check", "claimed_checks"]

NO_ID = 0xFFFFFFFF
DT_DIR, DT_REG = 4, 8


class Session:
    """What a check works with: a client mounted on a new backend."""

    def __init__(self, client):
        self.c = client
        self.root = client.root.control_fd
        self.supported = client.supported

    def claims(self, *mids):
        return all(m in self.supported for m in mids)

    def errno_of(self, mid, **fields):
        """The errno the server answers `mid` with (0 for success)."""
        try:
            self.c.call(mid, **fields)
        except OSError as e:
            return e.errno
        return 0

    def create(self, name, mode=0o644, flags=os.O_RDWR, dir_fd=None):
        """Creates `name`: returns (Inode, open FDID, donated host FD or None)."""
        r, fds = self.c.call_fds(MID.OpenCreateAt, dir_fd=self.root if dir_fd is None else dir_fd,
                                 uid=NO_ID, gid=NO_ID, mode=mode, flags=flags, name=name)
        return r["child"], r["new_fd"], (fds[0] if fds else None)

    def mkdir(self, name, mode=0o755, dir_fd=None):
        return self.c.call(MID.MkdirAt, dir_fd=self.root if dir_fd is None else dir_fd,
                           uid=NO_ID, gid=NO_ID, mode=mode, name=name)["child"]

    def walk(self, *names, dir_fd=None):
        return self.c.walk(self.root if dir_fd is None else dir_fd, list(names))

    def names(self, dir_fd, count=256):
        """Every name of a directory, read `count` bytes at a time."""
        ofd, host = self.c.open_at(dir_fd, os.O_RDONLY)
        _close(host)
        seen = []
        while True:
            batch = self.c.getdents64(ofd, count)
            if not batch:
                return seen, ofd
            seen.extend(d for d in batch if d.name not in (b".", b".."))


def _close(fd):
    if fd is not None:
        os.close(fd)


def _donated_ok(fd):
    """A donated FD is non-blocking (and was close-on-exec on the server)."""
    if fd is not None:
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK, "donated FD is blocking"


# ---------------------------------------------------------------- checks
# Each check names the MIDs it needs; it runs only if the backend claims them.

def needs(*mids):
    def mark(f):
        f.needs = frozenset(mids)
        return f
    return mark


@needs(MID.FStat)
def check_stat(s):
    st = s.c.fstat(s.root)
    assert st.mask & STATX_TYPE, "stat() mask lacks STATX_TYPE"
    assert stat.S_ISDIR(st.mode), "the root is not a directory: mode %o" % st.mode
    assert (st.ino, st.dev_minor, st.dev_major) == (
        s.c.root.stat.ino, s.c.root.stat.dev_minor, s.c.root.stat.dev_major), \
        "FStat and Mount disagree on the root's identity"


@needs(MID.Walk, MID.WalkStat)
def check_walk(s):
    status, inodes = s.walk(b"no-such-name")
    assert (status, inodes) == (WALK_COMPONENT_DOES_NOT_EXIST, []), (status, inodes)
    assert s.c.walk_stat(s.root, [b"no-such-name"]) == []
    if s.claims(MID.MkdirAt):
        a = s.mkdir(b"a")
        b = s.mkdir(b"b", dir_fd=a.control_fd)
        status, inodes = s.walk(b"a", b"b", b"missing")
        assert status == WALK_COMPONENT_DOES_NOT_EXIST and len(inodes) == 2
        assert [i.stat.ino for i in inodes] == [a.stat.ino, b.stat.ino]
        assert [x.ino for x in s.c.walk_stat(s.root, [b"a", b"b"])] == [a.stat.ino, b.stat.ino]
        status, inodes = s.walk(b"a", b"b")
        assert status == WALK_SUCCESS and stat.S_ISDIR(inodes[1].stat.mode)
    if s.claims(MID.SymlinkAt):
        s.c.call(MID.SymlinkAt, dir_fd=s.root, uid=NO_ID, gid=NO_ID, name=b"l", target=b"a")
        status, inodes = s.walk(b"l", b"x")
        assert status == WALK_COMPONENT_SYMLINK and len(inodes) == 1, (status, inodes)


@needs(MID.OpenAt)
def check_open(s):
    ofd, host = s.c.open_at(s.root, os.O_RDONLY)
    _donated_ok(host)
    _close(host)
    assert s.errno_of(MID.OpenAt, fd=s.root, flags=os.O_WRONLY) == errno.EISDIR
    assert stat.S_ISDIR(s.c.fstat(ofd).mode)
    s.c.close_fds(ofd)


@needs(MID.OpenCreateAt)
def check_create(s):
    child, ofd, host = s.create(b"f", mode=0o640)
    _donated_ok(host)
    _close(host)
    assert stat.S_ISREG(child.stat.mode), "created file mode %o" % child.stat.mode
    assert child.stat.mode & 0o7777 == 0o640, "mode %o, asked 0640" % child.stat.mode
    assert s.errno_of(MID.OpenCreateAt, dir_fd=s.root, uid=NO_ID, gid=NO_ID, mode=0o644,
                      flags=os.O_RDWR, name=b"f") == errno.EEXIST
    status, inodes = s.walk(b"f")
    assert status == WALK_SUCCESS and inodes[0].stat.ino == child.stat.ino


@needs(MID.OpenCreateAt, MID.PWrite, MID.PRead)
def check_read_write(s):
    child, ofd, host = s.create(b"f")
    assert s.c.pwrite(ofd, 0, b"hello, gofer") == 12
    assert s.c.pwrite(ofd, 100, b"tail") == 4
    assert s.c.pread(ofd, 0, 12) == b"hello, gofer"
    assert s.c.pread(ofd, 12, 88) == bytes(88), "a hole reads as zeros"
    assert s.c.pread(ofd, 104, 10) == b"", "reading at the end gives b''"
    assert s.c.fstat(ofd).size == 104
    if host is not None:
        _donated_ok(host)
        assert os.pread(host, 12, 0) == b"hello, gofer", "donated FD disagrees with PRead"
        os.close(host)
    reader, host = s.c.open_at(child.control_fd, os.O_RDONLY)
    _close(host)
    assert s.errno_of(MID.PWrite, fd=reader, offset=0, data=b"x") == errno.EBADF
    assert s.c.pread(reader, 7, 5) == b"gofer"


@needs(MID.MkdirAt)
def check_mkdir(s):
    d = s.mkdir(b"d", mode=0o750)
    assert stat.S_ISDIR(d.stat.mode) and d.stat.mode & 0o7777 == 0o750
    assert s.errno_of(MID.MkdirAt, dir_fd=s.root, uid=NO_ID, gid=NO_ID, mode=0o755,
                      name=b"d") == errno.EEXIST
    if s.claims(MID.OpenCreateAt):
        child, ofd, host = s.create(b"inner", dir_fd=d.control_fd)
        _close(host)
        status, inodes = s.walk(b"d", b"inner")
        assert status == WALK_SUCCESS and inodes[1].stat.ino == child.stat.ino


@needs(MID.SymlinkAt, MID.ReadLinkAt)
def check_symlink(s):
    r = s.c.call(MID.SymlinkAt, dir_fd=s.root, uid=NO_ID, gid=NO_ID, name=b"l",
                 target=b"some/where")
    assert stat.S_ISLNK(r["child"].stat.mode)
    assert s.c.call(MID.ReadLinkAt, fd=r["child"].control_fd)["target"] == b"some/where"
    assert s.errno_of(MID.SymlinkAt, dir_fd=s.root, uid=NO_ID, gid=NO_ID, name=b"l",
                      target=b"x") == errno.EEXIST


@needs(MID.LinkAt, MID.OpenCreateAt)
def check_link(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    r = s.c.call(MID.LinkAt, dir_fd=s.root, target=child.control_fd, name=b"g")
    assert r["child"].stat.ino == child.stat.ino, "a hard link has its target's identity"
    assert s.c.fstat(child.control_fd).nlink == 2
    assert s.errno_of(MID.LinkAt, dir_fd=s.root, target=child.control_fd,
                      name=b"g") == errno.EEXIST


@needs(MID.RenameAt, MID.OpenCreateAt)
def check_rename(s):
    child, ofd, host = s.create(b"a")
    _close(host)
    s.c.call(MID.RenameAt, old_dir=s.root, new_dir=s.root, old_name=b"a", new_name=b"b")
    assert s.walk(b"a")[0] == WALK_COMPONENT_DOES_NOT_EXIST
    status, inodes = s.walk(b"b")
    assert status == WALK_SUCCESS and inodes[0].stat.ino == child.stat.ino
    assert s.errno_of(MID.RenameAt, old_dir=s.root, new_dir=s.root, old_name=b"a",
                      new_name=b"c") == errno.ENOENT
    if s.claims(MID.RenameAt2):
        _close(s.create(b"c")[2])
        assert s.errno_of(MID.RenameAt2, old_dir=s.root, new_dir=s.root, old_name=b"b",
                          new_name=b"c", flags=RENAME_NOREPLACE) == errno.EEXIST


@needs(MID.UnlinkAt, MID.OpenCreateAt, MID.MkdirAt)
def check_unlink(s):
    _close(s.create(b"f")[2])
    d = s.mkdir(b"d")
    _close(s.create(b"x", dir_fd=d.control_fd)[2])
    s.c.call(MID.UnlinkAt, dir_fd=s.root, name=b"f", flags=0)
    assert s.walk(b"f")[0] == WALK_COMPONENT_DOES_NOT_EXIST
    assert s.errno_of(MID.UnlinkAt, dir_fd=s.root, name=b"f", flags=0) == errno.ENOENT
    assert s.errno_of(MID.UnlinkAt, dir_fd=s.root, name=b"d", flags=0) == errno.EISDIR
    assert s.errno_of(MID.UnlinkAt, dir_fd=s.root, name=b"d",
                      flags=AT_REMOVEDIR) == errno.ENOTEMPTY
    s.c.call(MID.UnlinkAt, dir_fd=d.control_fd, name=b"x", flags=0)
    s.c.call(MID.UnlinkAt, dir_fd=s.root, name=b"d", flags=AT_REMOVEDIR)
    assert s.walk(b"d")[0] == WALK_COMPONENT_DOES_NOT_EXIST


@needs(MID.Getdents64, MID.OpenAt, MID.OpenCreateAt, MID.MkdirAt)
def check_getdents(s):
    want = {b"file-%03d-%s" % (i, b"x" * (i % 40)) for i in range(60)}
    for name in want:
        _close(s.create(name)[2])
    d = s.mkdir(b"subdir")
    seen, ofd = s.names(s.root, count=256)
    names = [e.name for e in seen]
    assert sorted(names) == sorted(want | {b"subdir"}), "entries missing or repeated"
    types = {e.name: e.type for e in seen}
    assert types[b"subdir"] == DT_DIR and types[b"file-000-"] == DT_REG
    assert {e.ino for e in seen if e.name == b"subdir"} == {d.stat.ino}
    again = s.c.getdents64(ofd, -4096)      # negative: from the start
    assert again, "reading again from the start gave nothing"


@needs(MID.SetStat, MID.OpenCreateAt)
def check_setstat(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    fd = child.control_fd
    r = s.c.call(MID.SetStat, fd=fd, mask=STATX_MODE | STATX_SIZE | STATX_MTIME, mode=0o600,
                 uid=0, gid=0, size=10, atime_sec=0, atime_nsec=0, mtime_sec=1234567890,
                 mtime_nsec=5)
    assert (r["failure_mask"], r["failure_errno"]) == (0, 0), r
    st = s.c.fstat(fd)
    assert st.mode & 0o7777 == 0o600 and stat.S_ISREG(st.mode)
    assert st.size == 10
    assert (st.mtime_sec, st.mtime_nsec) == (1234567890, 5)


@needs(MID.FAllocate, MID.OpenCreateAt)
def check_allocate(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    s.c.call(MID.FAllocate, fd=ofd, mode=0, offset=0, length=8192)
    assert s.c.fstat(ofd).size == 8192
    reader, host = s.c.open_at(child.control_fd, os.O_RDONLY)
    _close(host)
    assert s.errno_of(MID.FAllocate, fd=reader, mode=0, offset=0, length=1) == errno.EBADF


@needs(MID.FStatFS)
def check_statfs(s):
    r = s.c.call(MID.FStatFS, fd=s.root)
    assert r["block_size"] > 0 and r["name_length"] > 0, r
    assert r["blocks_free"] <= r["blocks"] and r["blocks_available"] <= r["blocks"], r


@needs(MID.FSetXattr, MID.FGetXattr, MID.FListXattr, MID.FRemoveXattr, MID.OpenCreateAt)
def check_xattrs(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    fd = child.control_fd
    s.c.call(MID.FSetXattr, fd=fd, name=b"user.gofer", value=b"value", flags=0)
    assert s.c.call(MID.FGetXattr, fd=fd, name=b"user.gofer", buf_size=0)["value"] == b"value"
    assert s.errno_of(MID.FGetXattr, fd=fd, name=b"user.gofer", buf_size=2) == errno.ERANGE
    assert b"user.gofer" in s.c.call(MID.FListXattr, fd=fd, size=0)["xattrs"]
    assert s.errno_of(MID.FSetXattr, fd=fd, name=b"user.gofer", value=b"v",
                      flags=XATTR_CREATE) == errno.EEXIST
    s.c.call(MID.FRemoveXattr, fd=fd, name=b"user.gofer")
    assert s.errno_of(MID.FGetXattr, fd=fd, name=b"user.gofer", buf_size=0) == errno.ENODATA


CHECKS = [check_stat, check_walk, check_open, check_create, check_read_write, check_mkdir,
          check_symlink, check_link, check_rename, check_unlink, check_getdents,
          check_setstat, check_allocate, check_statfs, check_xattrs]


# ---------------------------------------------------------------- running

def claimed_checks(factory):
    """The checks whose MIDs the backend claims (asked of a new backend)."""
    workdir = tempfile.mkdtemp(prefix="gofer-conformance-")
    try:
        claimed = set(factory(workdir).supported_messages())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [c for c in CHECKS if c.needs <= claimed]


def run_check(check, factory, channels=False, opts=None):
    """Runs one check on a new backend from `factory(workdir)`, served
    in-process, over flipcall channels if `channels` (else the socket)."""
    from gofer.client import Client
    from gofer.lisafs import ConnectionImpl
    from gofer.service import Service
    from gofer._server import Server

    workdir = tempfile.mkdtemp(prefix="gofer-conformance-")
    service = Service(Server())
    client = None
    try:
        impl = factory(workdir)
        if not isinstance(impl, ConnectionImpl):
            raise TypeError("the factory must return a ConnectionImpl, not %r" % (impl,))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        service.start(theirs.detach(), impl, opts or ConnectionOpts())
        client = Client(ours)
        if channels:
            assert client.start_channels(1) == 1, "the server granted no channel"
        check(Session(client))
    finally:
        if client is not None:
            client.close()
        service.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def conformance_tests(factory, opts=None):
    """A pytest test running every claimed check over both transports."""
    import pytest

    @pytest.mark.parametrize("channels", [False, True], ids=["socket", "channels"])
    @pytest.mark.parametrize("check", claimed_checks(factory), ids=lambda c: c.__name__[6:])
    def test_conformance(check, channels):
        run_check(check, factory, channels, opts)
    return test_conformance
