"""The server core and the first host backend, driven by the Python client
over the socket communicator."""
import errno
import fcntl
import logging
import os
import socket
import struct
import termios
import time

import pytest

from gofer import _wire as w
from gofer.client import Client
from conftest import open_fds


def errno_of(fn, *args, **kw):
    with pytest.raises(OSError) as e:
        fn(*args, **kw)
    return e.value.errno


def same_file(st, host):
    assert st.mask & w.STATX_TYPE
    assert (st.mode, st.ino, st.size, st.nlink, st.uid, st.gid) == (
        host.st_mode, host.st_ino, host.st_size, host.st_nlink, host.st_uid, host.st_gid)
    assert (st.dev_major, st.dev_minor) == (os.major(host.st_dev), os.minor(host.st_dev))
    assert st.mtime_sec * 10**9 + st.mtime_nsec == host.st_mtime_ns


def test_mount_and_fstat_root(tree, connect):
    c = connect(tree)
    same_file(c.root.stat, os.stat(tree))
    same_file(c.fstat(c.root.control_fd), os.stat(tree))
    assert c.max_message_size == 2093056
    assert {w.MOUNT, w.FSTAT, w.WALK, w.OPEN_AT, w.PREAD} <= c.supported
    assert c.mount_fd is None


def test_walk(tree, connect):
    c = connect(tree)
    status, inodes = c.walk(c.root.control_fd, [b"sub", b"inner.bin"])
    assert status == w.WALK_SUCCESS and len(inodes) == 2
    same_file(inodes[1].stat, os.stat(tree / "sub" / "inner.bin"))
    assert len({c.root.control_fd, inodes[0].control_fd, inodes[1].control_fd}) == 3
    # A missing component stops the walk with what was found so far.
    status, inodes = c.walk(c.root.control_fd, [b"sub", b"nope", b"x"])
    assert status == w.WALK_COMPONENT_DOES_NOT_EXIST and len(inodes) == 1
    # A symlink mid-path stops the walk and is returned; at the end it is success.
    status, inodes = c.walk(c.root.control_fd, [b"link", b"inner.bin"])
    assert status == w.WALK_COMPONENT_SYMLINK and len(inodes) == 1
    assert inodes[0].stat.mode & 0o170000 == 0o120000
    status, inodes = c.walk(c.root.control_fd, [b"link"])
    assert status == w.WALK_SUCCESS and len(inodes) == 1
    assert c.walk(c.root.control_fd, []) == (w.WALK_SUCCESS, [])


@pytest.mark.parametrize("name", [b"", b".", b"..", b"a/b", b"/", b"a\x00b"])
def test_unsafe_names_fail_the_whole_walk(tree, connect, name):
    c = connect(tree)
    before = c.call(w.FSTAT, fd=c.root.control_fd)
    assert errno_of(c.walk, c.root.control_fd, [b"sub", name]) == errno.EINVAL
    # The FDs made before the bad name were destroyed: the next FDID is used,
    # the ones in between are unknown.
    _, [ino] = c.walk(c.root.control_fd, [b"sub"])
    assert errno_of(c.fstat, ino.control_fd - 1) == errno.EBADF
    assert before


def test_walk_needs_a_directory(tree, connect):
    c = connect(tree)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    assert errno_of(c.walk, f.control_fd, [b"x"]) == errno.ENOTDIR


def test_walk_stat(tree, connect):
    c = connect(tree)
    stats = c.walk_stat(c.root.control_fd, [b"", b"sub", b"inner.bin"])
    assert len(stats) == 3
    same_file(stats[0], os.stat(tree))
    same_file(stats[2], os.stat(tree / "sub" / "inner.bin"))
    assert len(c.walk_stat(c.root.control_fd, [b"sub", b"missing", b"x"])) == 1
    assert len(c.walk_stat(c.root.control_fd, [b"link", b"inner.bin"])) == 1
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    same_file(c.walk_stat(f.control_fd, [b""])[0], os.stat(tree / "file.txt"))
    assert errno_of(c.walk_stat, f.control_fd, [b"x"]) == errno.ENOTDIR
    assert errno_of(c.walk_stat, f.control_fd, [b"..", b"x"]) == errno.ENOTDIR
    assert c.walk_stat(f.control_fd, []) == []
    assert errno_of(c.walk_stat, c.root.control_fd, [b".."]) == errno.EINVAL
    # As gVisor, every name is checked before the walk.
    assert errno_of(c.walk_stat, c.root.control_fd, [b"missing", b".."]) == errno.EINVAL
    assert errno_of(c.walk_stat, c.root.control_fd, [b"link", b""]) == errno.EINVAL


