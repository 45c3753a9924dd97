"""A LISAFS client that sends whatever bytes it is given, for attacks.

`Raw` speaks the socket framing (any header, any payload, any MID) and
classifies each answer; `RawChannel(*raw.channel_fds())` drives a flipcall
channel by hand over its shared window (any dataLen, any connection state),
and `Raw.channel()` gives a `gofer._client.ChannelClient` for well-framed
requests. `GoferServer` runs `gofer serve` (or gVisor's fsgofer through
bench/peers/refgofer) on a scratch directory and reports the process's
FDs, threads, RSS and log size; `snapshot` records a host tree, to prove
an attack changed nothing. Nothing here knows the server: the same attacks
run against both.
"""
import array
import mmap
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

from gofer import _wire as w

HEADER = struct.Struct("<IHH")


def snapshot(top, nlink=True):
    """Every path under `top` with its type, mode, owner, content and (with
    `nlink`) link count."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(p)
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_gid,
                                            st.st_nlink if nlink else None, data)
    return out

NO_FD = 1 << 60                 # an FDID no server hands out
# FDs the server may donate with each response (the Go client's wantFDs).
WANT_FDS = {w.MOUNT: 1, w.CHANNEL: 2, w.OPEN_AT: 1, w.OPEN_CREATE_AT: 1, w.CONNECT: 1,
            w.CONNECT_WITH_CREDS: 1, w.BIND_AT: 1, w.ACCEPT: 1}


class Closed(Exception):
    """The server closed the connection (or channel): a clean refusal."""


def sstr(b):
    return struct.pack("<H", len(b)) + b


def u64(x):
    return struct.pack("<Q", x)


class Answer:
    """One response: `errno` (0 for success), the MID and payload."""

    def __init__(self, mid, body, fds):
        for fd in fds:
            os.close(fd)
        self.mid, self.body, self.nfds = mid, body, len(fds)
        self.errno = struct.unpack("<I", body)[0] if mid == w.ERROR and len(body) == 4 else 0

    def well_formed(self, req_mid):
        """An error with a real errno, or a response that parses as the
        request's layout."""
        if self.mid == w.ERROR:
            return len(self.body) == 4 and self.errno > 0
        if self.mid != req_mid:
            return False
        try:
            w.decode_response(req_mid, self.body)
        except w.ProtocolError:
            return False
        return True

    def fields(self):
        return w.decode_response(self.mid, self.body)

    def __repr__(self):
        return "Answer(mid=%d, errno=%d, %d bytes)" % (self.mid, self.errno, len(self.body))


