"""Validate the Go driver (gVisor's real LISAFS client) against gVisor's own fsgofer.

These tests pin down what the driver reports when the server is the reference
(bench/peers/refgofer), so the same checks can later be pointed at our gofer.
Each test runs over the socket only and again with flipcall channels.
"""

import errno
import os
import socket
import stat

import pytest

from .goclient import (GoError, WALK_COMPONENT_DOES_NOT_EXIST, WALK_COMPONENT_SYMLINK,
                      WALK_SUCCESS)

FILE_BYTES = bytes(range(256)) * 20 + b"tail"
STATX_SIZE = 0x200
AT_REMOVEDIR = 0x200
RENAME_NOREPLACE = 1


@pytest.fixture
def host_tree(sock_dir):
    # Under sock_dir so socket files created inside stay within sun_path limits.
    root = sock_dir / "root"
    root.mkdir()
    (root / "file.bin").write_bytes(FILE_BYTES)
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "link").symlink_to("file.bin")
    return root


@pytest.fixture
def serve_ref(refgofer, start_server, sock_dir, host_tree):
    """serve_ref(*flags) -> socket path of a refgofer serving host_tree."""
    def serve(*flags):
        sock = sock_dir / f"ref{len(os.listdir(sock_dir))}.sock"
        start_server([refgofer, "-root", host_tree, "-socket", sock, *flags], sock)
        return sock
    return serve


@pytest.fixture(params=[False, True], ids=["socket", "channels"])
def channels(request):
    return request.param


@pytest.fixture
def gc(serve_ref, go_client, channels):
    return go_client(serve_ref(), channels=channels)