def test_walk_stat_from_a_removed_directory_does_not_reach_its_successor(tmp_path, connect):
    # The walk goes from the FD's directory, never by its path: a directory
    # made since under the same name is another one.
    (tmp_path / "d").mkdir()
    c = connect(tmp_path)
    _, [d] = c.walk(c.root.control_fd, [b"d"])
    c.call(w.UNLINK_AT, dir_fd=c.root.control_fd, flags=0x200, name=b"d")   # AT_REMOVEDIR
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").touch()
    assert c.walk_stat(d.control_fd, [b"x"]) == []
    assert len(c.walk_stat(d.control_fd, [b"", b"x"])) == 1


def test_open_read_write(tree, connect):
    c = connect(tree)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    fd, host_fd = c.open_at(f.control_fd, os.O_RDWR)
    try:
        # The donated host FD is the same file, non-blocking as gVisor donates it.
        assert os.pread(host_fd, 5, 0) == b"hello"
        assert fcntl.fcntl(host_fd, fcntl.F_GETFL) & os.O_NONBLOCK
    finally:
        os.close(host_fd)
    assert c.pread(fd, 0, 100) == b"hello, gofer\n"
    assert c.pread(fd, 7, 5) == b"gofer"
    assert c.pread(fd, 1000, 5) == b""
    assert c.pwrite(fd, 7, b"GOFER") == 5
    assert (tree / "file.txt").read_bytes() == b"hello, GOFER\n"
    same_file(c.fstat(fd), os.stat(tree / "file.txt"))
    big = (tree / "sub" / "inner.bin").read_bytes()
    _, [_, g] = c.walk(c.root.control_fd, [b"sub", b"inner.bin"])
    gfd, h = c.open_at(g.control_fd, os.O_RDONLY)
    os.close(h)
    assert c.pread(gfd, 0, len(big) + 10) == big
    assert errno_of(c.pwrite, gfd, 0, b"x") == errno.EBADF


