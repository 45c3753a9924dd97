"""No client can stall another (issue 12): a hostile client that makes one
of its own RPCs wait on the host must not freeze the gofer. While it is
stuck, a new client mounts and is answered; once it goes away, the gofer's
FDs and threads return to what they were.

The gofer runs as `gofer serve` in its own process, so that a server
holding the GIL cannot also freeze the test. Waits are bounded by LIMIT,
a liveness bound, not a speed target.
"""
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from gofer import _wire as w
from gofer._wire import encode_request
from gofer.client import ChannelClient, Client

LIMIT = 60.0          # seconds before a wait counts as "never"
NO_ID = 0xFFFFFFFF


def wait_until(cond, what):
    deadline = time.monotonic() + LIMIT
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("never happened: " + what)
        time.sleep(0.02)


class Gofer:
    def __init__(self, tmp_path, env=None):
        self.tree = tmp_path / "root"
        self.tree.mkdir()
        (self.tree / "file.txt").write_bytes(b"hello, gofer\n")
        self.path = tmp_path / "gofer.sock"
        # Its own open file description, appending: reading the log here
        # must not move the offset the gofer writes at.
        self.log_path = tmp_path / "gofer.log"
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gofer", "serve", str(self.tree), "--socket", str(self.path),
             "--host-uds", "all", "--host-fifo", "open"], stderr=self.log,
            env=dict(os.environ, **(env or {})))
        # It says so once it listens, before any client came: the baseline.
        wait_until(lambda: "gofer: serving" in self.output() or self.proc.poll() is not None,
                   "gofer listens")
        assert self.proc.poll() is None, self.output()
        self.baseline = self.usage()

    def usage(self):
        """The gofer's open FDs and threads."""
        pid = self.proc.pid
        return len(os.listdir("/proc/%d/fd" % pid)), len(os.listdir("/proc/%d/task" % pid))

    def client(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(LIMIT)
        s.connect(str(self.path))
        return Client(s)

    def answers_others(self):
        """A new client mounts and stats its root (raises on timeout)."""
        with self.client() as c:
            assert c.fstat(c.root.control_fd).mask & w.STATX_TYPE

    def answers_while(self, fn, what):
        """Runs `fn` (one client's RPC that might wait) on a thread; checks
        that meanwhile others are answered and that `fn` then ends."""
        rpc = Pending(fn)
        self.answers_others()
        wait_until(rpc.done.is_set, what)
        return rpc

    def back_to_baseline(self):
        wait_until(lambda: self.usage() == self.baseline,
                   "the gofer's FDs and threads return to %s (now %s)"
                   % (self.baseline, self.usage()))

    def output(self):
        return self.log_path.read_text()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def gofer(tmp_path):
    g = Gofer(tmp_path)
    yield g
    g.stop()


class Pending:
    """Runs `fn` on a daemon thread (an RPC that may never return)."""

    def __init__(self, fn):
        self.result = self.error = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(fn,), daemon=True).start()

    def _run(self, fn):
        try:
            self.result = fn()
        except BaseException as e:
            self.error = e
        self.done.set()

    def errno(self):
        return getattr(self.error, "errno", None)


def make_blocking(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)


def walk(c, name):
    status, [ino] = c.walk(c.root.control_fd, [name])
    assert status == w.WALK_SUCCESS
    return ino.control_fd


def test_client_not_reading_its_fdchannel(gofer):
    # Every OpenAt over a channel donates an FD through the channel's
    # fdchannel; this client never reads it, so its buffer fills (after
    # ~280 FDs). The gofer must stop donating rather than block.
    c = gofer.client()
    f = walk(c, b"file.txt")
    resp, (memfd, fdsock) = c.call_fds(w.CHANNEL)
    elsewhere, _ = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ch = ChannelClient(memfd, resp["data_offset"], resp["data_length"], elsewhere.detach())
    os.close(memfd)
    ch.connect()
    opens = 400

    def flood():
        for _ in range(opens):
            rmid, body, _ = ch.call(w.OPEN_AT, encode_request(w.OPEN_AT, dict(fd=f, flags=0)))
            assert rmid == w.OPEN_AT
            ofd = w.decode_response(w.OPEN_AT, body)["open_fd"]
            assert ch.call(w.CLOSE, encode_request(w.CLOSE, dict(fds=[ofd])))[0] == w.CLOSE

    flooding = Pending(flood)
    gofer.answers_others()
    wait_until(flooding.done.is_set, "every OpenAt is answered")
    assert flooding.error is None, flooding.error
    queued = 0
    with socket.socket(fileno=fdsock) as s:
        s.setblocking(False)
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(s, 1, 1)
            except BlockingIOError:
                break
            queued += 1
            for fd in fds:
                os.close(fd)
    assert 0 < queued < opens        # the buffer did fill up
    ch.close()
    c.close()
    gofer.back_to_baseline()


