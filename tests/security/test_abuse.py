"""Channel and resource abuse: broken flipcall windows, requests after
shutdown, more channels than allowed, donated FDs never collected; FD and
thread growth per connection, many connections, huge reads, deep walks and
directory floods. Each ends with the server serving others and its FDs and
threads back where they were (conftest.World.check and `back_to`)."""
import errno
import os
import struct
import time

import pytest

from gofer import _wire as w
from security.rawclient import RawChannel, sstr, u64

CREATE = struct.Struct("<QIIHHI")


def back_to(server, before, timeout=10):
    """The server's FD and thread counts return to `before` (RSS may not:
    the allocator keeps freed arenas)."""
    deadline = time.monotonic() + timeout
    while True:
        now = server.figures()
        if now[:2] <= before[:2] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert now[:2] <= before[:2], (now, before)


def fstat_ok(c):
    a = c.rpc(w.FSTAT, u64(c.root))
    assert a.mid == w.FSTAT, a


# ---------------------------------------------------------------- channels

@pytest.mark.parametrize("attack", ["state-garbage", "state-client", "len-beyond-window",
                                    "len-max", "len-below-header", "len-zero",
                                    "bad-handshake", "no-handshake", "shutdown-then-request"])
def test_hostile_window(world, attack):
    before = world.server.figures()
    c = world.connect()
    ch = RawChannel(*c.channel_fds())
    fstat = struct.pack("<HBBQ", w.FSTAT, 0, 0, c.root)
    if attack == "bad-handshake":
        ch.send(5, b"nope!")
    elif attack == "no-handshake":
        pass                                    # never connects; the client goes away
    else:
        ch.handshake()
        if attack == "state-garbage":
            ch.send(len(fstat), fstat, state=0xdeadbeef)
        elif attack == "state-client":
            ch.send(len(fstat), fstat, state=0)
        elif attack == "len-beyond-window":
            ch.send(len(ch.mm), fstat)
        elif attack == "len-max":
            ch.send(0xffffffff, fstat)
        elif attack == "len-below-header":
            ch.send(2, fstat)
        elif attack == "len-zero":
            ch.send(0, fstat)
        else:
            ch.send(4, struct.pack("<HBB", 0, 0, 0), state=2)      # shut down...
            time.sleep(0.05)
            ch.send(len(fstat), fstat)                             # ...then ask
    time.sleep(0.1)
    fstat_ok(c)                                 # the socket still answers
    ch.close()
    c.close()
    world.conns.remove(c)
    back_to(world.server, before)


def test_more_channels_than_allowed(world):
    c = world.connect()
    granted = []
    refused = 0
    for _ in range(50):
        try:
            granted.append(c.channel())
        except OSError as e:
            assert e.errno == errno.ENOMEM
            refused += 1
    assert 2 <= len(granted) <= 4 and refused == 50 - len(granted)
    for ch in granted:
        a = ch.rpc(w.FSTAT, u64(c.root))
        assert a.mid == w.FSTAT
        ch.close()
    fstat_ok(c)


def test_channel_fds_never_collected(world):
    """OpenAt over a channel donates the host FD through the channel's
    fdchannel; a client that never receives them costs the server nothing
    once it goes away."""
    before = world.server.figures()
    c = world.connect()
    ch = RawChannel(*c.channel_fds())
    ch.handshake()
    file_ = c.walk(c.top, "file")[0]
    for _ in range(100):
        req = struct.pack("<HBBQII", w.OPEN_AT, 0, 0, file_, os.O_RDONLY, 0)
        ch.send(len(req), req)
        assert ch.wait_state(0)
        assert struct.unpack_from("<H", ch.mm, 16)[0] == w.OPEN_AT
    fstat_ok(c)
    ch.close()
    c.close()
    world.conns.remove(c)
    back_to(world.server, before)


# ---------------------------------------------------------------- resources