def assert_matches_host(sx, st):
    """A lisafs Statx (driver JSON) describes the same file as an os.stat_result."""
    assert sx["mode"] == st.st_mode
    assert sx["ino"] == st.st_ino
    assert (sx["dev_major"], sx["dev_minor"]) == (os.major(st.st_dev), os.minor(st.st_dev))
    assert sx["nlink"] == st.st_nlink
    assert (sx["uid"], sx["gid"]) == (st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        assert sx["size"] == st.st_size
    assert sx["mtime_sec"] * 10**9 + sx["mtime_nsec"] == st.st_mtime_ns


def walk(gc, fd, name):
    return gc.call("walk", fd=fd, name=name)["inode"]


def read_dir(gc, dir_fd):
    """All dirents of a directory control FD, via OpenAt + Getdents64 until empty."""
    open_fd = gc.call("open_at", fd=dir_fd, flags=os.O_RDONLY)["open_fd"]
    out = []
    while batch := gc.call("getdents64", fd=open_fd, count=200)["dirents"]:
        out += batch
    gc.call("close", fd=open_fd)
    return out


# -- the checks the lead will repeat against our gofer ------------------------

def test_mount_root_matches_host(gc, host_tree, channels):
    assert_matches_host(gc.root["stat"], os.stat(host_tree))
    assert gc.mount["mount_fd"] is False  # refgofer donates only with -donate-mount-fd
    assert gc.mount["max_message_size"] > 0
    assert (gc.mount["channels"] > 0) == channels
    sup = set(gc.mount["supported"])
    assert {1, 2, 3, 5, 6, 7, 9, 12, 24, 33} <= sup and 20 not in sup  # fsgofer lacks Flush


def test_walk_and_fstat_match_host(gc, host_tree):
    ino = walk(gc, gc.root_fd, "file.bin")
    st = os.stat(host_tree / "file.bin")
    assert_matches_host(ino["stat"], st)
    assert_matches_host(gc.call("fstat", fd=ino["fd"])["stat"], st)
    assert_matches_host(gc.call("fstat", fd=gc.root_fd)["stat"], os.stat(host_tree))
    link = walk(gc, gc.root_fd, "link")  # Walk does not follow the final symlink
    assert_matches_host(link["stat"], os.lstat(host_tree / "link"))


def test_open_at_and_pread_exact_bytes(gc):
    fd = walk(gc, gc.root_fd, "file.bin")["fd"]
    r = gc.call("open_at", fd=fd, flags=os.O_RDONLY, read_host=len(FILE_BYTES) + 10)
    assert r["host_fd"] is True  # fsgofer donates regular files
    assert r["host_data"] == FILE_BYTES and r["host_stat"]["size"] == len(FILE_BYTES)
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDONLY
    ofd = r["open_fd"]
    assert gc.call("pread", fd=ofd, count=len(FILE_BYTES) + 100)["data"] == FILE_BYTES
    assert gc.call("pread", fd=ofd, offset=1000, count=7)["data"] == FILE_BYTES[1000:1007]
    end = gc.call("pread", fd=ofd, offset=len(FILE_BYTES), count=10)
    assert end["data"] == b"" and end.get("eof") is True


def test_getdents64_lists_host_names(gc, host_tree):
    ents = read_dir(gc, gc.root_fd)
    names = {e["name"] for e in ents} - {".", ".."}
    assert names == set(os.listdir(host_tree))
    for e in ents:
        if e["name"] in names:
            st = os.lstat(host_tree / e["name"])
            assert e["ino"] == st.st_ino
            assert e["type"] == {stat.S_IFREG: 8, stat.S_IFDIR: 4, stat.S_IFLNK: 10}[
                stat.S_IFMT(st.st_mode)]


# -- wider coverage of the driver's ops against the reference -----------------

def test_walk_variants(gc, host_tree):
    r = gc.call("walk_multiple", fd=gc.root_fd, names=["sub", "inner.txt"])
    assert r["status"] == WALK_SUCCESS and len(r["inodes"]) == 2
    assert_matches_host(r["inodes"][1]["stat"], os.stat(host_tree / "sub" / "inner.txt"))
    r = gc.call("walk_multiple", fd=gc.root_fd, names=["link", "x"])
    assert r["status"] == WALK_COMPONENT_SYMLINK and len(r["inodes"]) == 1
    r = gc.call("walk_multiple", fd=gc.root_fd, names=["sub", "nope", "x"])
    assert r["status"] == WALK_COMPONENT_DOES_NOT_EXIST and len(r["inodes"]) == 1
    stats = gc.call("walk_stat", fd=gc.root_fd, names=["", "sub", "inner.txt"])["stats"]
    assert [s["ino"] for s in stats] == [os.stat(p).st_ino for p in
                                         (host_tree, host_tree / "sub", host_tree / "sub/inner.txt")]
    with pytest.raises(GoError) as e:
        walk(gc, gc.root_fd, "nope")
    assert e.value.errno == errno.ENOENT
    assert gc.errno("walk", fd=gc.root_fd, name="..") != 0  # the server refuses ".."
    assert gc.errno("fstat", fd=12345) == errno.EBADF


def test_read_link_and_statfs(gc, host_tree):
    assert gc.call("read_link_at", fd=walk(gc, gc.root_fd, "link")["fd"])["target"] == "file.bin"
    sfs = gc.call("statfs", fd=gc.root_fd)["statfs"]
    vfs = os.statvfs(host_tree)
    assert (sfs["block_size"], sfs["blocks"], sfs["name_length"]) == (
        vfs.f_bsize, vfs.f_blocks, vfs.f_namemax)


def test_create_write_read_setstat(gc, host_tree):
    data = os.urandom(100_000)
    r = gc.call("open_create_at", fd=gc.root_fd, name="new", flags=os.O_RDWR, mode=0o640)
    assert r["host_fd"] is True and stat.S_IMODE(r["inode"]["stat"]["mode"]) == 0o640
    ofd, cfd = r["open_fd"], r["inode"]["fd"]
    assert gc.call("pwrite", fd=ofd, offset=0, data=data)["count"] == len(data)
    assert gc.call("pread", fd=ofd, count=len(data))["data"] == data
    gc.call("sync", fd=ofd)
    gc.call("sync", fds=[ofd])
    gc.call("flush", fd=ofd)  # unsupported by fsgofer: the client makes it a no-op
    assert (host_tree / "new").read_bytes() == data
    r = gc.call("setstat", fd=cfd, mask=STATX_SIZE, size=10)
    assert r["failure_mask"] == 0 and os.stat(host_tree / "new").st_size == 10
    gc.call("allocate", fd=ofd, offset=0, length=4096)
    assert os.stat(host_tree / "new").st_size == 4096
    gc.call("close_batch", fds=[ofd, cfd])
    assert gc.errno("fstat", fd=cfd) == errno.EBADF


def test_namespace_mutations(gc, host_tree):
    root = gc.root_fd
    d = gc.call("mkdir_at", fd=root, name="d", mode=0o755)["inode"]
    assert stat.S_ISDIR(d["stat"]["mode"]) and (host_tree / "d").is_dir()
    s = gc.call("symlink_at", fd=d["fd"], name="s", target="../file.bin")["inode"]
    assert stat.S_ISLNK(s["stat"]["mode"]) and os.readlink(host_tree / "d/s") == "../file.bin"
    n = gc.call("mknod_at", fd=d["fd"], name="n", mode=stat.S_IFREG | 0o600)["inode"]
    assert stat.S_ISREG(n["stat"]["mode"])
    f = walk(gc, root, "file.bin")
    try:
        h = gc.call("link_at", fd=d["fd"], target=f["fd"], name="h")["inode"]
        assert h["stat"]["ino"] == f["stat"]["ino"]
    except GoError as e:  # fsgofer links via /proc/self/fd: needs CAP_DAC_READ_SEARCH
        assert e.errno in (errno.ENOENT, errno.EPERM), e
    gc.call("rename_at", fd=d["fd"], old_name="n", new_dir=root, new_name="moved")
    assert (host_tree / "moved").exists() and not (host_tree / "d/n").exists()
    with pytest.raises(GoError) as e:
        gc.call("rename_at", fd=root, old_name="moved", new_dir=root, new_name="file.bin",
                flags=RENAME_NOREPLACE)
    assert e.value.errno == errno.EEXIST
    gc.call("unlink_at", fd=root, name="moved")
    assert gc.errno("unlink_at", fd=root, name="d", flags=AT_REMOVEDIR) == errno.ENOTEMPTY
    for name in os.listdir(host_tree / "d"):
        gc.call("unlink_at", fd=d["fd"], name=name)
    gc.call("unlink_at", fd=root, name="d", flags=AT_REMOVEDIR)
    assert sorted(os.listdir(host_tree)) == ["file.bin", "link", "sub"]


def test_xattrs(gc, host_tree):
    try:
        os.setxattr(host_tree / "file.bin", "user.probe", b"1")
        os.removexattr(host_tree / "file.bin", "user.probe")
    except OSError as e:
        pytest.skip(f"host filesystem has no user xattrs: {e}")
    fd = walk(gc, gc.root_fd, "file.bin")["fd"]
    gc.call("set_xattr", fd=fd, name="user.k", value=b"\x00v\xff")
    assert os.getxattr(host_tree / "file.bin", "user.k") == b"\x00v\xff"
    assert gc.call("get_xattr", fd=fd, name="user.k")["value"] == b"\x00v\xff"
    assert "user.k" in gc.call("list_xattr", fd=fd)["names"]
    gc.call("remove_xattr", fd=fd, name="user.k")
    assert gc.errno("get_xattr", fd=fd, name="user.k") == errno.ENODATA


def test_parallel_requests(gc):
    fd = walk(gc, gc.root_fd, "file.bin")["fd"]
    reqs = [{"op": "fstat", "fd": fd}, {"op": "walk_stat", "fd": gc.root_fd, "names": ["sub"]}]
    r = gc.call("parallel", goroutines=4, repeat=50, requests=reqs, summary=True)
    assert (r["ok_count"], r["err_count"]) == (400, 0)
    r = gc.call("parallel", goroutines=2, repeat=1, requests=[{"op": "fstat", "fd": 999}])
    assert [x["errno"] for g in r["results"] for x in g] == [errno.EBADF] * 2


def test_raw_messages(gc):
    fstat_root = gc.root_fd.to_bytes(8, "little")
    assert len(gc.call("raw", mid=3, payload=fstat_root)["payload"]) == 144  # a Statx
    assert gc.errno("raw", mid=3, payload=b"\x01") == errno.EIO  # short StatReq
    assert gc.errno("raw", mid=20, payload=fstat_root) == errno.EOPNOTSUPP  # not listed
    assert gc.call("fstat", fd=gc.root_fd)["ok"]  # the connection survived


def test_readonly(serve_ref, go_client, channels, host_tree):
    gc = go_client(serve_ref("-readonly"), channels=channels)
    assert gc.errno("mkdir_at", fd=gc.root_fd, name="d", mode=0o755) == errno.EROFS
    fd = walk(gc, gc.root_fd, "file.bin")["fd"]
    assert gc.errno("open_at", fd=fd, flags=os.O_RDWR) == errno.EROFS
    assert gc.call("open_at", fd=fd, flags=os.O_RDONLY, read_host=4)["host_data"] == FILE_BYTES[:4]


def test_inherited_fd_and_donated_mount_fd(serve_ref, go_client, lisafs_driver):
    sock = serve_ref("-donate-mount-fd")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(sock))
        gc = go_client(fd=s.fileno())
    assert gc.mount["mount_fd"] is True
    assert gc.call("fstat", fd=gc.root_fd)["ok"]