def test_open_waiting_for_a_lease_break(gofer):
    # The client's read lease on its donated FD makes the gofer's
    # openat(O_WRONLY) wait for the lease break (up to 45 s).
    previous = signal.signal(signal.SIGIO, lambda *_: None)     # the break notice
    try:
        c = gofer.client()
        f = walk(c, b"file.txt")
        _, host_fd = c.open_at(f, os.O_RDONLY)
        fcntl.fcntl(host_fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        opening = Pending(lambda: c.open_at(f, os.O_WRONLY))
        # A break in progress reports the lease it goes down to.
        wait_until(lambda: fcntl.fcntl(host_fd, fcntl.F_GETLEASE) == fcntl.F_UNLCK,
                   "the gofer's open breaks the lease")
        gofer.answers_others()
        assert not opening.done.is_set()
        fcntl.fcntl(host_fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        wait_until(opening.done.is_set, "the open completes once the lease is gone")
        assert opening.error is None, opening.error
        os.close(opening.result[1])
        os.close(host_fd)
        c.close()
    finally:
        signal.signal(signal.SIGIO, previous)
    gofer.back_to_baseline()


def bound_socket(c, backlog):
    r, (host_fd,) = c.call_fds(w.BIND_AT, dir_fd=c.root.control_fd, uid=NO_ID, gid=NO_ID,
                               mode=0o755, sock_type=socket.SOCK_STREAM, name=b"s")
    c.call(w.LISTEN, fd=r["bound_socket_fd"], backlog=backlog)
    return r["bound_socket_fd"], host_fd


def test_accept_on_a_socket_the_client_made_blocking(gofer):
    # The donated FD shares its open file description with the gofer's:
    # clearing O_NONBLOCK on it would make the gofer's accept4() wait.
    c = gofer.client()
    bfd, host_fd = bound_socket(c, 1)
    make_blocking(host_fd)
    accepting = gofer.answers_while(lambda: c.call(w.ACCEPT, fd=bfd),
                                    "Accept with nobody connecting is answered")
    assert accepting.errno() == errno.EAGAIN, accepting.error
    # A pending connection is still accepted.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
        peer.connect(str(gofer.tree / "s"))
        _, (conn,) = c.call_fds(w.ACCEPT, fd=bfd)
        os.close(conn)
    os.close(host_fd)
    c.close()
    gofer.back_to_baseline()


def test_connect_to_a_full_listener(gofer):
    # A listener with a full backlog would make connect() wait until it
    # accepts, which this client never does.
    c = gofer.client()
    _, host_fd = bound_socket(c, 0)
    s = walk(c, b"s")

    def connect_twice():
        for _ in range(2):
            _, fds = c.call_fds(w.CONNECT, fd=s, sock_type=socket.SOCK_STREAM)
            for fd in fds:
                os.close(fd)

    connecting = gofer.answers_while(connect_twice, "Connect to a full listener is answered")
    assert connecting.errno() == errno.EAGAIN, connecting.error
    os.close(host_fd)
    c.close()
    gofer.back_to_baseline()


def test_fifo_without_a_peer(gofer):
    # Opening a FIFO without a peer would wait; the gofer opens it
    # non-blocking (ENXIO for a writer with no reader) and reads and
    # writes of a FIFO are the client's own, on the donated FD.
    os.mkfifo(gofer.tree / "fifo")
    c = gofer.client()
    f = walk(c, b"fifo")
    opening = gofer.answers_while(lambda: c.open_at(f, os.O_WRONLY),
                                  "OpenAt(O_WRONLY) of a FIFO without a reader is answered")
    assert opening.errno() == errno.ENXIO, opening.error
    ofd, host_fd = c.open_at(f, os.O_RDONLY)
    make_blocking(host_fd)
    reading = gofer.answers_while(lambda: c.pread(ofd, 0, 10), "PRead of an empty FIFO is answered")
    assert reading.errno() == errno.ESPIPE, reading.error
    os.close(host_fd)
    c.close()
    gofer.back_to_baseline()


def test_channel_requests_racing_hang_up_leave_nothing_behind(gofer):
    # A Channel RPC sent over a channel, while the client closes its
    # socket: the new channel must be refused or torn down with the rest.
    for _ in range(300):
        c = gofer.client()
        c.start_channels(1)
        ch = c._channels[0]

        def another_channel():
            _, _, fds = ch.call(w.CHANNEL, b"")
            for fd in fds:
                os.close(fd)

        racing = Pending(another_channel)
        c.sock.close()
        if not racing.done.wait(LIMIT):
            ch.shutdown()                   # the gofer never answered: give up
            racing.done.wait(LIMIT)
        ch.close()
    gofer.answers_others()
    gofer.back_to_baseline()


# No host call under the GIL: tests/no_stall/stall.c, preloaded into the
# gofer, holds one chosen libc call until the test lets it go. While one
# client's RPC is held there, other connections must be answered.

@pytest.fixture(scope="module")
def stall_shim(tmp_path_factory):
    out = tmp_path_factory.mktemp("shim") / "stall.so"
    src = os.path.join(os.path.dirname(__file__), "no_stall", "stall.c")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), src, "-ldl"], check=True)
    return out


