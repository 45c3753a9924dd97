"""A conformance kit for gofer backends: the checks gVisor runs on its own
backend, for yours, over the socket and over flipcall channels.

In a pytest file of your project:

    from gofer.testing import conformance_tests
    from mybackend import MyConnection

    test_conformance = conformance_tests(lambda workdir: MyConnection())

`conformance_tests` takes a factory called once per check with a new empty
directory (for a backend that stores files on the host; ignore it
otherwise) and returns a pytest test, parametrized over every check the
backend claims and both transports. Each check runs on a new backend,
served in-process by gofer's server and driven by gofer's Python client
(`gofer.client`).

A backend claims a check by serving its messages (supported_messages()).
Some checks also need the storage to keep something (KEPT: permission
bits, times set by SetStat); a backend whose storage does not, by design,
says so with a `does_not_keep` attribute on its ConnectionImpl, e.g.
``does_not_keep = frozenset({"modes"})``, and those checks do not run.

Without pytest: `run_check(check, factory, channels)` runs one check of
`CHECKS` and raises AssertionError naming what failed; with
`claimed_checks(factory)` it makes the same test for a backend whose
factory needs a fixture (a server to talk to): parametrize over the claimed
checks of a factory that needs no server, and run each with the fixture's.
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
# Each check names the MIDs it needs, and what else of a file the storage
# must keep (KEPT); it runs only if the backend claims them (it serves the
# MIDs, and does not list the rest in its `does_not_keep`).

KEPT = {"modes": "permission bits, as created and as changed by SetStat",
        "times": "a modification time set by SetStat"}


def needs(*mids, keeps=()):
    def mark(f):
        f.needs, f.keeps = frozenset(mids), frozenset(keeps)
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
    s.c.close_fds(reader)
    # Across block and page boundaries, then kept when the writer closes
    # (where a store that buffers writes sends them) and read anew.
    big = bytes(range(251)) * 41
    assert s.c.pwrite(ofd, 4000, big) == len(big)
    s.c.close_fds(ofd)
    reader, host = s.c.open_at(child.control_fd, os.O_RDONLY)
    _close(host)
    assert s.c.fstat(reader).size == 4000 + len(big)
    assert s.c.pread(reader, 4000, len(big)) == big, "data changed after the close"
    assert s.c.pread(reader, 0, 12) == b"hello, gofer"
    assert s.c.pread(reader, 104, 100) == bytes(100), "a hole reads as zeros"


@needs(MID.MkdirAt)
def check_mkdir(s):
    d = s.mkdir(b"d", mode=0o750)
    assert stat.S_ISDIR(d.stat.mode)
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


@needs(MID.RenameAt, MID.MkdirAt, MID.OpenCreateAt, MID.PWrite, MID.PRead)
def check_rename_dir(s):
    d = s.mkdir(b"d")
    sub = s.mkdir(b"sub", dir_fd=d.control_fd)
    child, ofd, host = s.create(b"f", dir_fd=sub.control_fd)
    _close(host)
    assert s.c.pwrite(ofd, 0, b"moved along") == 11
    s.c.close_fds(ofd)
    s.c.call(MID.RenameAt, old_dir=s.root, new_dir=s.root, old_name=b"d", new_name=b"e")
    assert s.walk(b"d")[0] == WALK_COMPONENT_DOES_NOT_EXIST
    status, inodes = s.walk(b"e", b"sub", b"f")
    assert status == WALK_SUCCESS and stat.S_ISDIR(inodes[0].stat.mode), (status, inodes)
    reader, host = s.c.open_at(inodes[2].control_fd, os.O_RDONLY)
    _close(host)
    assert s.c.pread(reader, 0, 100) == b"moved along"
    # The FDs taken before the rename still reach the file.
    assert s.c.fstat(child.control_fd).size == 11
    assert s.errno_of(MID.RenameAt, old_dir=s.root, new_dir=inodes[1].control_fd,
                      old_name=b"e", new_name=b"x") == errno.EINVAL, "renamed into itself"


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


def _set_stat(s, fd, mask, mode=0, size=0, mtime=(0, 0)):
    """SetStat; asserts every attribute in `mask` was applied."""
    r = s.c.call(MID.SetStat, fd=fd, mask=mask, mode=mode, uid=0, gid=0, size=size,
                 atime_sec=0, atime_nsec=0, mtime_sec=mtime[0], mtime_nsec=mtime[1])
    assert (r["failure_mask"], r["failure_errno"]) == (0, 0), r


@needs(MID.SetStat, MID.OpenCreateAt, MID.PWrite, MID.PRead)
def check_setstat(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    assert s.c.pwrite(ofd, 0, b"0123456789abcdef") == 16
    s.c.close_fds(ofd)
    _set_stat(s, child.control_fd, STATX_SIZE, size=10)
    assert s.c.fstat(child.control_fd).size == 10
    _set_stat(s, child.control_fd, STATX_SIZE, size=20)
    reader, host = s.c.open_at(child.control_fd, os.O_RDONLY)
    _close(host)
    assert s.c.fstat(reader).size == 20
    assert s.c.pread(reader, 0, 100) == b"0123456789" + bytes(10), "truncated, then grown"
    d = s.mkdir(b"d") if s.claims(MID.MkdirAt) else None
    if d is not None:
        r = s.c.call(MID.SetStat, fd=d.control_fd, mask=STATX_SIZE, mode=0, uid=0, gid=0,
                     size=0, atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=0)
        assert r["failure_mask"] & STATX_SIZE and r["failure_errno"] == errno.EISDIR, r


@needs(MID.SetStat, MID.OpenCreateAt, MID.MkdirAt, keeps=["modes"])
def check_modes(s):
    child, ofd, host = s.create(b"f", mode=0o640)
    _close(host)
    assert child.stat.mode & 0o7777 == 0o640, "mode %o, asked 0640" % child.stat.mode
    d = s.mkdir(b"d", mode=0o750)
    assert d.stat.mode & 0o7777 == 0o750, "mode %o, asked 0750" % d.stat.mode
    _set_stat(s, child.control_fd, STATX_MODE, mode=0o600)
    st = s.c.fstat(child.control_fd)
    assert st.mode & 0o7777 == 0o600 and stat.S_ISREG(st.mode), "mode %o" % st.mode
    status, inodes = s.walk(b"f")
    assert inodes[0].stat.mode & 0o7777 == 0o600, "a new walk sees %o" % inodes[0].stat.mode


@needs(MID.SetStat, MID.OpenCreateAt, keeps=["times"])
def check_times(s):
    child, ofd, host = s.create(b"f")
    _close(host)
    _set_stat(s, child.control_fd, STATX_MTIME, mtime=(1234567890, 5))
    st = s.c.fstat(child.control_fd)
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
          check_symlink, check_link, check_rename, check_rename_dir, check_unlink, check_getdents,
          check_setstat, check_modes, check_times, check_allocate, check_statfs, check_xattrs]


# ---------------------------------------------------------------- running

def claimed_checks(factory):
    """The checks whose MIDs the backend claims (asked of a new backend)."""
    workdir = tempfile.mkdtemp(prefix="gofer-conformance-")
    try:
        impl = factory(workdir)
        claimed = set(impl.supported_messages())
        not_kept = set(getattr(impl, "does_not_keep", ()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    unknown = not_kept - set(KEPT)
    if unknown:
        raise ValueError("does_not_keep names %s; the kit knows %s" % (sorted(unknown),
                                                                      sorted(KEPT)))
    return [c for c in CHECKS if c.needs <= claimed and not c.keeps & not_kept]


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
