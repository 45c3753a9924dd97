"""gVisor's Go client against `gofer serve --seccomp`: every RPC the stock
backend serves, over the socket and over flipcall channels, with the filter
on. A syscall outside the allowlist would kill the gofer (start_server then
fails the test); the log mode would print a line, which we look for too.
"""

import errno
import os
import socket
import sys

import pytest

from .conftest import server_bugs
from .gofer_env import FILE_BYTES, STATX_MODE, STATX_SIZE, STATX_ATIME, STATX_MTIME, build_tree

AT_REMOVEDIR = 0x200
RENAME_EXCHANGE = 2


@pytest.mark.parametrize("flag", ["--seccomp=kill", "--seccomp=log"])
def test_go_client_under_seccomp(start_server, go_client, sock_dir, transport, flag):
    root = sock_dir / "root"
    root.mkdir()
    build_tree(root)
    sock = sock_dir / "g.sock"
    srv = start_server([sys.executable, "-m", "gofer", "serve", root, "--socket", sock,
                        "--host-uds", "all", flag], sock)
    gc = go_client(sock, channels=transport)
    top = gc.root_fd

    gc.call("fstat", fd=top)
    f = gc.call("walk", fd=top, name="file.bin")["inode"]["fd"]
    assert gc.call("walk_multiple", fd=top, names=["sub", "deeper", "leaf"])["status"] == 0
    assert len(gc.call("walk_stat", fd=top, names=["sub", "inner.txt"])["stats"]) == 2
    ofd = gc.call("open_at", fd=f, flags=os.O_RDONLY)["open_fd"]
    assert gc.call("pread", fd=ofd, count=1 << 20)["data"] == FILE_BYTES
    gc.call("statfs", fd=top)
    gc.call("read_link_at", fd=gc.call("walk", fd=top, name="link")["inode"]["fd"])

    d = gc.call("mkdir_at", fd=top, name="w", mode=0o755)["inode"]["fd"]
    r = gc.call("open_create_at", fd=d, name="n", flags=os.O_RDWR, mode=0o644)
    n, nfd = r["inode"]["fd"], r["open_fd"]
    assert gc.call("pwrite", fd=nfd, data=b"z" * (300 << 10))["count"] == 300 << 10
    assert gc.call("pread", fd=nfd, count=10, offset=5)["data"] == b"z" * 10
    gc.call("sync", fd=nfd)
    gc.call("allocate", fd=nfd, length=1 << 20)
    res = gc.call("setstat", fd=n, mask=STATX_MODE | STATX_SIZE | STATX_ATIME | STATX_MTIME,
                  mode=0o600, size=3, atime_sec=1, mtime_sec=2)
    assert res["failure_mask"] == 0
    assert (root / "w" / "n").read_bytes() == b"zzz"
    gc.call("mknod_at", fd=d, name="m", mode=0o100644)
    gc.call("symlink_at", fd=d, name="s", target="n")
    gc.call("link_at", fd=d, target=n, name="h")
    gc.call("rename_at", fd=d, old_name="h", new_dir=d, new_name="h2")
    gc.call("rename_at", fd=d, old_name="h2", new_dir=d, new_name="m", flags=RENAME_EXCHANGE)
    if gc.errno("set_xattr", fd=n, name="user.k", value=b"v") == 0:
        assert gc.call("get_xattr", fd=n, name="user.k")["value"] == b"v"
        assert "user.k" in gc.call("list_xattr", fd=n)["names"]
        gc.call("remove_xattr", fd=n, name="user.k")
    dfd = gc.call("open_at", fd=d, flags=os.O_RDONLY)["open_fd"]
    names = {e["name"] for e in gc.call("getdents64", fd=dfd)["dirents"]}
    assert {"n", "m", "h2", "s"} <= names

    b = gc.call("bind_at", fd=d, name="sock", sock_type=socket.SOCK_STREAM)
    gc.call("listen", fd=b["bound_fd"], backlog=4)
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(str(root / "w" / "sock"))
    peer.sendall(b"ping")
    assert gc.call("accept", fd=b["bound_fd"], recv=4)["recv"] == b"ping"
    peer.close()
    assert gc.call("connect", fd=b["inode"]["fd"])["host_fd"]
    gc.call("close_bound", fd=b["bound_fd"])

    assert gc.errno("walk", fd=top, name="nope") == errno.ENOENT
    for name in ("n", "m", "h2", "s", "sock"):
        gc.call("unlink_at", fd=d, name=name)
    gc.call("unlink_at", fd=top, name="w", flags=AT_REMOVEDIR)

    # Concurrent RPCs: more server threads (and, with channels, more windows).
    par = gc.call("parallel", goroutines=4, repeat=20, summary=True, requests=[
        {"op": "walk", "fd": top, "name": "sub", "autoclose": True},
        {"op": "pread", "fd": ofd, "count": 4096},
        {"op": "fstat", "fd": top},
    ])
    assert par["err_count"] == 0, par
    for fd in (ofd, nfd, dfd):
        gc.call("close", fd=fd)
    gc.close()

    assert srv.proc.poll() is None, srv.stderr()
    log = srv.stderr()
    assert "gofer: seccomp: syscall" not in log, log
    assert not server_bugs(log), log