def setstat(mask, **fields):
    def rpc(c, ids):
        args = dict(fd=ids["f"], mask=mask, mode=0o640, uid=os.getuid(), gid=os.getgid(),
                    size=4, atime_sec=0, atime_nsec=0, mtime_sec=0, mtime_nsec=0)
        args.update(fields)
        return c.call(w.SETSTAT, **args)
    return rpc


def create(mid, **fields):
    def rpc(c, ids):
        return c.call(mid, dir_fd=ids["sub"], uid=NO_ID, gid=NO_ID, **fields)
    return rpc


# libc call (as stall.c names it) -> an RPC whose stock handler makes it.
# Everything happens in sub/, so no RPC holds a lock on the root's node.
HOST_CALLS = {
    "statx": lambda c, ids: c.fstat(ids["f"]),
    "openat": lambda c, ids: c.walk(ids["sub"], [b"f"]),
    "pread": lambda c, ids: c.pread(ids["rw"], 0, 4),
    "pwrite": lambda c, ids: c.pwrite(ids["rw"], 0, b"x"),
    "fsync": lambda c, ids: c.call(w.FSYNC, fds=[ids["rw"]]),
    "fallocate": lambda c, ids: c.call(w.FALLOCATE, fd=ids["rw"], mode=0, offset=0, length=8192),
    "ftruncate": setstat(w.STATX_SIZE),
    "fchmodat": setstat(w.STATX_MODE),
    "fchownat": setstat(w.STATX_UID | w.STATX_GID),
    "utimensat": setstat(w.STATX_ATIME | w.STATX_MTIME),
    "getdents64": lambda c, ids: c.getdents64(ids["dir"], 4096),
    "getxattr": lambda c, ids: c.call(w.FGETXATTR, fd=ids["f"], buf_size=0, name=b"user.x"),
    "fstatfs": lambda c, ids: c.call(w.FSTATFS, fd=ids["f"]),
    "readlinkat": lambda c, ids: c.call(w.READLINK_AT, fd=ids["l"]),
    "mkdirat": create(w.MKDIR_AT, mode=0o755, name=b"d"),
    "mknodat": create(w.MKNOD_AT, mode=0o100644, minor=0, major=0, name=b"n"),
    "symlinkat": lambda c, ids: c.call(w.SYMLINK_AT, dir_fd=ids["sub"], uid=NO_ID, gid=NO_ID,
                                       name=b"s", target=b"f"),
    "linkat": lambda c, ids: c.call(w.LINK_AT, dir_fd=ids["sub"], target=ids["f"], name=b"h"),
    "unlinkat": lambda c, ids: c.call(w.UNLINK_AT, dir_fd=ids["sub"], flags=0, name=b"gone"),
    "renameat2": lambda c, ids: c.call(w.RENAME_AT, old_dir=ids["sub"], new_dir=ids["sub"],
                                       old_name=b"gone", new_name=b"moved"),
}