def test_fds_per_connection_are_capped_and_released(world):
    before = world.server.figures()
    c = world.connect()
    os.makedirs(world.dir / "/".join(["d"] * 250))
    walk = u64(c.top) + struct.pack("<H", 250) + sstr(b"d") * 250      # 250 FDIDs a request
    n = 0
    while True:
        a = c.rpc(w.WALK, walk)
        if a.mid == w.ERROR:
            assert a.errno == errno.EMFILE, a
            break
        n += 250
        assert n < 1 << 20
    # At its cap, this client leaves the others their share.
    other = world.connect()
    fstat_ok(other)
    other.walk(other.top, "dir", "inner")
    print("FDIDs one connection may hold: %d" % n)
    for x in (c, other):
        x.close()
        world.conns.remove(x)
    back_to(world.server, before)


def test_many_connections(world):
    before = world.server.figures()
    conns = [world.server.connect() for _ in range(150)]
    peak = world.server.figures()
    for c in conns:
        fstat_ok(c)
    for c in conns:
        c.close()
    back_to(world.server, before)
    print("150 connections: FDs %d -> %d, threads %d -> %d, RSS %d -> %d KiB"
          % (before[0], peak[0], before[1], peak[1], before[2], peak[2]))


@pytest.mark.parametrize("count", [0, 1, 2093048, 2093049, 1 << 31, 0xffffffff])
def test_huge_reads(world, count):
    c = world.connect()
    (world.dir / "big").write_bytes(b"x" * (3 << 20))
    o = c.open_at(c.walk(c.top, "big")[0], os.O_RDONLY)
    a = c.rpc(w.PREAD, struct.pack("<QQII", 0, o, count, 0))
    if count + 8 <= 2093056:
        assert len(a.fields()["data"]) == count
    else:
        assert a.errno in (errno.ENOBUFS, errno.EIO), a
    fstat_ok(c)


def test_deep_walks(world):
    c = world.connect()
    # A walk naming 65535 components: refused or answered, never overrun.
    names = [b"dir"] + [b"x"] * 4000
    a = c.rpc(w.WALK, u64(c.top) + struct.pack("<H", 0xffff) + b"".join(map(sstr, names)))
    assert a.well_formed(w.WALK)
    a = c.rpc(w.WALK, u64(c.top) + struct.pack("<H", len(names)) + b"".join(map(sstr, names)))
    assert a.well_formed(w.WALK)
    # A real directory 300 deep, walked in one request and step by step.
    p = world.dir
    for _ in range(300):
        p = p / "d"
    os.makedirs(p)
    a = c.rpc(w.WALK, u64(c.top) + struct.pack("<H", 300) + sstr(b"d") * 300)
    r = a.fields()
    assert r["status"] == w.WALK_SUCCESS and len(r["inodes"]) == 300
    a = c.rpc(w.WALK_STAT, u64(c.top) + struct.pack("<H", 300) + sstr(b"d") * 300)
    assert len(a.fields()["stats"]) == 300


def test_directory_floods(world):
    before = world.server.figures()
    c = world.connect()
    flood = world.dir / "flood"
    flood.mkdir()
    for i in range(3000):
        (flood / ("%05d-%s" % (i, "n" * 200))).touch()
    fl = c.walk(c.top, "flood")[0]
    # Entries created through the gofer too.
    for i in range(300):
        a = c.rpc(w.MKDIR_AT, CREATE.pack(fl, 0, 0, 0o755, 0, 0) + sstr(b"m%d" % i))
        assert a.mid == w.MKDIR_AT, a
        c.rpc(w.CLOSE, struct.pack("<HQ", 1, a.fields()["child"].control_fd))
    o = c.open_at(fl, os.O_RDONLY)
    names = set()
    count = -(1 << 20)                       # a batch bigger than any message
    while True:
        a = c.rpc(w.GETDENTS64, struct.pack("<QiI", o, count, 0))
        assert a.mid == w.GETDENTS64, a
        ents = a.fields()["dirents"]
        if not ents:
            break
        names.update(e.name for e in ents)
        count = abs(count)
    assert len(names - {b".", b".."}) == 3000 + 300
    c.close()
    world.conns.remove(c)
    back_to(world.server, before)
