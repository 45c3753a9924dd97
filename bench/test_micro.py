"""Microbenchmarks (pytest-benchmark). Not part of the test suite (testpaths
is tests/); run them with

    python -m pytest bench/test_micro.py --benchmark-only [-k fstat]

Groups:
  codec     encode/decode of every request and response layout in gofer._wire
  dispatch  one FStat/Walk round trip through an in-process Service over a
            socketpair, stock host backend vs the pure-Python memfs extension,
            next to a bare socketpair echo (the transport floor in-process)
  channel   the same RPCs over a flipcall channel (Client.start_channels)

Client and server share one process (and one GIL) here, so absolute round
trips are higher than across processes; compare rows within a group.
bench/side_by_side.py measures the cross-process numbers against gVisor.
"""
import os
import socket
import threading

import pytest

pytest.importorskip("pytest_benchmark")

from gofer import _wire as w  # noqa: E402
from gofer._server import ConnectionOpts, Server  # noqa: E402
from gofer._wire import Dirent, Inode, Statx  # noqa: E402
from gofer.client import Client  # noqa: E402
from gofer.fsgofer import HostConnection  # noqa: E402
from gofer.service import Service  # noqa: E402

CODEC = dict(max_time=0.1, min_rounds=20, warmup=False)

# ------------------------------------------------------------------ codec

# Field kinds, in the order of gofer._wire's Kind enum.
(U8, U16, U32, U64, I32, I64, PAD16, PAD32, STR, STRS, FDS, STATX, INODE, INODES, STATXS,
 MIDS, DIRENTS, DATA32, DATA64) = range(19)


def _statx(seed=1):
    return Statx(mask=0x7ff, blksize=4096, nlink=1, uid=1000, gid=1000, mode=0o100644,
                 ino=1000 + seed, size=4096, blocks=8, atime_sec=1, mtime_sec=2, ctime_sec=3,
                 dev_major=8, dev_minor=1)


SAMPLES = {
    U8: 1, U16: 0o644, U32: 0x7ff, U64: 42, I32: -65536, I64: 4096,
    STR: b"component", STRS: [b"a", b"b", b"c"], FDS: [3, 4, 5],
    STATX: _statx(), INODE: Inode(7, _statx()), INODES: [Inode(i, _statx(i)) for i in (7, 8, 9)],
    STATXS: [_statx(i) for i in range(3)], MIDS: list(range(34)),
    DIRENTS: [Dirent(i, 1, 8, i + 1, 8, b"f%05d" % i) for i in range(64)],
    DATA32: bytes(4096), DATA64: bytes(4096),
}


def _message(layout):
    return {name: SAMPLES[kind] for name, kind in layout if name is not None}


CODEC_CASES = [(mid, direction) for direction in ("request", "response")
               for mid in sorted((w.REQUESTS if direction == "request" else w.RESPONSES))]


def _ids(case):
    return "%s-%s" % (w.MID_NAMES[case[0]], case[1])


@pytest.mark.benchmark(group="codec-encode", **CODEC)
@pytest.mark.parametrize("case", CODEC_CASES, ids=_ids)
def test_encode(benchmark, case):
    mid, direction = case
    if direction == "request":
        msg, enc = _message(w.REQUESTS[mid]), w.encode_request
    else:
        msg, enc = _message(w.RESPONSES[mid]), w.encode_response
    out = benchmark(enc, mid, msg)
    assert isinstance(out, (bytes, bytearray))


@pytest.mark.benchmark(group="codec-decode", **CODEC)
@pytest.mark.parametrize("case", CODEC_CASES, ids=_ids)
def test_decode(benchmark, case):
    mid, direction = case
    if direction == "request":
        data, dec = w.encode_request(mid, _message(w.REQUESTS[mid])), w.decode_request
    else:
        data, dec = w.encode_response(mid, _message(w.RESPONSES[mid])), w.decode_response
    out = benchmark(dec, mid, data)
    assert isinstance(out, dict)


# ------------------------------------------------------------------ in-process RPCs

@pytest.fixture(scope="module")
def service():
    svc = Service(Server())
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def host_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("micro") / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c").write_bytes(os.urandom(4096))
    return root


def _memfs_impl():
    memfs = pytest.importorskip("gofer_memfs", reason="pip install ./examples/memfs")
    return memfs.MemConnection()


def _connect(service, backend, host_tree):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if backend == "stock":
        impl = HostConnection(str(host_tree))
        opts = ConnectionOpts(set_attr_on_deleted=True, allocate_on_deleted=True,
                              open_on_deleted=True)
    else:
        impl, opts = _memfs_impl(), ConnectionOpts()
    service.start(theirs.detach(), impl, opts)
    c = Client(ours)
    if backend == "memfs":       # the same a/b/c the host tree has
        d = c.root.control_fd
        for name in (b"a", b"b"):
            child = c.call(w.MKDIR_AT, dir_fd=d, uid=0, gid=0, mode=0o40755, name=name)["child"]
            d = child.control_fd
        c.call(w.OPEN_CREATE_AT, dir_fd=d, uid=0, gid=0, mode=0o100644, flags=os.O_RDWR,
               name=b"c")
    return c


@pytest.fixture(scope="module", params=["stock", "memfs"])
def backend(request):
    return request.param


@pytest.fixture(params=["socket", "channel"])
def client(request, service, backend, host_tree):
    c = _connect(service, backend, host_tree)
    if request.param == "channel":
        if c.start_channels(1) < 1:
            pytest.fail("the server granted no channel")
    status, inodes = c.walk(c.root.control_fd, [b"a", b"b", b"c"])
    assert status == w.WALK_SUCCESS
    c.file_fd = inodes[-1].control_fd
    c.transport = request.param
    yield c
    c.close()


def _group(client, what):
    return "%s-%s" % ("channel" if client.transport == "channel" else "dispatch", what)


def test_fstat_round_trip(benchmark, client):
    """Raw FStat through the client transport: encode once, no decode."""
    benchmark.group = _group(client, "fstat")
    payload = w.encode_request(w.FSTAT, {"fd": client.file_fd})
    mid, _, _ = client.raw(w.FSTAT, payload, 0)
    assert mid == w.FSTAT
    benchmark.pedantic(client.raw, (w.FSTAT, payload, 0), rounds=3000, warmup_rounds=200)


def test_fstat_client_call(benchmark, client):
    """Client.fstat: the full Python client path (encode + decode a Statx)."""
    benchmark.group = _group(client, "fstat-client")
    benchmark.pedantic(client.fstat, (client.file_fd,), rounds=3000, warmup_rounds=200)


def test_walkstat3_round_trip(benchmark, client):
    benchmark.group = _group(client, "walkstat3")
    payload = w.encode_request(w.WALK_STAT, {"dir_fd": client.root.control_fd,
                                             "path": [b"a", b"b", b"c"]})
    mid, _, _ = client.raw(w.WALK_STAT, payload, 0)
    assert mid == w.WALK_STAT
    benchmark.pedantic(client.raw, (w.WALK_STAT, payload, 0), rounds=3000, warmup_rounds=200)


def test_socketpair_echo_baseline(benchmark):
    """The in-process floor: a Python thread echoing 8+8 bytes over a socketpair."""
    benchmark.group = "dispatch-floor"
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def echo():
        while True:
            data = b.recv(64)
            if not data:
                return
            b.sendall(data)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    msg = bytes(16)

    def rt():
        a.sendall(msg)
        return a.recv(64)

    try:
        benchmark.pedantic(rt, rounds=3000, warmup_rounds=200)
    finally:
        a.close()
        t.join(5)
        b.close()
