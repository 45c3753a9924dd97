"""The stock backend's GIL-free path (issue 13): FStat, Walk, WalkStat,
OpenAt, PRead, PWrite, FSync, Getdents64, MkdirAt, OpenCreateAt, UnlinkAt,
RenameAt and Close on a host FD are served from
request to response without the GIL, so a thread that holds the GIL (a Python
extension, the logging of another connection) does not stop them, and
channel threads serve in parallel.

The gofer runs in this process; the client runs in a child process, so that
while this test holds the GIL the only thing that can answer the client is
the gofer's GIL-free path.
"""
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import gofer_memfs
import pytest

from gofer import _wire as w
from gofer._server import Connection, ConnectionOpts, Server
from gofer.client import Client
from gofer.fsgofer import HostConnection

HOLD = 1.0            # seconds this test keeps the GIL
CLIENT = textwrap.dedent("""
    import json, os, socket, struct, sys, threading, time
    from gofer import _wire as w
    from gofer.client import Client

    c = Client(socket.socket(fileno=int(sys.argv[1])))
    assert c.start_channels(2) == 2
    _, walked = c.walk(c.root.control_fd, [b"file.txt"])
    ofd = c.open_at(walked[0].control_fd, os.O_RDWR)[0]
    channels = list(c._channels)
    fstat = struct.pack("<Q", ofd)
    pread = struct.pack("<QQI", 0, ofd, 4096)
    pwrite = struct.pack("<QQI", 0, ofd, 5) + b"hello"
    fsync = struct.pack("<HQ", 1, ofd)
    walkstat = struct.pack("<QHH", c.root.control_fd, 1, 8) + b"file.txt"
    walk = struct.pack("<QHH", c.root.control_fd, 2, 3) + b"sub" + struct.pack("<H", 9) \
        + b"inner.bin"
    done, opened = {}, {}

    def sized(name):
        return struct.pack("<H", len(name)) + name

    def make_rename_remove(call, name):
        # A directory made, a file created in it and removed, the directory
        # renamed and removed, and their FDs closed.
        root = c.root.control_fd
        rmid, resp, _ = call(w.MKDIR_AT, struct.pack("<QIIH6x", root, w.NO_UID, w.NO_GID, 0o755)
                             + sized(name))
        assert rmid == w.MKDIR_AT, (rmid, resp)
        made = struct.unpack_from("<Q", resp)[0]
        rmid, resp, fds = call(w.OPEN_CREATE_AT, struct.pack("<QIIH6xI", made, w.NO_UID,
                                                              w.NO_GID, 0o644, os.O_WRONLY)
                               + sized(b"f"))
        assert rmid == w.OPEN_CREATE_AT and len(fds) == 1, (rmid, resp)
        os.close(fds[0])
        rmid, _, _ = call(w.CLOSE, struct.pack("<HQQ", 2, *struct.unpack_from("<Q144xQ", resp)))
        assert rmid == w.CLOSE
        rmid, resp, _ = call(w.UNLINK_AT, struct.pack("<QI", made, 0) + sized(b"f"))
        assert rmid == w.UNLINK_AT, (rmid, resp)
        rmid, resp, _ = call(w.RENAME_AT, struct.pack("<QQ", root, root) + sized(name)
                             + sized(name + b"2"))
        assert rmid == w.RENAME_AT, (rmid, resp)
        rmid, resp, _ = call(w.UNLINK_AT, struct.pack("<QI", root, 0x200) + sized(name + b"2"))
        assert rmid == w.UNLINK_AT, (rmid, resp)
        rmid, _, _ = call(w.CLOSE, struct.pack("<HQ", 1, made))
        assert rmid == w.CLOSE

    def walk_open_and_close(call):
        # Walk to sub/inner.bin, open what the walk made, close all three.
        rmid, resp, _ = call(w.WALK, walk)
        assert rmid == w.WALK and resp[:3] == b"\\x00\\x02\\x00", (rmid, resp[:3])
        sub, inner = struct.unpack_from("<Q", resp, 3)[0], struct.unpack_from("<Q", resp, 155)[0]
        rmid, resp, fds = call(w.OPEN_AT, struct.pack("<QI", inner, os.O_RDONLY))
        assert rmid == w.OPEN_AT and len(fds) == 1, (rmid, resp, fds)
        assert os.pread(fds[0], 4, 1) == bytes(range(1, 5))
        os.close(fds[0])
        rmid, _, _ = call(w.CLOSE, struct.pack("<HQQQ", 3, struct.unpack("<Q", resp)[0],
                                                inner, sub))
        assert rmid == w.CLOSE

    def run(name, call):
        stamps = done[name] = []
        # An FD made without the GIL waits for the next GIL request to be
        # adopted (at most 128 wait), and this client makes none: four a
        # tenth of a second, 120 in all per thread.
        opens = opened[name] = []
        # A directory FD of its own: another thread's read moves the offset.
        dfd = dfds.pop()
        getdents = struct.pack("<QiI", dfd, -65536, 0)      # from the start
        end = time.monotonic() + float(sys.argv[2])
        while time.monotonic() < end:
            for mid, payload in ((w.FSTAT, fstat), (w.WALK_STAT, walkstat), (w.PREAD, pread),
                                 (w.PWRITE, pwrite), (w.FSYNC, fsync),
                                 (w.GETDENTS64, getdents)):
                rmid, resp, _ = call(mid, payload)
                assert rmid == mid, (name, mid, rmid)
                if mid == w.GETDENTS64:
                    assert b"file.txt" in resp, resp
                if mid == w.WALK_STAT:
                    assert resp[:2] == b"\\x01\\x00", resp
            stamps.append(time.monotonic())
            if stamps[-1] > (opens[-1] if opens else 0) + 0.1:
                walk_open_and_close(call)
                make_rename_remove(call, name.encode())
                opens.append(time.monotonic())

    def over_socket(mid, payload):
        return c.raw(mid, payload, header=struct.pack("<IHH", len(payload), mid, 0))

    dfds = [c.open_at(c.root.control_fd, os.O_RDONLY)[0] for _ in range(3)]
    threads = [threading.Thread(target=run, args=("channel%d" % i, ch.call))
               for i, ch in enumerate(channels)]
    threads.append(threading.Thread(target=run, args=("socket", over_socket)))
    print("ready", flush=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.close()
    print(json.dumps([done, opened]), flush=True)
""")


