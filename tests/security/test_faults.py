"""Faults: clients that die at every phase of an RPC, a filesystem that
fills up, signals interrupting the server's blocking calls, and a backend
that hangs or raises on one connection while others are served."""
import errno
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from gofer import _wire as w
from gofer._server import running_threads
from gofer.client import Client
from gofer.fsgofer import HostConnection
from gofer.lisafs import ConnectionImpl, ControlFDImpl, Statx
from security.rawclient import HEADER, GoferServer, RawChannel, sstr, u64
from security.test_abuse import back_to, fstat_ok

KILLS = 1000


def die(c):
    """Goes away as a killed process does: every FD closed, unread data
    reset (SO_LINGER 0)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def phase(world, i):
    """Runs one RPC up to phase i % 9, then dies."""
    c = world.server.connect(mount=False)
    p = i % 9
    try:
        if p == 0:
            return                                  # connected, said nothing
        if p == 1:
            c.sock.sendall(HEADER.pack(8, w.MOUNT, 0)[:5])       # half a header
            return
        c.mount()
        if p == 2:
            c.send(w.FSTAT, b"", plen=8)            # header, no payload
        elif p == 3:
            c.send(w.FSTAT, u64(c.root)[:3], plen=8)  # half the payload
        elif p == 4:
            c.send(w.PREAD, b"")                    # request in, answer never read
            c.sock.sendall(HEADER.pack(4, w.FSTAT, 0))
        elif p == 5:
            # A big answer the client never reads: the server's write fails.
            f = c.walk(c.root, world.name, "file")[1]
            o = c.open_at(f, os.O_RDONLY)
            for _ in range(8):
                c.send(w.PREAD, struct.pack("<QQII", 0, o, 1 << 20, 0))
        elif p == 6:
            c.walk(c.root, world.name, "dir", "inner")      # holds FDs
        elif p == 7:
            ch = RawChannel(*c.channel_fds())     # dies before the handshake
            ch.close()
        else:
            ch = RawChannel(*c.channel_fds())     # dies mid-request on a channel
            ch.handshake()
            req = struct.pack("<HBBQ", w.FSTAT, 0, 0, c.root)
            ch.send(len(req), req)
            ch.close()
    finally:
        die(c)


def test_clients_killed_at_every_phase(world):
    before = world.server.figures()
    for i in range(KILLS):
        phase(world, i)
    back_to(world.server, before, timeout=30)
    print("%d clients killed mid-RPC: server FDs %d, threads %d after (before %d, %d)"
          % ((KILLS,) + world.server.figures()[:2] + before[:2]))


# ---------------------------------------------------------------- ENOSPC

@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs with 64 inodes, served by its own gofer."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(mnt)],
                   check=True)
    server = GoferServer(mnt, "/tmp/gs-enospc-%d" % os.getpid(), tmp_path / "log")
    yield mnt, server
    rc = server.stop()
    subprocess.run(["umount", "-l", str(mnt)], check=True)
    assert rc is None, server.log()


def test_enospc_is_an_errno_and_acknowledged_data_is_there(small_fs):
    mnt, server = small_fs
    c = server.connect()
    a = c.rpc(w.OPEN_CREATE_AT, struct.pack("<QIIHHI", c.root, 0, 0, 0o100644, 0, 0)
              + struct.pack("<I", os.O_RDWR) + sstr(b"fill"))
    o = a.fields()["new_fd"]
    chunk = os.urandom(100000)
    written = bytearray()
    failed = None
    for i in range(40):
        a = c.rpc(w.PWRITE, struct.pack("<QQI", len(written), o, len(chunk)) + chunk)
        if a.mid == w.ERROR:
            failed = a.errno
            break
        n = a.fields()["count"]
        assert 0 < n <= len(chunk)
        written += chunk[:n]
    assert failed == errno.ENOSPC
    assert (mnt / "fill").read_bytes() == bytes(written)
    # Out of inodes: creation answers ENOSPC too.
    errs = set()
    for i in range(80):
        a = c.rpc(w.MKDIR_AT, struct.pack("<QIIHHI", c.root, 0, 0, 0o755, 0, 0)
                  + sstr(b"d%d" % i))
        if a.mid == w.ERROR:
            errs.add(a.errno)
    assert errs == {errno.ENOSPC}
    a = c.rpc(w.FALLOCATE, struct.pack("<QQQQ", o, 0, 0, 8 << 20))
    assert a.errno == errno.ENOSPC
    fstat_ok(c)
    c.close()


# ---------------------------------------------------------------- EINTR

def test_signals_interrupting_the_servers_blocking_calls(tree, service):
    """Every server thread is signalled over and over (a handler installed,
    so recvmsg, sendmsg, futex waits and file I/O return EINTR) while
    clients work over the socket and over channels: every answer is right."""
    hits = [0]
    old = signal.signal(signal.SIGUSR1, lambda *a: hits.__setitem__(0, hits[0] + 1))
    clients = []
    try:
        for channels in (0, 2):
            ours, theirs = socket.socketpair()
            service.start(theirs.detach(), HostConnection(tree))
            c = Client(ours)
            if channels:
                c.start_channels(channels)
            clients.append(c)
        big = os.urandom(1 << 20)
        stop = threading.Event()

        def storm():
            while not stop.is_set():
                for t in running_threads():
                    if t.name.startswith(("gofer-conn", "gofer-channel")) and t.ident:
                        try:
                            signal.pthread_kill(t.ident, signal.SIGUSR1)
                        except (ProcessLookupError, OSError):
                            pass
                time.sleep(0.0005)
        s = threading.Thread(target=storm)
        s.start()
        try:
            for c in clients:
                _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
                fd, h = c.open_at(f.control_fd, os.O_RDWR)
                os.close(h)
                for i in range(60):
                    assert c.pwrite(fd, 0, big) == len(big)
                    assert c.pread(fd, 0, len(big)) == big
                    assert c.fstat(fd).size == len(big)
        finally:
            stop.set()
            s.join()
    finally:
        for c in clients:
            c.close()
        # A signal still pending on a server thread (one in uninterruptible
        # I/O takes it on its way back to user mode) would kill the process
        # under the default action: ignoring it first discards what is pending.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, old)
    assert hits[0] > 0


# ---------------------------------------------------------------- backends

class Faulty(ControlFDImpl):
    hang = threading.Event()          # set: stop hanging

    def __init__(self, mode):
        self.mode = mode

    def stat(self):
        return Statx(mask=w.STATX_BASIC_STATS, mode=0o40755, ino=1)

    def walk(self, name):
        if self.mode == "hang":
            Faulty.hang.wait(30)
        raise RuntimeError("backend bug")


class FaultyConnection(ConnectionImpl):
    def __init__(self, mode):
        self.mode = mode

    def mount(self):
        return Faulty(self.mode)

    def supported_messages(self):
        return [w.FSTAT, w.WALK, w.CLOSE]


@pytest.mark.parametrize("mode", ["hang", "raise"])
def test_a_faulty_backend_disturbs_no_other_connection(tree, service, mode):
    Faulty.hang.clear()
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), FaultyConnection(mode))
    bad = Client(ours)
    bad.start_channels(2)
    results = []

    def use_bad():
        try:
            bad.walk(bad.root.control_fd, [b"x"])
        except OSError as e:
            results.append(e.errno)
    threads = [threading.Thread(target=use_bad) for _ in range(3)]     # channels and socket
    for t in threads:
        t.start()
    ours, theirs = socket.socketpair()
    service.start(theirs.detach(), HostConnection(tree))
    good = Client(ours)
    good.start_channels(2)
    for _ in range(200):
        _, [f] = good.walk(good.root.control_fd, [b"file.txt"])
        fd, h = good.open_at(f.control_fd, os.O_RDONLY)
        os.close(h)
        assert good.pread(fd, 0, 5) == b"hello"
        good.close_fds(fd, f.control_fd)
    if mode == "hang":
        assert results == []             # still hanging, and nobody else waited
        Faulty.hang.set()
    for t in threads:
        t.join(30)
    assert results == [errno.EREMOTEIO] * 3
    good.close()
    bad.close()