def test_open_rules(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    assert errno_of(c.open_at, root, os.O_WRONLY) == errno.EISDIR
    assert errno_of(c.open_at, root, os.O_RDONLY | os.O_TRUNC) == errno.EISDIR
    _, [l] = c.walk(root, [b"link"])
    assert errno_of(c.open_at, l.control_fd, os.O_RDONLY) == errno.EINVAL
    _, [f] = c.walk(root, [b"file.txt"])
    wfd, h = c.open_at(f.control_fd, os.O_WRONLY)
    os.close(h)
    assert errno_of(c.pread, wfd, 0, 1) == errno.EBADF
    # Flags beyond O_ACCMODE|O_TRUNC are dropped, not honoured.
    fd, h = c.open_at(f.control_fd, os.O_RDONLY | os.O_APPEND | os.O_CREAT)
    os.close(h)
    assert c.pread(fd, 0, 5) == b"hello"


def test_readonly(tree, connect):
    c = connect(tree, readonly=True)
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
        assert errno_of(c.open_at, f.control_fd, flags) == errno.EROFS
    fd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    assert c.pread(fd, 0, 5) == b"hello"
    assert errno_of(c.pwrite, fd, 0, b"x") == errno.EROFS
    assert (tree / "file.txt").read_bytes() == b"hello, gofer\n"


def test_getdents64(tree, connect):
    c = connect(tree)
    for i in range(300):
        (tree / ("entry-%03d-%s" % (i, "x" * (i % 50)))).touch()
    fd, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    names, count = [], -4096
    while True:
        batch = c.getdents64(fd, count)
        if not batch:
            break
        names += [d.name for d in batch]
        count = 4096
    # Never "." or "..", as gVisor's fsgofer.
    assert sorted(names) == sorted(os.fsencode(n) for n in os.listdir(tree))
    # A negative count starts again from the top.
    again = c.getdents64(fd, -65536)
    assert {d.name for d in again} <= set(names) and len(again) > 1
    d = next(e for e in again if e.name == b"file.txt")
    st = os.lstat(tree / "file.txt")
    assert (d.ino, d.dev_major, d.dev_minor) == (st.st_ino, os.major(st.st_dev), os.minor(st.st_dev))
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    ffd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    assert errno_of(c.getdents64, ffd, 100) == errno.ENOTDIR


def test_a_removed_directory_lists_nothing_but_einval(tmp_path, connect):
    # As gVisor: an FD of a directory the client removed answers EINVAL,
    # not what the host still lets its FD read.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").touch()
    c = connect(tmp_path)
    _, [d] = c.walk(c.root.control_fd, [b"d"])
    fd, _ = c.open_at(d.control_fd, os.O_RDONLY)
    assert [e.name for e in c.getdents64(fd, -4096)] == [b"f"]
    os.unlink(tmp_path / "d" / "f")
    c.call(w.UNLINK_AT, dir_fd=c.root.control_fd, flags=0x200, name=b"d")   # AT_REMOVEDIR
    assert errno_of(c.getdents64, fd, -4096) == errno.EINVAL


def test_fd_kinds_and_close(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    _, [f] = c.walk(root, [b"file.txt"])
    fd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    assert errno_of(c.pread, f.control_fd, 0, 1) == errno.EINVAL     # a ControlFD
    assert errno_of(c.walk, fd, [b"x"]) == errno.EINVAL               # an OpenFD
    assert errno_of(c.fstat, 12345) == errno.EBADF
    # Closing the ControlFD keeps its OpenFD working; closing is idempotent.
    c.close_fds(f.control_fd, 999)
    assert c.pread(fd, 0, 5) == b"hello"
    c.close_fds(fd)
    assert errno_of(c.pread, fd, 0, 5) == errno.EBADF
    assert errno_of(c.fstat, f.control_fd) == errno.EBADF


def test_limits(tree, connect):
    c = connect(tree)
    fd, h = c.open_at(c.walk(c.root.control_fd, [b"file.txt"])[1][0].control_fd, os.O_RDONLY)
    os.close(h)
    assert errno_of(c.pread, fd, 0, c.max_message_size) == errno.ENOBUFS
    # A walk whose answer could not fit is refused up front.
    assert errno_of(c.walk, c.root.control_fd, [b"a"] * 14000) == errno.EIO


def test_a_response_that_would_not_fit_is_eio(tmp_path, connect, caplog):
    # A short name's entry is longer on the wire than in the host's dirent
    # buffer, so Getdents64 of max_message_size bytes can overrun the reply.
    for i in range(400):
        (tmp_path / ("%x" % i)).touch()
    c = connect(tmp_path, max_message_size=4096)
    fd, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    with caplog.at_level(logging.WARNING, logger="gofer"):
        assert errno_of(c.getdents64, fd, 4096) == errno.EIO     # gVisor's answer
    assert caplog.records == []
    assert len(c.getdents64(fd, -1024)) > 0


def raw_errno(c, mid, payload=b"", header=None):
    rmid, body, fds = c.raw(mid, payload, header=header)
    assert not fds
    assert rmid == 0 and len(body) == 4, (rmid, body)
    return struct.unpack("<I", body)[0]


def test_malformed_requests_get_errors_and_the_stream_stays_in_step(tree, connect):
    c = connect(tree)
    root = c.root.control_fd
    assert raw_errno(c, w.FSTAT, b"\x01\x00") == errno.EIO                       # short
    assert raw_errno(c, w.WALK, struct.pack("<QH", root, 3) + b"\x01\x00a") == errno.EIO
    assert raw_errno(c, w.CLOSE, struct.pack("<H", 5)) == errno.EIO
    assert raw_errno(c, w.PWRITE, struct.pack("<QQI", 0, 1, 100) + b"x") == errno.EIO
    assert raw_errno(c, 0) == errno.EOPNOTSUPP                                   # Error MID
    assert raw_errno(c, 34) == errno.EOPNOTSUPP                                  # unknown
    assert raw_errno(c, 0xffff) == errno.EOPNOTSUPP
    assert raw_errno(c, w.FLUSH, b"\0" * 8) == errno.EOPNOTSUPP                  # unsupported
    assert raw_errno(c, w.MKDIR_AT, b"\0" * 10) == errno.EIO
    # Oversized: the payload is consumed and refused, and the next request works.
    big = b"\x00" * (c.max_message_size + 1)
    assert raw_errno(c, w.FSTAT, big) == errno.EIO
    same_file(c.fstat(root), os.stat(tree))


def test_request_before_mount_is_refused(tree, service):
    from gofer.fsgofer import HostConnection
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), HostConnection(tree))
    ours.sendall(struct.pack("<IHHQ", 8, w.FSTAT, 0, 1))
    plen, mid, _ = struct.unpack("<IHH", ours.recv(8, socket.MSG_WAITALL))
    assert (mid, plen) == (0, 4)
    assert struct.unpack("<I", ours.recv(4, socket.MSG_WAITALL))[0] == errno.EINVAL
    ours.close()