def test_unix_sockets(serve_ref, go_client, channels, host_tree):
    gc = go_client(serve_ref("-host-uds", "all"), channels=channels)
    # BindAt: the server creates the socket; we connect from the host side.
    r = gc.call("bind_at", fd=gc.root_fd, name="b.sock", sock_type=socket.SOCK_STREAM, mode=0o777)
    assert stat.S_ISSOCK(r["inode"]["stat"]["mode"]) and r["notification_fd"] is True
    gc.call("listen", fd=r["bound_fd"], backlog=4)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(host_tree / "b.sock"))
        c.sendall(b"ping")
        a = gc.call("accept", fd=r["bound_fd"], send=b"pong", recv=4)
        assert a["host_fd"] is True and a["recv"] == b"ping" and c.recv(4) == b"pong"
    gc.call("close_bound", fd=r["bound_fd"])
    # Connect: a host listener, reached through the server.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
        ls.bind(str(host_tree / "h.sock"))
        ls.listen(1)
        fd = walk(gc, gc.root_fd, "h.sock")["fd"]
        r = gc.call("connect", fd=fd, sock_type=socket.SOCK_STREAM, send=b"hi")
        assert r["host_fd"] is True and r["sent"] == 2
        conn, _ = ls.accept()
        with conn:
            assert conn.recv(2) == b"hi"
