"""Malformed and hostile messages for every MID, over the socket and over a
channel, against `gofer serve` on a scratch directory.

Each request is answered with an errno or a response that parses as its
MID's layout, or the connection is closed; after each test the server
serves another client, nothing outside the mount changed and the log grew
by at most a few KiB (conftest.World.check).
"""
import errno
import os
import struct

import pytest

from gofer import _wire as w
from security.rawclient import NO_FD, Closed, sstr, u64
from test_wire import CASES

SAMPLES = {case[0]: case[2] for case in CASES}
# Where a request holds FDIDs (byte offsets into the sample).
FD_FIELDS = {w.MOUNT: (), w.CHANNEL: (), w.PREAD: (8,), w.PWRITE: (8,), w.CLOSE: (2,),
             w.FSYNC: (2,), w.RENAME_AT: (0, 8), w.RENAME_AT2: (0, 8), w.LINK_AT: (0, 8)}
UNKNOWN_MIDS = [0, 34, 35, 99, 0x7fff, 0xffff]
TRANSPORTS = ["socket", "channel"]
MAX_MSG = 2093056


def fd_kinds(world, c):
    """FDIDs of every kind a request may name, made on connection `c`."""
    d = world.dir
    file_ = c.walk(c.top, "file")[0]
    dir_ = c.walk(c.top, "dir")[0]
    link = c.walk(c.top, "link")[0]
    escape = c.walk(c.top, "escape")[0]
    hole = c.walk(c.top, "hole")[0]
    (d / "doomed").write_bytes(b"doomed")
    (d / "gone").mkdir()
    (d / "moving").mkdir()
    (d / "removed").mkdir()
    doomed = c.walk(c.top, "doomed")[0]
    gone = c.walk(c.top, "gone")[0]
    moved = c.walk(c.top, "moving")[0]
    os.unlink(d / "doomed")                 # deleted on the host
    os.rmdir(d / "gone")
    os.rename(d / "moving", d / "empty" / "moved")    # renamed away on the host
    rpc_deleted = c.walk(c.top, "dir", "inner")[1]
    a = c.rpc(w.UNLINK_AT, u64(dir_) + struct.pack("<I", 0) + sstr(b"inner"))
    assert a.mid == w.UNLINK_AT, a                    # deleted through the gofer
    rpc_deleted_dir = c.walk(c.top, "removed")[0]
    a = c.rpc(w.UNLINK_AT, u64(c.top) + struct.pack("<I", 0x200) + sstr(b"removed"))
    assert a.mid == w.UNLINK_AT, a
    kinds = dict(root=c.root, top=c.top, file=file_, dir=dir_, link=link, escape=escape,
                 hole=hole, host_deleted=doomed, host_deleted_dir=gone, renamed_dir=moved,
                 rpc_deleted=rpc_deleted, rpc_deleted_dir=rpc_deleted_dir,
                 open_file=c.open_at(c.walk(c.top, "file")[0], os.O_RDWR),
                 open_dir=c.open_at(c.walk(c.top, "empty")[0], os.O_RDONLY),
                 unknown=NO_FD, zero=0, max=(1 << 64) - 1)
    closed = c.walk(c.top, "file")[0]
    assert c.rpc(w.CLOSE, struct.pack("<HQ", 1, closed)).mid == w.CLOSE
    kinds["closed"] = closed
    return kinds


def with_fd(sample, at, fd):
    return sample[:at] + u64(fd) + sample[at + 8:]


def field_offsets(mid):
    return FD_FIELDS.get(mid, (0,))


def hostile_payloads(mid, kinds):
    """(label, payload) of every attack on one MID."""
    sample = SAMPLES.get(mid, b"\x00" * 16)
    for at in field_offsets(mid):
        sample = with_fd(sample, at, kinds["top"])
    yield "empty", b""
    for cut in range(1, len(sample)):
        yield "cut%d" % cut, sample[:cut]
    for at in range(0, len(sample) - 1, 2):         # every u16 a length or count could be
        yield "u16@%d" % at, sample[:at] + b"\xff\xff" + sample[at + 2:]
    for at in range(0, len(sample) - 3, 4):
        yield "u32@%d" % at, sample[:at] + b"\xff\xff\xff\xff" + sample[at + 4:]
    yield "trailing", sample + os.urandom(4096)
    yield "huge", sample + b"\x00" * (MAX_MSG - len(sample))
    for at in field_offsets(mid):
        for name, fd in kinds.items():
            yield "%s@%d" % (name, at), with_fd(sample, at, fd)


