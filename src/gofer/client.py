"""A Python LISAFS client, for tests, tools and benchmarks.

    with Client.connect("/run/gofer.sock") as c:
        root = c.root                       # Inode of the mount point
        status, inodes = c.walk(root.control_fd, [b"etc", b"hostname"])
        fd, host_fd = c.open_at(inodes[-1].control_fd, os.O_RDONLY)
        print(c.pread(fd, 0, 4096))

Every RPC is `call(mid, **fields)` underneath, with the message layouts of
`gofer._wire`; an error response raises `OSError` with the server's errno.
"""
import array
import errno
import os
import socket
import struct
import threading

from gofer import _wire
from gofer._client import ChannelClient
from gofer._wire import decode_response, encode_request

_HEADER = struct.Struct("<IHH")
# FDs the server may donate with each response (the Go client's wantFDs).
_WANT_FDS = {_wire.MOUNT: 1, _wire.CHANNEL: 2, _wire.OPEN_AT: 1, _wire.OPEN_CREATE_AT: 1,
             _wire.CONNECT: 1, _wire.CONNECT_WITH_CREDS: 1, _wire.BIND_AT: 1, _wire.ACCEPT: 1}


class Client:
    """A LISAFS client over one socket. Mounts on construction."""

    def __init__(self, sock):
        self.sock = sock
        self._lock = threading.Lock()
        self._channels = []          # all channels, for close()
        self._idle = []              # channels free for the next RPC
        self._idle_lock = threading.Lock()
        self.max_message_size = 1 << 20
        resp, fds = self.call_fds(_wire.MOUNT)
        self.root = resp["root"]
        self.mount_fd = fds[0] if fds else None
        self.max_message_size = resp["max_message_size"]
        self.supported = set(resp["supported"])

    @classmethod
    def connect(cls, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(os.fspath(path))
            return cls(s)
        except BaseException:
            s.close()
            raise

    def start_channels(self, count=2):
        """Asks for `count` flipcall channels (the server may grant fewer);
        later RPCs use an idle channel before the socket. Returns how many."""
        for _ in range(count):
            try:
                resp, fds = self.call_fds(_wire.CHANNEL)
            except OSError as e:
                if e.errno == errno.ENOMEM:          # the server's limit
                    break
                raise
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                raise OSError(errno.EIO, "Channel response without its 2 FDs")
            memfd, sock = fds
            try:
                ch = ChannelClient(memfd, resp["data_offset"], resp["data_length"], sock)
            except BaseException:
                os.close(sock)
                raise
            finally:
                os.close(memfd)
            self._channels.append(ch)
            ch.connect()
            with self._idle_lock:
                self._idle.append(ch)
        return len(self._channels)

    def close(self):
        if self.mount_fd is not None:
            os.close(self.mount_fd)
            self.mount_fd = None
        for ch in self._channels:
            ch.close()
        self._channels = self._idle = []
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ transport

    def raw(self, mid, payload=b"", want_fds=2, header=None):
        """Sends one message as given, over an idle channel if there is one
        (unless a raw socket `header` is given); returns (resp_mid, payload, fds)."""
        if header is None and self._idle:
            with self._idle_lock:
                ch = self._idle.pop() if self._idle else None
            if ch is not None:
                res = ch.call(mid, payload)      # a broken channel is not reused
                with self._idle_lock:
                    self._idle.append(ch)
                return res
        with self._lock:
            hdr = header if header is not None else _HEADER.pack(len(payload), mid, 0)
            self.sock.sendall(hdr + payload)
            head, fds = self._recv(8, want_fds)
            plen, rmid, _ = _HEADER.unpack(head)
            body, more = self._recv(plen, 0) if plen else (b"", [])
            return rmid, body, fds + more

    def _recv(self, n, want_fds):
        buf, fds = bytearray(), []
        ctl = socket.CMSG_SPACE(max(want_fds, 1) * 4)
        while len(buf) < n:
            data, anc, flags, _ = self.sock.recvmsg(n - len(buf), ctl if not buf else 0)
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(cdata[: len(cdata) - len(cdata) % 4])
                    fds.extend(a)
            if not data:
                for fd in fds:
                    os.close(fd)
                raise ConnectionResetError("gofer closed the connection")
            buf += data
        return bytes(buf), fds

    def call_fds(self, mid, **fields):
        """One RPC: returns (response fields, donated FDs)."""
        payload = encode_request(mid, fields)
        if len(payload) > self.max_message_size:
            raise OSError(5, "request exceeds the max message size")
        rmid, body, fds = self.raw(mid, payload, _WANT_FDS.get(mid, 0))
        if rmid == _wire.ERROR:
            for fd in fds:
                os.close(fd)
            err = decode_response(_wire.ERROR, body)["errno"]
            raise OSError(err, os.strerror(err))
        if rmid != mid:
            raise OSError(22, "response MID %d for request MID %d" % (rmid, mid))
        return decode_response(mid, body), fds

    def call(self, mid, **fields):
        resp, fds = self.call_fds(mid, **fields)
        for fd in fds:
            os.close(fd)
        return resp

    # ------------------------------------------------------------ RPCs

    def fstat(self, fd):
        return self.call(_wire.FSTAT, fd=fd)["stat"]

    def walk(self, dir_fd, path):
        """Returns (status, [Inode]) as the server answered."""
        r = self.call(_wire.WALK, dir_fd=dir_fd, path=list(path))
        return r["status"], r["inodes"]

    def walk_stat(self, dir_fd, path):
        return self.call(_wire.WALK_STAT, dir_fd=dir_fd, path=list(path))["stats"]

    def open_at(self, fd, flags):
        """Returns (open FDID, donated host FD or None)."""
        r, fds = self.call_fds(_wire.OPEN_AT, fd=fd, flags=flags)
        return r["open_fd"], (fds[0] if fds else None)

    def pread(self, fd, offset, count):
        return self.call(_wire.PREAD, fd=fd, offset=offset, count=count)["data"]

    def pwrite(self, fd, offset, data):
        return self.call(_wire.PWRITE, fd=fd, offset=offset, data=data)["count"]

    def getdents64(self, fd, count):
        """One batch of entries; a negative count restarts from the top."""
        return self.call(_wire.GETDENTS64, dir_fd=fd, count=count)["dirents"]

    def close_fds(self, *fds):
        self.call(_wire.CLOSE, fds=list(fds))
