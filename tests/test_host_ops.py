"""Every mutating and metadata RPC of the stock backend, checked against the
host, through the Python client."""
import errno
import logging
import os
import socket
import stat
import struct

import pytest

from gofer import _wire as w
from test_server import errno_of

S_IFMT = 0o170000
NO_ID = 0xFFFFFFFF


def create(c, mid, dir_fd, name, mode=0o644, **extra):
    return c.call_fds(mid, dir_fd=dir_fd, uid=NO_ID, gid=NO_ID, mode=mode, name=name, **extra)


def test_mkdir_create_symlink_link_unlink(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    d = create(c, w.MKDIR_AT, root, b"newdir", 0o750)[0]["child"]
    assert os.path.isdir(tree / "newdir")
    assert stat.S_IMODE(os.stat(tree / "newdir").st_mode) == 0o750 & ~_umask()
    assert d.stat.ino == os.stat(tree / "newdir").st_ino

    r, fds = create(c, w.OPEN_CREATE_AT, d.control_fd, b"f", 0o600, flags=os.O_RDWR)
    assert len(fds) == 1
    os.close(fds[0])
    assert c.pwrite(r["new_fd"], 0, b"data") == 4
    assert (tree / "newdir" / "f").read_bytes() == b"data"
    assert errno_of(create, c, w.OPEN_CREATE_AT, d.control_fd, b"f", 0o600, flags=0) == errno.EEXIST

    s = c.call(w.SYMLINK_AT, dir_fd=root, uid=NO_ID, gid=NO_ID, name=b"sl", target=b"newdir/f")["child"]
    assert os.readlink(tree / "sl") == "newdir/f"
    assert c.call(w.READLINK_AT, fd=s.control_fd)["target"] == b"newdir/f"
    assert errno_of(c.call, w.READLINK_AT, fd=root) == errno.EINVAL

    l = c.call(w.LINK_AT, dir_fd=root, target=r["child"].control_fd, name=b"hard")["child"]
    assert l.stat.ino == os.stat(tree / "newdir" / "f").st_ino
    assert os.stat(tree / "hard").st_nlink == 2
    assert errno_of(c.call, w.LINK_AT, dir_fd=root, target=d.control_fd, name=b"x") == errno.EPERM

    c.call(w.UNLINK_AT, dir_fd=root, flags=0, name=b"hard")
    assert not (tree / "hard").exists()
    assert errno_of(c.call, w.UNLINK_AT, dir_fd=root, flags=0, name=b"newdir") in (
        errno.EISDIR, errno.EPERM)
    assert errno_of(c.call, w.UNLINK_AT, dir_fd=root, flags=0x200, name=b"newdir") == errno.ENOTEMPTY
    c.call(w.UNLINK_AT, dir_fd=d.control_fd, flags=0, name=b"f")
    c.call(w.UNLINK_AT, dir_fd=root, flags=0x200, name=b"newdir")
    assert not (tree / "newdir").exists()
    # The unlinked directory's FD is now of a deleted node.
    assert errno_of(create, c, w.MKDIR_AT, d.control_fd, b"again") == errno.EINVAL
    _, [g] = c.walk(root, [b"sub"])
    st, inodes = c.walk(root, [b"newdir"])
    assert st == w.WALK_COMPONENT_DOES_NOT_EXIST and not inodes


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


@pytest.mark.parametrize("name", [b"", b".", b"..", b"a/b"])
def test_create_names_are_checked(tree, connect, name):
    c = connect(tree)
    root = c.root.control_fd
    for mid, extra in ((w.MKDIR_AT, {}), (w.OPEN_CREATE_AT, dict(flags=0)),
                       (w.MKNOD_AT, dict(minor=0, major=0))):
        assert errno_of(create, c, mid, root, name, 0o100644, **extra) == errno.EINVAL
    assert errno_of(c.call, w.UNLINK_AT, dir_fd=root, flags=0, name=name) == errno.EINVAL
    assert errno_of(c.call, w.RENAME_AT, old_dir=root, new_dir=root, old_name=b"file.txt",
                    new_name=name) == errno.EINVAL
    assert sorted(os.listdir(tree)) == ["file.txt", "link", "sub"]


def test_mknod_policy(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    create(c, w.MKNOD_AT, root, b"reg", 0o100640, minor=0, major=0)
    assert stat.S_ISREG(os.stat(tree / "reg").st_mode)
    assert errno_of(create, c, w.MKNOD_AT, root, b"fifo", 0o010644, minor=0, major=0) == errno.EPERM
    assert errno_of(create, c, w.MKNOD_AT, root, b"dev", 0o020644, minor=1, major=1) == errno.EPERM


def test_rename_updates_the_tree(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    _, [sub, inner] = c.walk(root, [b"sub", b"inner.bin"])
    c.call(w.RENAME_AT, old_dir=root, new_dir=root, old_name=b"sub", new_name=b"moved")
    assert (tree / "moved" / "inner.bin").exists() and not (tree / "sub").exists()
    # FDs follow the file; the old name is gone.
    assert c.fstat(inner.control_fd).ino == os.stat(tree / "moved" / "inner.bin").st_ino
    assert c.walk(root, [b"sub"])[0] == w.WALK_COMPONENT_DOES_NOT_EXIST
    # Replacing a file marks its node deleted.
    _, [f] = c.walk(root, [b"file.txt"])
    c.call(w.RENAME_AT2, old_dir=sub.control_fd, new_dir=root, old_name=b"inner.bin",
           new_name=b"file.txt", flags=0)
    assert errno_of(c.call, w.FGETXATTR, fd=f.control_fd, buf_size=0, name=b"user.x") == errno.EINVAL
    # RENAME_NOREPLACE and RENAME_EXCHANGE reach the host.
    (tree / "other").write_text("o")
    assert errno_of(c.call, w.RENAME_AT2, old_dir=root, new_dir=root, old_name=b"other",
                    new_name=b"file.txt", flags=1) == errno.EEXIST
    c.call(w.RENAME_AT2, old_dir=root, new_dir=root, old_name=b"other", new_name=b"link", flags=2)
    assert (tree / "other").is_symlink() and (tree / "link").read_text() == "o"
    # Same directory and name: nothing to do.
    c.call(w.RENAME_AT, old_dir=root, new_dir=root, old_name=b"x", new_name=b"x")


def test_setstat(tree, connect):
    c = connect(tree)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    r = c.call(w.SETSTAT, fd=f.control_fd, mask=w.STATX_MODE | w.STATX_SIZE | w.STATX_ATIME | w.STATX_MTIME,
               mode=0o600, uid=0, gid=0, size=5, atime_sec=100, atime_nsec=5,
               mtime_sec=200, mtime_nsec=w.UTIME_OMIT)
    assert r == dict(failure_mask=0, failure_errno=0)
    st = os.stat(tree / "file.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_size, st.st_atime_ns) == (0o600, 5, 100 * 10**9 + 5)
    # UTIME_NOW, from a time long past: the truncate above set the mtime to
    # now too, and a coarse clock (the arm64 stage's) may not have moved.
    os.utime(tree / "file.txt", ns=(st.st_atime_ns, 200 * 10**9))
    c.call(w.SETSTAT, fd=f.control_fd, mask=w.STATX_MTIME, mode=0, uid=0, gid=0, size=0,
           atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=w.UTIME_NOW)
    assert os.stat(tree / "file.txt").st_mtime_ns >= st.st_mtime_ns > 200 * 10**9
    assert errno_of(c.call, w.SETSTAT, fd=f.control_fd, mask=w.STATX_INO, mode=0, uid=0, gid=0,
                    size=0, atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=0) == errno.EPERM
    # Partial failure is a successful RPC that names what failed.
    _, [d] = c.walk(c.root.control_fd, [b"sub"])
    r = c.call(w.SETSTAT, fd=d.control_fd, mask=w.STATX_SIZE | w.STATX_MODE, mode=0o711, uid=0,
               gid=0, size=1, atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=0)
    assert r == dict(failure_mask=w.STATX_SIZE, failure_errno=errno.EISDIR)
    assert stat.S_IMODE(os.stat(tree / "sub").st_mode) == 0o711


def test_xattrs(tree, connect):
    c = connect(tree)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    fd = f.control_fd
    try:
        c.call(w.FSETXATTR, fd=fd, flags=0, name=b"user.k", value=b"v\x00al")
    except OSError as e:
        pytest.skip("the filesystem under %s has no user xattrs (%s)" % (tree, e))
    assert os.getxattr(tree / "file.txt", "user.k") == b"v\x00al"
    assert c.call(w.FGETXATTR, fd=fd, buf_size=0, name=b"user.k")["value"] == b"v\x00al"
    assert errno_of(c.call, w.FGETXATTR, fd=fd, buf_size=2, name=b"user.k") == errno.ERANGE
    assert b"user.k" in c.call(w.FLISTXATTR, fd=fd, size=0)["xattrs"]
    assert errno_of(c.call, w.FSETXATTR, fd=fd, flags=1, name=b"user.k", value=b"") == errno.EEXIST
    c.call(w.FREMOVEXATTR, fd=fd, name=b"user.k")
    assert errno_of(c.call, w.FGETXATTR, fd=fd, buf_size=0, name=b"user.k") == errno.ENODATA


def test_statfs_fsync_allocate(tree, connect):
    c = connect(tree)
    sfs = c.call(w.FSTATFS, fd=c.root.control_fd)
    host = os.statvfs(tree)
    assert (sfs["block_size"], sfs["blocks"], sfs["name_length"]) == (
        host.f_bsize, host.f_blocks, host.f_namemax)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    fd, h = c.open_at(f.control_fd, os.O_RDWR)
    os.close(h)
    rfd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    c.call(w.FSYNC, fds=[fd, rfd])
    assert errno_of(c.call, w.FSYNC, fds=[fd, f.control_fd]) == errno.EINVAL
    c.call(w.FALLOCATE, fd=fd, mode=0, offset=0, length=1 << 20)
    assert os.stat(tree / "file.txt").st_size == 1 << 20
    assert errno_of(c.call, w.FALLOCATE, fd=rfd, mode=0, offset=0, length=1) == errno.EBADF


def test_values_no_host_call_can_take_are_errnos(tree, connect, caplog):
    """NUL inside a C string, u32 flags with the sign bit set, u64 offsets
    beyond off_t: the errno gVisor's fsgofer gets from the host, no log."""
    c = connect(tree)
    root = c.root.control_fd
    _, [f] = c.walk(root, [b"file.txt"])
    fd, h = c.open_at(f.control_fd, os.O_RDWR)
    os.close(h)
    xf = f.control_fd
    cases = [
        (w.SYMLINK_AT, dict(dir_fd=root, uid=NO_ID, gid=NO_ID, name=b"s", target=b"a\0b"),
         errno.EINVAL),
        (w.FGETXATTR, dict(fd=xf, buf_size=0, name=b"user.a\0b"), errno.EINVAL),
        (w.FSETXATTR, dict(fd=xf, flags=0, name=b"user.a\0b", value=b"v"), errno.EINVAL),
        (w.FREMOVEXATTR, dict(fd=xf, name=b"user.a\0b"), errno.EINVAL),
        (w.FSETXATTR, dict(fd=xf, flags=1 << 31, name=b"user.a", value=b"v"), errno.EINVAL),
        (w.UNLINK_AT, dict(dir_fd=root, flags=1 << 31, name=b"file.txt"), errno.EINVAL),
        (w.UNLINK_AT, dict(dir_fd=root, flags=0xFFFFFFFF, name=b"file.txt"), errno.EINVAL),
        (w.FALLOCATE, dict(fd=fd, mode=0, offset=1 << 63, length=1), errno.EINVAL),
        (w.FALLOCATE, dict(fd=fd, mode=0, offset=0, length=2**64 - 1), errno.EINVAL),
        (w.FALLOCATE, dict(fd=fd, mode=1 << 63, offset=0, length=1), errno.EINVAL),
        # A 32-bit mode goes to the kernel, which knows no bit 31.
        (w.FALLOCATE, dict(fd=fd, mode=1 << 31, offset=0, length=1), errno.EOPNOTSUPP),
        (w.PREAD, dict(fd=fd, offset=1 << 63, count=1), errno.EINVAL),
        (w.PWRITE, dict(fd=fd, offset=2**64 - 1, data=b"x"), errno.EINVAL),
    ]
    with caplog.at_level(logging.WARNING, logger="gofer"):
        got = [errno_of(c.call, mid, **fields) for mid, fields, _ in cases]
    assert got == [e for *_, e in cases]
    assert caplog.records == []
    assert sorted(os.listdir(tree)) == ["file.txt", "link", "sub"]
    assert (tree / "file.txt").read_bytes() == b"hello, gofer\n"


def test_readonly_refuses_every_mutation(tree, connect):
    c = connect(tree, readonly=True)
    root = c.root.control_fd
    _, [f] = c.walk(root, [b"file.txt"])
    before = snapshot(tree)
    attempts = [
        (w.SETSTAT, dict(fd=f.control_fd, mask=w.STATX_MODE, mode=0o777, uid=0, gid=0, size=0,
                         atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=0)),
        (w.OPEN_CREATE_AT, dict(dir_fd=root, uid=0, gid=0, mode=0o644, flags=0, name=b"n")),
        (w.MKDIR_AT, dict(dir_fd=root, uid=0, gid=0, mode=0o755, name=b"n")),
        (w.MKNOD_AT, dict(dir_fd=root, uid=0, gid=0, mode=0o100644, minor=0, major=0, name=b"n")),
        (w.SYMLINK_AT, dict(dir_fd=root, uid=0, gid=0, name=b"n", target=b"t")),
        (w.LINK_AT, dict(dir_fd=root, target=f.control_fd, name=b"n")),
        (w.UNLINK_AT, dict(dir_fd=root, flags=0, name=b"file.txt")),
        (w.RENAME_AT, dict(old_dir=root, new_dir=root, old_name=b"file.txt", new_name=b"n")),
        (w.RENAME_AT2, dict(old_dir=root, new_dir=root, old_name=b"file.txt", new_name=b"n", flags=1)),
        (w.FSETXATTR, dict(fd=f.control_fd, flags=0, name=b"user.x", value=b"v")),
        (w.FREMOVEXATTR, dict(fd=f.control_fd, name=b"user.x")),
        (w.BIND_AT, dict(dir_fd=root, uid=0, gid=0, mode=0o755, sock_type=1, name=b"s")),
    ]
    for mid, fields in attempts:
        assert errno_of(c.call, mid, **fields) == errno.EROFS, w.MID_NAMES[mid]
    rfd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    for mid, fields in [(w.PWRITE, dict(offset=0, fd=rfd, data=b"x")),
                        (w.FALLOCATE, dict(fd=rfd, mode=0, offset=0, length=10))]:
        assert errno_of(c.call, mid, **fields) == errno.EROFS
    assert snapshot(tree) == before


def snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, data)
    return out


def test_host_sockets(tree, tmp_path, connect):
    # A host socket inside the mount, reached with the "open" policy.
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tree / "host.sock"))
    srv.listen(1)
    closed = connect(tree)
    _, [s] = closed.walk(closed.root.control_fd, [b"host.sock"])
    assert errno_of(closed.call, w.CONNECT, fd=s.control_fd, sock_type=1) == errno.EPERM
    assert errno_of(closed.call, w.CONNECT, fd=closed.root.control_fd, sock_type=1) == errno.ENOTSOCK

    from gofer.fsgofer import HostConnection
    assert HostConnection(tree, host_uds="all").uds_open
    with pytest.raises(ValueError):
        HostConnection(tree, host_uds="bogus")


def test_bind_listen_accept(tree, service):
    from gofer._server import ConnectionOpts
    from gofer.client import Client
    from gofer.fsgofer import HostConnection
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), HostConnection(tree, host_uds="all"), ConnectionOpts())
    c = Client(ours)
    root = c.root.control_fd
    r, fds = c.call_fds(w.BIND_AT, dir_fd=root, uid=NO_ID, gid=NO_ID, mode=0o755, sock_type=1,
                        name=b"bound")
    assert len(fds) == 1 and stat.S_ISSOCK(os.stat(tree / "bound").st_mode)
    os.close(fds[0])
    c.call(w.LISTEN, fd=r["bound_socket_fd"], backlog=4)
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(str(tree / "bound"))
    resp, fds = c.call_fds(w.ACCEPT, fd=r["bound_socket_fd"])
    assert resp == dict(peer_addr=b"") and len(fds) == 1
    conn = socket.socket(fileno=fds[0])
    peer.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    conn.close()
    # Connect back to it through its ControlFD.
    _, fds = c.call_fds(w.CONNECT, fd=r["child"].control_fd, sock_type=1)
    assert len(fds) == 1
    os.close(fds[0])
    assert errno_of(c.call, w.LISTEN, fd=root, backlog=1) == errno.EINVAL
    assert errno_of(c.call, w.CONNECT, fd=r["child"].control_fd, sock_type=3) == errno.ENXIO
    peer.close()
    c.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching credentials needs root")