def connection(world, transport):
    c = world.connect()
    if transport == "channel":
        ch = c.channel()
        world.conns.append(ch)
        return c, ch
    return c, c


def run_attacks(mid, rpc, payloads):
    """Every answer is well-formed; returns how many were errors."""
    errors = 0
    for label, payload in payloads:
        try:
            a = rpc(mid, payload)
        except Closed:
            return errors           # a clean close is an answer too (and ends this stream)
        assert a.well_formed(mid), (label, a)
        errors += a.mid == w.ERROR
        if mid in UNKNOWN_MIDS or mid > 33:
            assert a.errno == errno.EOPNOTSUPP, (label, a)
    return errors


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mid", list(range(1, 34)) + UNKNOWN_MIDS,
                         ids=lambda m: w.MID_NAMES[m] if m < len(w.MID_NAMES) else "mid%d" % m)
def test_hostile_requests(world, mid, transport):
    c, via = connection(world, transport)
    kinds = fd_kinds(world, c)
    payloads = list(hostile_payloads(mid, kinds))
    errors = run_attacks(mid, via.rpc, payloads)
    if mid != w.MOUNT:                # (Mount has no request fields to get wrong)
        assert errors > 0             # the attacks were refused, not all served
    # The connection that took the attacks still works (the attacks may
    # have closed its FDs, so mount afresh).
    a = via.rpc(w.MOUNT, b"")
    assert a.mid == w.MOUNT, a


@pytest.mark.parametrize("mid", list(range(0, 34)) + [99])
def test_before_mount(world, mid):
    supported = world.connect().supported
    c = world.connect(mount=False)
    sample = SAMPLES.get(mid, b"")
    if mid != w.MOUNT:
        a = c.rpc(mid, sample)
        assert a.errno == (errno.EINVAL if mid in supported else errno.EOPNOTSUPP), a
    assert c.mount()                          # and Mount still comes first


@pytest.mark.parametrize("plen", [MAX_MSG + 1, 1 << 24, 0xffffffff])
def test_oversize_length_is_refused_or_closed(world, plen):
    # The server must not allocate what the header claims: it reads and
    # drops up to `plen` bytes, then refuses; we send a few MiB and stop.
    c = world.connect()
    body = b"\x00" * min(plen, 4 << 20)
    if plen == len(body):
        c.send(w.FSTAT, body, plen=plen)
        mid, resp, _ = c.recv()
        assert (mid, struct.unpack("<I", resp)[0]) == (w.ERROR, errno.EIO)
        assert c.rpc(w.FSTAT, u64(c.root)).mid == w.FSTAT
    else:
        c.send(w.FSTAT, body, plen=plen)
        c.sock.shutdown(1)          # the rest never comes: the server sees EOF
        with pytest.raises(Closed):
            c.recv()


def test_header_promising_more_then_eof(world):
    c = world.connect()
    c.send(w.WALK, u64(c.top), plen=100)
    c.sock.shutdown(1)
    with pytest.raises(Closed):
        c.recv()


def test_fds_sent_by_the_client_are_dropped(world):
    """A client that attaches FDs to requests: the server closes them."""
    c = world.connect()
    before = world.server.figures()[0]
    r, wr = os.pipe()
    try:
        for _ in range(200):
            msg = struct.pack("<IHH", 8, w.FSTAT, 0) + u64(c.root)
            c.sock.sendmsg([msg], [(1, 1, struct.pack("ii", r, wr))])   # SOL_SOCKET, SCM_RIGHTS
            assert c.recv()[0] == w.FSTAT
    finally:
        os.close(r)
        os.close(wr)
    assert world.server.figures()[0] <= before
