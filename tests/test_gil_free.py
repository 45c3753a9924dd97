"""The stock backend's GIL-free path (issue 13): FStat, Walk, WalkStat,
OpenAt, PRead, PWrite, FSync, Getdents64 and Close on a host FD are served from
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
import time

import pytest

from gofer import _wire as w
from gofer._server import ConnectionOpts
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
        # adopted (at most 128 wait), and this client makes none: three a
        # tenth of a second, 90 in all per thread.
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
    # opening FDs too.
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


def test_fds_opened_without_the_gil_wait_a_bounded_while_for_adoption(tmp_path, connect):
    """OpenAt on a stock-backend file is served without the GIL: the new FD
    has no FD object until the connection's next request that takes the GIL
    adopts it, and one closed before that is released then. At most 128
    wait: an OpenAt past that is answered on the GIL path, which adopts them
    all first."""
    (tmp_path / "f").write_bytes(b"0123456789")
    c = connect(tmp_path)
    root = c.root.control_fd
    f = c.walk(root, [b"f"])[1][0].control_fd
    c.call(w.FSTATFS, fd=root)                      # adopts f: none wait
    base = open_fds()
    most = 0
    for _ in range(200):
        ofd, host_fd = c.open_at(f, os.O_RDONLY)
        os.close(host_fd)
        c.close_fds(ofd)
        most = max(most, open_fds())
    assert most == base + 128
    c.call(w.FSTATFS, fd=root)                      # on the GIL path: adopts, releases
    assert open_fds() == base
    # An adopted FD is the backend's like any other: a GIL-only RPC uses it.
    ofd, host_fd = c.open_at(f, os.O_RDWR)
    os.close(host_fd)
    assert c.pread(ofd, 2, 3) == b"234"             # GIL-free, before adoption
    c.call(w.FALLOCATE, fd=ofd, mode=0, offset=0, length=100)
    assert (tmp_path / "f").stat().st_size == 100
    c.close_fds(ofd)
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base


def test_fds_walked_to_without_the_gil_are_adopted_in_order(tmp_path, connect, service):
    """Walk from a stock-backend directory is served without the GIL: each
    FD walked to waits for adoption, and so does its directory, which the
    next request that takes the GIL adopts first. They serve the GIL-free
    RPCs before that and the GIL-only ones after; the node tree has their
    names; at most 128 wait, as for OpenAt."""
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"0123456789")
    (tmp_path / "d" / "e" / "ln").symlink_to("f")
    c = connect(tmp_path)
    root = c.root.control_fd
    base = open_fds()
    status, walked = c.walk(root, [b"d", b"e", b"ln", b"x"])
    assert status == w.WALK_COMPONENT_SYMLINK and len(walked) == 3
    d, e, ln = (i.control_fd for i in walked)
    assert open_fds() == base + 3
    f = c.walk(e, [b"f"])[1][0].control_fd
    ofd, host_fd = c.open_at(f, os.O_RDWR)          # from an FD not adopted yet
    os.close(host_fd)
    assert c.pread(ofd, 2, 3) == b"234"
    assert c.call(w.READLINK_AT, fd=ln)["target"] == b"f"      # GIL path: adopts all
    assert sorted(service.server.tree_paths()) == [b"/", b"/d", b"/d/e", b"/d/e/f",
                                                   b"/d/e/ln"]
    c.call(w.FALLOCATE, fd=ofd, mode=0, offset=0, length=100)
    assert (tmp_path / "d" / "e" / "f").stat().st_size == 100
    c.close_fds(ofd, f, ln, e, d)
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base
    assert sorted(service.server.tree_paths()) == [b"/"]
    # Walked to and closed before adoption: held until the next GIL request.
    most = 0
    for _ in range(200):
        c.close_fds(c.walk(root, [b"d"])[1][0].control_fd)
        most = max(most, open_fds())
    assert most == base + 128
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base


def test_a_walk_without_the_gil_that_fails_midway_leaves_nothing(tmp_path, connect, service):
    """An error at one step answers the whole Walk, as on the GIL path: the
    FDs its earlier steps made are taken back (here: the connection's FD
    limit reached at the third step)."""
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    c = connect(tmp_path, max_fds=3)
    root = c.root.control_fd
    base = open_fds()
    with pytest.raises(OSError) as e:
        c.walk(root, [b"a", b"b", b"c"])
    assert e.value.errno == errno.EMFILE
    c.call(w.FSTATFS, fd=root)
    assert open_fds() == base
    assert sorted(service.server.tree_paths()) == [b"/"]
    assert len(c.walk(root, [b"a", b"b"])[1]) == 2