def test_connect_with_creds_checks_the_callers_permissions(tree, service):
    from gofer._server import ConnectionOpts
    from gofer.client import Client
    from gofer.fsgofer import HostConnection
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tree / "private.sock"))
    srv.listen(4)
    os.chmod(tree / "private.sock", 0o700)           # root only
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), HostConnection(tree, host_uds="open"), ConnectionOpts())
    c = Client(ours)
    _, [s] = c.walk(c.root.control_fd, [b"private.sock"])
    assert errno_of(c.call, w.CONNECT_WITH_CREDS, fd=s.control_fd, sock_type=1, uid=1000,
                    gid=1000) == errno.EACCES
    _, fds = c.call_fds(w.CONNECT_WITH_CREDS, fd=s.control_fd, sock_type=1, uid=0, gid=0)
    assert len(fds) == 1
    os.close(fds[0])
    # The gofer's own identity is back: every thread is still root.
    assert (os.geteuid(), os.getegid()) == (0, 0)
    c.close()
    srv.close()


def test_mount_point_fd_is_donated_under_directfs(tree, service):
    from gofer._server import ConnectionOpts
    from gofer.client import Client
    from gofer.fsgofer import HostConnection
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), HostConnection(tree, donate_mount_fd=True), ConnectionOpts())
    c = Client(ours)
    assert c.mount_fd is not None
    assert os.fstat(c.mount_fd).st_ino == os.stat(tree).st_ino
    assert sorted(os.listdir(c.mount_fd)) == ["file.txt", "link", "sub"]
    c.close()