@pytest.mark.parametrize("call", sorted(HOST_CALLS))
def test_host_call_never_holds_the_gil(tmp_path, stall_shim, call):
    stalls = tmp_path / "stalls"
    stalls.mkdir()
    g = Gofer(tmp_path, env={"LD_PRELOAD": str(stall_shim), "GOFER_STALL_DIR": str(stalls)})
    try:
        sub = g.tree / "sub"
        sub.mkdir()
        (sub / "f").write_bytes(b"data")
        (sub / "gone").write_bytes(b"")
        os.symlink("f", sub / "l")
        c, other = g.client(), g.client()
        ids = {"sub": walk(c, b"sub")}
        for name in ("f", "l"):
            ids[name] = c.walk(ids["sub"], [name.encode()])[1][0].control_fd
        ids["rw"] = c.open_at(ids["f"], os.O_RDWR)[0]
        ids["dir"] = c.open_at(ids["sub"], os.O_RDONLY)[0]
        spare = walk(other, b"file.txt")
        (stalls / ("arm." + call)).touch()
        rpc = Pending(lambda: HOST_CALLS[call](c, ids))
        wait_until((stalls / "stuck").exists, "the gofer reaches %s" % call)
        if call == "renameat2":
            # RenameAt holds the global rename lock (gVisor's safelyGlobal),
            # which every RPC that walks the tree waits for; Close does not.
            other.close_fds(spare)
        else:
            other.fstat(other.root.control_fd)
            g.answers_others()
        # Answered while the call was still held there.
        assert (stalls / "stuck").exists() and not rpc.done.is_set()
        (stalls / "release").touch()
        wait_until(rpc.done.is_set, "the held %s returns" % call)
        # An errno is an answer too (tmp_path's file system may have no
        # user xattrs); a lost connection is not.
        assert rpc.error is None or call == "getxattr" and rpc.errno() in (
            errno.ENODATA, errno.EOPNOTSUPP), rpc.error
        c.close()
        other.close()
    finally:
        g.stop()


def test_close_while_a_gil_free_read_is_held(tmp_path, stall_shim):
    # A PRead served without the GIL (over a channel) is held in pread()
    # while the client closes that FD over its socket: Close is answered,
    # the read still reads the file it started on, and the host FD is
    # closed by whichever of the two finishes last: the read, for the open
    # FD; for the control FD, whose last use the GIL-free Close dropped,
    # the next request that takes the GIL.
    stalls = tmp_path / "stalls"
    stalls.mkdir()
    g = Gofer(tmp_path, env={"LD_PRELOAD": str(stall_shim), "GOFER_STALL_DIR": str(stalls)})

    def opens_of_the_file():
        fd_dir = "/proc/%d/fd" % g.proc.pid
        names = []
        for fd in os.listdir(fd_dir):
            try:
                names.append(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                pass
        return names.count(str(g.tree / "file.txt"))

    try:
        c = g.client()
        assert c.start_channels(1) == 1
        f = walk(c, b"file.txt")
        rw = c.open_at(f, os.O_RDONLY)[0]
        c.call(w.FSTATFS, fd=c.root.control_fd)         # adopts the FD OpenAt made
        (stalls / "arm.pread").touch()
        read = Pending(lambda: c.pread(rw, 0, 5))       # takes the channel
        wait_until((stalls / "stuck").exists, "the gofer reaches pread")
        c.close_fds(rw, f)                               # over the socket
        g.answers_others()
        assert not read.done.is_set()
        # The held read's open FD, and the control FD it references.
        assert opens_of_the_file() == 2
        (stalls / "release").touch()
        wait_until(read.done.is_set, "the held pread returns")
        assert read.error is None and read.result == b"hello", read.error
        wait_until(lambda: opens_of_the_file() == 1, "the read's open FD is closed")
        c.call(w.FSTATFS, fd=c.root.control_fd)         # on the GIL path
        assert opens_of_the_file() == 0
        c.close()
        g.back_to_baseline()
    finally:
        g.stop()