def hold_the_gil(seconds):
    """Keeps the GIL for `seconds`: no other thread of this process runs
    Python meanwhile (the switch interval is longer than the hold)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(10 * seconds)
    try:
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            pass
        return start, time.monotonic()
    finally:
        sys.setswitchinterval(interval)


def test_channels_and_socket_are_served_while_another_thread_holds_the_gil(service, tree):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    service.start(theirs.detach(), HostConnection(tree), ConnectionOpts())
    # The client runs for the hold and a margin on both sides.
    child = subprocess.Popen([sys.executable, "-c", CLIENT, str(ours.fileno()), str(HOLD + 2)],
                             pass_fds=[ours.fileno()], stdout=subprocess.PIPE, text=True)
    ours.close()
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.5)
        start, end = hold_the_gil(HOLD)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
    done, opened = json.loads(out)
    assert sorted(done) == ["channel0", "channel1", "socket"]
    # Each of the three made progress while the GIL was held here (the old
    # core, which took the GIL for every request, made none), walking to and
    # opening FDs, making, renaming and removing directories and files too.
    inside = {name: sum(start + 0.1 < t < end for t in stamps) for name, stamps in done.items()}
    assert all(n >= 10 for n in inside.values()), inside
    inside = {name: sum(start + 0.1 < t < end for t in stamps) for name, stamps in opened.items()}
    assert all(n >= 3 for n in inside.values()), inside
    assert (tree / "file.txt").read_bytes().startswith(b"hello")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_a_gil_free_close_leaves_a_bounded_number_of_fds_to_release(tmp_path, connect):
    """Close is served without the GIL; releasing an FD needs it, so an FD
    whose last use a Close drops waits for the connection's next request
    that takes the GIL (or its end). At most 128 wait: a Close that would
    leave more is answered on the GIL path, which releases them all."""
    for i in range(300):
        (tmp_path / ("f%d" % i)).touch()
    c = connect(tmp_path)
    root = c.root.control_fd
    base = open_fds()
    ids = [c.walk(root, [b"f%d" % i])[1][0].control_fd for i in range(300)]
    c.call(w.FSTATFS, fd=root)                      # adopts them: none is released at once
    assert open_fds() == base + 300
    c.close_fds(*ids[:100])
    assert c.fstat(root).mask                       # GIL-free too: releases nothing
    assert open_fds() == base + 300
    c.close_fds(*ids[100:200])                      # 100 + 100 would wait
    assert open_fds() == base + 100
    c.close_fds(*ids[200:])
    assert open_fds() == base + 100
    c.call(w.FSTATFS, fd=root)                      # on the GIL path
    assert open_fds() == base


@pytest.fixture
def serve_here(tmp_path):
    """serve_here(impl=None, **opts) -> (Client, Connection): the stock
    backend serving tmp_path (or `impl`) in this process, with its
    Connection at hand."""
    made = []

    def make(impl=None, **opts):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        conn = Connection(Server(), impl or HostConnection(tmp_path), ConnectionOpts(**opts))
        t = threading.Thread(target=conn.serve, args=(theirs.detach(),), daemon=True)
        t.start()
        made.append((Client(ours), t))
        return made[-1][0], conn

    yield make
    for c, t in made:
        c.close()
        t.join(10)


def test_fds_opened_without_the_gil_wait_a_bounded_while_for_adoption(tmp_path, serve_here):
    """OpenAt on a stock-backend file is served without the GIL: the new FD
    has no FD object until the connection's next request that takes the GIL
    adopts it. At most 128 wait: an OpenAt past that is answered on the GIL
    path, which adopts them all first. One closed before its adoption never
    needs one: its host FD is closed at once, without the GIL."""
    (tmp_path / "f").write_bytes(b"0123456789")
    c, conn = serve_here()
    root = c.root.control_fd
    f = c.walk(root, [b"f"])[1][0].control_fd
    c.call(w.FSTATFS, fd=root)                      # on the GIL path: adopts f
    assert conn.fds_to_adopt == 0
    base = open_fds()
    ofds, waiting = [], []
    for _ in range(200):
        ofd, host_fd = c.open_at(f, os.O_RDONLY)
        os.close(host_fd)
        ofds.append(ofd)
        waiting.append(conn.fds_to_adopt)
    # The 129th went to the GIL path, and the 71 after it wait again.
    assert max(waiting) == 128 and waiting[128] == 0 and waiting[-1] == 71
    assert open_fds() == base + 200
    c.close_fds(*ofds[129:])                        # never adopted: closed at once
    assert open_fds() == base + 129 and conn.fds_to_adopt == 0
    c.close_fds(*ofds[:129])                        # more than 128: the GIL path
    assert open_fds() == base
    # An adopted FD is the backend's like any other: a GIL-only RPC uses it.
    ofd, host_fd = c.open_at(f, os.O_RDWR)
    os.close(host_fd)
    assert c.pread(ofd, 2, 3) == b"234"             # GIL-free, before adoption
    assert conn.fds_to_adopt == 1
    c.call(w.FALLOCATE, fd=ofd, mode=0, offset=0, length=100)
    assert conn.fds_to_adopt == 0
    assert (tmp_path / "f").stat().st_size == 100
    c.close_fds(ofd)
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base


def test_fds_walked_to_without_the_gil_are_adopted_in_order(tmp_path, serve_here):
    """Walk from a stock-backend directory is served without the GIL: each
    FD walked to waits for adoption, and so does its directory, which the
    next request that takes the GIL adopts first. They serve the GIL-free
    RPCs before that and the GIL-only ones after; the node tree has their
    names. One closed before its adoption is released at once, without the
    GIL."""
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"0123456789")
    (tmp_path / "d" / "e" / "ln").symlink_to("f")
    c, conn = serve_here()
    root = c.root.control_fd
    base = open_fds()
    status, walked = c.walk(root, [b"d", b"e", b"ln", b"x"])
    assert status == w.WALK_COMPONENT_SYMLINK and len(walked) == 3
    d, e, ln = (i.control_fd for i in walked)
    assert open_fds() == base + 3 and conn.fds_to_adopt == 3
    f = c.walk(e, [b"f"])[1][0].control_fd
    ofd, host_fd = c.open_at(f, os.O_RDWR)          # from an FD not adopted yet
    os.close(host_fd)
    assert c.pread(ofd, 2, 3) == b"234" and conn.fds_to_adopt == 5
    assert c.call(w.READLINK_AT, fd=ln)["target"] == b"f"      # GIL path: adopts all
    assert conn.fds_to_adopt == 0
    assert sorted(conn.server.tree_paths()) == [b"/", b"/d", b"/d/e", b"/d/e/f", b"/d/e/ln"]
    c.call(w.FALLOCATE, fd=ofd, mode=0, offset=0, length=100)
    assert (tmp_path / "d" / "e" / "f").stat().st_size == 100
    c.close_fds(ofd, f, ln, e, d)
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base
    assert conn.server.tree_paths() == [b"/"]
    # Walked to and closed before adoption: released at once, nodes too.
    for _ in range(200):
        c.close_fds(*(i.control_fd for i in c.walk(root, [b"d", b"e"])[1]))
    assert open_fds() == base and conn.fds_to_adopt == 0
    assert conn.server.tree_paths() == [b"/"]


def test_a_walk_without_the_gil_that_fails_midway_leaves_nothing(tmp_path, serve_here):
    """An error at one step answers the whole Walk, as on the GIL path: the
    FDs its earlier steps made are taken back (here: the connection's FD
    limit reached at the third step)."""
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    c, conn = serve_here(max_fds=3)
    root = c.root.control_fd
    base = open_fds()
    with pytest.raises(OSError) as e:
        c.walk(root, [b"a", b"b", b"c"])
    assert e.value.errno == errno.EMFILE
    assert open_fds() == base and conn.fds_to_adopt == 0
    assert conn.server.tree_paths() == [b"/"]
    assert len(c.walk(root, [b"a", b"b"])[1]) == 2


def test_mkdir_rename_and_unlink_without_the_gil_keep_the_tree(tmp_path, serve_here):
    """MkdirAt, RenameAt and UnlinkAt in a stock-backend directory are
    served without the GIL (nothing is adopted meanwhile), and the node tree
    follows the host: the directory's node moves with the rename and, once
    removed, leaves the tree marked deleted, so Getdents64 on its open FD
    answers EINVAL, as on the GIL path."""
    c, conn = serve_here()
    root = c.root.control_fd
    d = c.call(w.MKDIR_AT, dir_fd=root, uid=w.NO_UID, gid=w.NO_GID, mode=0o750,
               name=b"d")["child"]
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750 & ~current_umask()
    assert conn.fds_to_adopt == 1
    c.call(w.RENAME_AT, old_dir=root, new_dir=root, old_name=b"d", new_name=b"e")
    assert sorted(conn.server.tree_paths()) == [b"/", b"/e"] and (tmp_path / "e").is_dir()
    ofd = c.open_at(d.control_fd, os.O_RDONLY)[0]
    with pytest.raises(OSError) as err:
        c.call(w.UNLINK_AT, dir_fd=root, flags=0, name=b"e")      # a directory
    assert err.value.errno == errno.EISDIR
    c.call(w.UNLINK_AT, dir_fd=root, flags=0x200, name=b"e")
    assert not (tmp_path / "e").exists() and conn.server.tree_paths() == [b"/"]
    with pytest.raises(OSError) as err:
        c.call(w.GETDENTS64, dir_fd=ofd, count=4096)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(OSError) as err:
        c.call(w.MKDIR_AT, dir_fd=d.control_fd, uid=w.NO_UID, gid=w.NO_GID, mode=0o755,
               name=b"x")
    assert err.value.errno == errno.EINVAL
    assert conn.fds_to_adopt == 2                   # d and ofd: no GIL request came
    c.close_fds(ofd, d.control_fd)
    c.call(w.FSTATFS, fd=root)
    assert conn.fds_to_adopt == 0 and conn.fd_count == 1


def test_open_create_without_the_gil(tmp_path, serve_here):
    """OpenCreateAt in a stock-backend directory is served without the GIL:
    the file is made with its mode, the client gets its FD, and its control
    FD and open FD wait for adoption; the name taken, EEXIST."""
    c, conn = serve_here()
    root = c.root.control_fd
    r, fds = c.call_fds(w.OPEN_CREATE_AT, dir_fd=root, uid=w.NO_UID, gid=w.NO_GID,
                        mode=0o640, flags=os.O_RDWR, name=b"f")
    assert len(fds) == 1 and conn.fds_to_adopt == 2
    os.write(fds[0], b"abc")
    os.close(fds[0])
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640 & ~current_umask()
    assert r["child"].stat.size == 0
    assert c.pread(r["new_fd"], 1, 2) == b"bc"
    with pytest.raises(OSError) as err:
        c.call(w.OPEN_CREATE_AT, dir_fd=root, uid=w.NO_UID, gid=w.NO_GID, mode=0o640,
               flags=os.O_RDWR, name=b"f")
    assert err.value.errno == errno.EEXIST
    assert conn.fds_to_adopt == 2
    c.close_fds(r["new_fd"], r["child"].control_fd)
    c.call(w.FSTATFS, fd=root)
    assert conn.fds_to_adopt == 0 and conn.fd_count == 1


@pytest.mark.parametrize("backend", ["stock", "memfs"])
def test_open_create_at_the_fd_limit_leaves_no_fd(tmp_path, serve_here, backend):
    """OpenCreateAt whose open FD is one past the connection's limit answers
    EMFILE and keeps neither FD: its control FD, already registered, is
    taken back (the client never learns its FDID). Without the GIL on the
    stock backend, with it on memfs."""
    impl = None if backend == "stock" else gofer_memfs.MemConnection()
    c, conn = serve_here(impl, max_fds=2)
    root = c.root.control_fd
    base = open_fds()
    with pytest.raises(OSError) as err:
        c.call_fds(w.OPEN_CREATE_AT, dir_fd=root, uid=w.NO_UID, gid=w.NO_GID, mode=0o640,
                   flags=os.O_RDWR, name=b"f")
    assert err.value.errno == errno.EMFILE
    c.call(w.FSTATFS, fd=root)                      # adopts whatever waits
    assert conn.fd_count == 1 and conn.fds_to_adopt == 0
    if backend == "stock":                          # (memfs keeps the file in a memfd)
        assert open_fds() == base
    # Nothing was left behind: a walk to the file made gets the free FDID.
    f = c.walk(root, [b"f"])[1][0].control_fd
    c.close_fds(f)
    assert conn.fd_count == 1


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_unlink_and_rename_wait_for_closed_fds_to_be_released(tmp_path, serve_here):
    """A Close without the GIL may leave an adopted FD's release for later;
    UnlinkAt and RenameAt then go to the GIL path, which releases it first:
    the host never sees a file the client closed still open when its name
    goes (the file's link count drops to 0 with no FD left on it)."""
    (tmp_path / "f").write_bytes(b"x")
    c, conn = serve_here()
    root = c.root.control_fd
    f = c.walk(root, [b"f"])[1][0].control_fd
    ofd, host_fd = c.open_at(f, os.O_RDONLY)
    os.close(host_fd)
    c.call(w.FSTATFS, fd=root)                      # adopts both
    base = open_fds()
    c.close_fds(ofd, f)                             # GIL-free: their release waits
    assert open_fds() == base
    c.call(w.UNLINK_AT, dir_fd=root, flags=0, name=b"f")
    assert open_fds() == base - 2
    assert not (tmp_path / "f").exists()