def test_per_connection_fd_limit(tree, connect):
    c = connect(tree, max_fds=5)                 # the root is one
    _, inodes = c.walk(c.root.control_fd, [b"sub", b"inner.bin"])
    fd, h = c.open_at(inodes[1].control_fd, os.O_RDONLY)
    os.close(h)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    assert errno_of(c.walk, c.root.control_fd, [b"sub"]) == errno.EMFILE
    assert errno_of(c.open_at, f.control_fd, os.O_RDONLY) == errno.EMFILE
    c.close_fds(fd)
    assert c.walk(c.root.control_fd, [b"sub"])[0] == w.WALK_SUCCESS


def test_host_fifo_policy_never_blocks_the_server(tree, service):
    from gofer._server import ConnectionOpts
    from gofer.client import Client
    from gofer.fsgofer import HostConnection
    os.mkfifo(tree / "fifo")
    for policy, expect in (("none", errno.EPERM), ("open", None)):
        ours, theirs = socket.socketpair()
        service.start(theirs.detach(), HostConnection(tree, host_fifo=policy), ConnectionOpts())
        c = Client(ours)
        _, [f] = c.walk(c.root.control_fd, [b"fifo"])
        if expect:
            assert errno_of(c.open_at, f.control_fd, os.O_RDONLY) == expect
        else:
            # No writer: the open still returns at once, with an FD to wait on.
            fd, host_fd = c.open_at(f.control_fd, os.O_RDONLY)
            assert host_fd is not None
            os.close(host_fd)
            c.close_fds(fd)                  # no reader left: a writer gets ENXIO
            assert errno_of(c.open_at, f.control_fd, os.O_WRONLY) == errno.ENXIO
        c.close()