class Raw:
    """One connection over a Unix stream socket, spoken byte by byte."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.root = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, mid, payload=b"", plen=None):
        self.sock.sendall(HEADER.pack(len(payload) if plen is None else plen, mid, 0) + payload)

    def _recv(self, n, want_fds):
        buf, fds = bytearray(), []
        while len(buf) < n:
            data, anc, _, _ = self.sock.recvmsg(n - len(buf), socket.CMSG_SPACE(4 * want_fds))
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(cdata[:len(cdata) - len(cdata) % 4])
                    fds.extend(a)
            if not data:
                for fd in fds:
                    os.close(fd)
                raise Closed()
            buf += data
        return bytes(buf), fds

    def recv(self, want_fds=2):
        try:
            head, fds = self._recv(8, want_fds)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed() from None
        plen, mid, _ = HEADER.unpack(head)
        body, more = self._recv(plen, 0) if plen else (b"", [])
        return mid, body, fds + more

    def rpc(self, mid, payload=b"", plen=None):
        """Sends one request; the Answer, or raises Closed."""
        try:
            self.send(mid, payload, plen)
        except (BrokenPipeError, ConnectionResetError):
            raise Closed() from None
        return Answer(*self.recv(max(WANT_FDS.get(mid, 0), 2)))

    def call(self, mid, **fields):
        """A well-formed request that must succeed: its decoded fields."""
        a = self.rpc(mid, w.encode_request(mid, fields))
        if a.mid != mid:
            raise OSError(a.errno, "%s: %s" % (w.MID_NAMES[mid], os.strerror(a.errno)))
        return a.fields()

    def mount(self):
        self.send(w.MOUNT)
        mid, body, fds = self.recv(2)
        for fd in fds:
            os.close(fd)
        assert mid == w.MOUNT, (mid, body)
        r = w.decode_response(w.MOUNT, body)
        self.root, self.supported = r["root"].control_fd, set(r["supported"])
        return self.root

    def walk(self, dir_fd, *names):
        """FDIDs of the walked components (all must exist)."""
        r = self.call(w.WALK, dir_fd=dir_fd, path=[os.fsencode(n) for n in names])
        assert r["status"] == w.WALK_SUCCESS and len(r["inodes"]) == len(names), r
        return [i.control_fd for i in r["inodes"]]

    def open_at(self, fd, flags):
        a = self.rpc(w.OPEN_AT, w.encode_request(w.OPEN_AT, dict(fd=fd, flags=flags)))
        if a.mid != w.OPEN_AT:
            raise OSError(a.errno, os.strerror(a.errno))
        return a.fields()["open_fd"]

    def channel_fds(self):
        """A Channel RPC: (data_offset, data_length, memfd, fdsock)."""
        self.send(w.CHANNEL)
        mid, body, fds = self.recv(2)
        if mid != w.CHANNEL or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise OSError(Answer(mid, body, []).errno, "Channel refused")
        r = w.decode_response(w.CHANNEL, body)
        return r["data_offset"], r["data_length"], fds[0], fds[1]

    def channel(self):
        """A connected, well-behaved channel whose `rpc` mirrors Raw.rpc."""
        from gofer.client import ChannelClient
        off, length, memfd, fdsock = self.channel_fds()
        try:
            ch = ChannelClient(memfd, off, length, fdsock)
        finally:
            os.close(memfd)
        ch.connect()
        return Chan(ch, length)


class Chan:
    """Raw.rpc over a flipcall channel (requests must fit its window)."""

    def __init__(self, ch, length):
        self.ch, self.cap = ch, length - 16 - 4

    def rpc(self, mid, payload=b"", plen=None):
        assert plen is None, "a channel has no length header to lie in"
        if len(payload) > self.cap:
            payload = payload[:self.cap]
        try:
            return Answer(*self.ch.call(mid, payload))
        except OSError as e:
            raise Closed() from e

    def close(self):
        self.ch.close()


# ------------------------------------------------------------ hostile windows

def futex_wake(addr):
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("long syscall(long number, ...);")
    libc = ffi.dlopen(None)
    nr = {"x86_64": 202, "aarch64": 98}[os.uname().machine]
    libc.syscall(ffi.cast("long", nr), ffi.cast("void *", addr), ffi.cast("int", 1),
                 ffi.cast("int", 1000))


class RawChannel:
    """The client end of a channel driven by hand over its window (layout in
    native/flipcall.h): any state word, any dataLen. Takes what a Channel
    RPC gave (`Raw.channel_fds()`): the window's offset and length in
    `memfd`, and the fdchannel `sock`; owns both FDs."""

    def __init__(self, off, length, memfd, sock):
        import cffi
        self.sock = sock
        self.mm = mmap.mmap(memfd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=off)
        os.close(memfd)
        self.ffi = cffi.FFI()
        self.addr = int(self.ffi.cast("uintptr_t", self.ffi.from_buffer(self.mm)))

    def state(self):
        return struct.unpack_from("<I", self.mm, 0)[0]

    def send(self, data_len, payload=b"", state=1):
        self.mm[16:16 + len(payload)] = payload
        struct.pack_into("<I", self.mm, 4, data_len)
        struct.pack_into("<I", self.mm, 0, state)
        futex_wake(self.addr)

    def wait_state(self, want, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state() == want:
                return True
            time.sleep(0.001)
        return False

    def handshake(self):
        self.send(3, b"{}\n")
        assert self.wait_state(0)

    def close(self):
        self.mm.close()
        os.close(self.sock)


# ------------------------------------------------------------ the server

def proc_figures(pid):
    """(open FDs, threads, RSS in KiB) of a process."""
    fds = len(os.listdir("/proc/%d/fd" % pid))
    threads = rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, threads, rss


class GoferServer:
    """`gofer serve DIR` (ours, under the seccomp filter as in production)
    or gVisor's fsgofer (refgofer=PATH) on a Unix socket, its log in a file."""

    def __init__(self, root, sock, log, refgofer=None, extra=()):
        self.root, self.socket, self.log_path = root, str(sock), log
        if refgofer:
            argv = [refgofer, "-root", str(root), "-socket", self.socket]
        else:
            argv = [sys.executable, "-m", "gofer", "serve", str(root), "--socket", self.socket,
                    "--seccomp=kill", *extra]
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited (%s): %s" % (self.proc.returncode, self.log()))
            try:
                # Ours says when it serves, its threads all started (the
                # socket listens a little earlier): figures taken from then on
                # are the baseline.
                if refgofer or "gofer: serving" in self.log():
                    Raw(self.socket).close()
                    break
                raise OSError("not serving yet")
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("server never listened: " + self.log())
                time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, mount=True):
        r = Raw(self.socket)
        if mount:
            r.mount()
        return r

    def figures(self):
        return proc_figures(self.pid)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_size(self):
        return os.path.getsize(self.log_path)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Terminates the server; its exit code before that (None: it was running)."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return rc