def test_a_whole_response_fits_in_the_send_buffer(tmp_path, service):
    """A largest PRead answer is queued in one go, not in rounds of waking
    the client to drain the default ~200 KiB socket buffer."""
    from gofer.fsgofer import HostConnection
    from gofer.lisafs import ConnectionOpts
    max_msg = 1 << 20
    (tmp_path / "big").write_bytes(os.urandom(max_msg))
    ours, theirs = socket.socketpair()
    server_end = theirs.dup()          # the same socket: its options are the server's
    service.start(theirs.detach(), HostConnection(str(tmp_path)),
                  ConnectionOpts(max_message_size=max_msg))
    c = Client(ours)
    _, [big] = c.walk(c.root.control_fd, [b"big"])
    fd, _ = c.open_at(big.control_fd, os.O_RDONLY)
    count = max_msg - 8                # the most a PRead may ask for
    c.sock.sendall(struct.pack("<IHH", 24, w.PREAD, 0) + struct.pack("<QQII", 0, fd, count, 0))
    response = 8 + 8 + count
    wmem_max = int(open("/proc/sys/net/core/wmem_max").read())
    want = min(response, wmem_max)
    # The kernel doubles the value for its bookkeeping.
    assert server_end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 2 * want
    if wmem_max >= response:
        queued = lambda: fcntl.ioctl(ours.fileno(), termios.FIONREAD, b"\0" * 4)
        assert wait_until(lambda: struct.unpack("<i", queued())[0] == response), \
            "queued: %d of %d" % (struct.unpack("<i", queued())[0], response)
    plen, mid, _ = struct.unpack("<IHH", ours.recv(8, socket.MSG_WAITALL))
    body = ours.recv(plen, socket.MSG_WAITALL)
    assert (mid, plen) == (w.PREAD, 8 + count)
    assert body[8:] == (tmp_path / "big").read_bytes()[:count]
    server_end.close()
    c.close()


def test_fds_sent_by_a_client_are_closed(tree, connect):
    c = connect(tree)
    before = open_fds()
    r, wr = os.pipe()
    payload = struct.pack("<Q", c.root.control_fd)
    c.sock.sendmsg([struct.pack("<IHH", len(payload), w.FSTAT, 0) + payload],
                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("<ii", r, wr))])
    os.close(r)
    os.close(wr)
    plen, mid, _ = struct.unpack("<IHH", c.sock.recv(8, socket.MSG_WAITALL))
    c.sock.recv(plen, socket.MSG_WAITALL)
    assert mid == w.FSTAT
    assert open_fds() == before


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_teardown_releases_everything(tree, service, connect):
    before = open_fds()
    c = connect(tree)
    _, inodes = c.walk(c.root.control_fd, [b"sub", b"inner.bin"])
    fd, h = c.open_at(inodes[1].control_fd, os.O_RDONLY)
    os.close(h)
    dfd, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    assert len(open_fds()) > len(before)
    c.sock.close()
    assert wait_until(lambda: service.active() == 0)
    assert open_fds() == before


def test_a_broken_connection_does_not_disturb_others(tree, service, connect):
    good = connect(tree)
    bad = connect(tree)
    bad.sock.sendall(struct.pack("<IHH", 100, w.FSTAT, 0) + b"\x00" * 10)   # then hang up
    bad.sock.close()
    same_file(good.fstat(good.root.control_fd), os.stat(tree))
    assert wait_until(lambda: service.active() == 1)


def test_connections_share_one_tree(tree, connect):
    a, b = connect(tree), connect(tree)
    _, [x] = a.walk(a.root.control_fd, [b"sub"])
    _, [y] = b.walk(b.root.control_fd, [b"sub"])
    assert x.stat.ino == y.stat.ino
    assert x.control_fd == y.control_fd == 2          # FDIDs are per connection


def test_debug_logs_each_request(tree, connect, caplog):
    # --log-level debug: one line per request, as runsc's --debug logs each
    # RPC: the message, the FD it acts on, the errno answered, the time.
    caplog.set_level(logging.DEBUG, logger="gofer")
    c = connect(tree)
    root = c.root.control_fd
    _, [f] = c.walk(root, [b"file.txt"])
    fd, host_fd = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(host_fd)
    c.pread(fd, 0, 5)
    assert errno_of(c.fstat, 999) == errno.EBADF
    lines = [r.getMessage() for r in caplog.records if r.name == "gofer"]
    for start in ("Mount fd=None errno=0 (OK) ", "Walk fd=%d errno=0 (OK) " % root,
                  "PRead fd=%d errno=0 (OK) " % fd, "FStat fd=999 errno=9 (EBADF) "):
        assert [l for l in lines if l.startswith(start) and l.endswith(" ms")], (start, lines)


def test_no_request_log_above_debug(tree, connect, caplog):
    caplog.set_level(logging.INFO, logger="gofer")
    c = connect(tree)
    assert errno_of(c.fstat, 999) == errno.EBADF
    assert not [r for r in caplog.records if "fd=" in r.getMessage()]
