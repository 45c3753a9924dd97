"""The two fuzz targets, one input at a time (tests/fuzz/run.py drives them
under atheris; test_fuzz_corpus.py replays the corpus through them).

`decoders(data)`: byte 0 picks a MID (0-35), the rest is its request
payload. Decoding returns the fields or raises ProtocolError, nothing
else; what decodes re-encodes to bytes that decode the same.

`session(data)`: a live connection to a fresh in-process server on a
scratch directory, over the socket (byte 0 even) or a channel (odd), fed
the messages the rest of the input spells: [mid % 36][fd selector][length]
[payload]. A selector below 0x80 writes a live FDID (one the fixture made
or one a response handed out) into the payload's FDID fields. Every answer
is an errno or parses as its MID's response; the server keeps serving;
nothing outside the served directory changes.
"""
import os
import shutil
import socket
import struct
import tempfile
from pathlib import Path

from gofer import _wire as w
from gofer._server import Server
from gofer.client import Client
from gofer.fsgofer import HostConnection
from gofer.service import Service

# Byte offsets of FDID fields (default: the first 8 bytes).
FD_FIELDS = {w.MOUNT: (), w.CHANNEL: (), w.PREAD: (8,), w.PWRITE: (8,), w.CLOSE: (2,),
             w.FSYNC: (2,), w.RENAME_AT: (0, 8), w.RENAME_AT2: (0, 8), w.LINK_AT: (0, 8)}
# FAllocate of a random length on a real file really reserves that much disk.
NO_LIVE_FD = {w.FALLOCATE}
SECRET = b"outside the mount\n"


def decoders(data):
    if not data:
        return
    mid = data[0] % 36
    try:
        req = w.decode_request(mid, data[1:])
    except w.ProtocolError:
        return
    again = w.encode_request(mid, req)
    assert w.decode_request(mid, again) == req, (mid, data)


class Scratch:
    """base/root (served) and base/outside; one Service for all inputs."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="gofer-fuzz-"))
        self.root = self.base / "root"
        self.outside = self.base / "outside"
        self.outside.mkdir()
        (self.outside / "secret").write_bytes(SECRET)
        self.service = Service(Server())
        self.inputs = 0
        self.reset()

    def reset(self):
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()
        (self.root / "file").write_bytes(b"data" * 100)
        (self.root / "dir").mkdir()
        (self.root / "dir" / "inner").write_bytes(b"inner")
        (self.root / "link").symlink_to("file")
        (self.root / "escape").symlink_to(self.outside)

    def check_outside(self):
        assert os.listdir(self.outside) == ["secret"]
        assert (self.outside / "secret").read_bytes() == SECRET

    def close(self):
        self.service.stop()
        shutil.rmtree(self.base, ignore_errors=True)


_scratch = None


def scratch():
    global _scratch
    if _scratch is None:
        _scratch = Scratch()
    return _scratch


def close():
    """Stops the server of `session` and removes its scratch directory."""
    global _scratch
    if _scratch is not None:
        _scratch.close()
        _scratch = None


def live_fds(resp):
    for v in resp.values():
        if isinstance(v, w.Inode):
            yield v.control_fd
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, w.Inode):
                    yield x.control_fd
    for k in ("open_fd", "new_fd", "bound_socket_fd"):
        if k in resp:
            yield resp[k]


def well_formed(mid, rmid, body):
    if rmid == w.ERROR:
        assert len(body) == 4 and struct.unpack("<I", body)[0] > 0, (mid, body)
        return None
    assert rmid == mid, (mid, rmid)
    return w.decode_response(mid, body)


def session(data):
    if not data:
        return
    s = scratch()
    s.inputs += 1
    if s.inputs % 500 == 0:          # the inputs' creations pile up: start afresh
        s.reset()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    s.service.start(theirs.detach(), HostConnection(s.root))
    c = Client(ours)
    try:
        if data[0] & 1:
            c.start_channels(1)
        fds = [c.root.control_fd]
        for name in (b"file", b"dir", b"link", b"escape"):
            try:
                _, inodes = c.walk(c.root.control_fd, [name])
                fds += [i.control_fd for i in inodes]
            except OSError:
                pass                    # an earlier input removed it
        i = 1
        while i + 3 <= len(data):
            mid, sel, n = data[i] % 36, data[i + 1], data[i + 2]
            payload = bytearray(data[i + 3:i + 3 + n])
            i += 3 + n
            if sel < 0x80 and mid not in NO_LIVE_FD:
                for at in FD_FIELDS.get(mid, (0,)):
                    if len(payload) >= at + 8:
                        payload[at:at + 8] = struct.pack("<Q", fds[(sel + at) % len(fds)])
            rmid, body, got = c.raw(mid, bytes(payload))
            for fd in got:
                os.close(fd)
            resp = well_formed(mid, rmid, body)
            if resp:
                fds += list(live_fds(resp))
        # Still serving this client.
        root = c.call(w.MOUNT)["root"]
        assert c.fstat(root.control_fd).ino == os.stat(s.root).st_ino
    finally:
        c.close()
    s.check_outside()
