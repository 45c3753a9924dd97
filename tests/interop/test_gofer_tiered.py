"""Issue 15: the gofer-tiered extension (`gofer serve --extension tiered`), a
read-through, write-back cache on a local directory, under gVisor's Go
client: in front of gofer-s3 on a real S3 server (SeaweedFS), and of memfs.

A read served from the cache is told apart from one served by the store by
changing the cached copy's bytes on the host: only a read from the cache
returns them.
"""
import errno
import os
import sys
from pathlib import Path

import pytest

from .gofer_env import Side

MIB = 1 << 20


@pytest.fixture
def tiered_serve(start_server, sock_dir, go_client, bucket, transport, tmp_path):
    """tiered_serve(cache=DIR, **env) -> Side on a fresh `gofer serve
    --extension tiered` in front of gofer-s3 on the test's bucket."""
    endpoint, name = bucket
    n = [0]

    def serve(cache=tmp_path / "cache", **env):
        e = dict(os.environ, GOFER_S3_ENDPOINT=endpoint, GOFER_S3_BUCKET=name, GOFER_S3_TTL="0",
                 GOFER_TIERED_CACHE_DIR=str(cache))
        e.update({k.upper(): str(v) for k, v in env.items()})
        sock = sock_dir / ("t-%d.sock" % n[0])
        n[0] += 1
        srv = start_server([sys.executable, "-m", "gofer", "serve", "--extension", "tiered",
                            "--socket", sock, "--seccomp=kill"], sock, env=e)
        gc = go_client(sock, channels=transport)
        side = Side("tiered", gc, gc.root_fd, None, None)
        side.proc, side.cache = srv, Path(cache)
        return side
    return serve


@pytest.fixture
def store(weed, bucket):
    return weed.client(), bucket[1]


def put(store, key, data):
    store[0].put_object(Bucket=store[1], Key=key, Body=data)


def body(store, key):
    return store[0].get_object(Bucket=store[1], Key=key)["Body"].read()


def cached(side):
    """{content: path} of the cache's published copies."""
    return {p.read_bytes(): p for p in side.cache.glob("*.data")}


def write_file(side, name, data, fd=None):
    r = side.call("open_create_at", fd=side.top if fd is None else fd, name=name,
                  flags=os.O_RDWR, mode=0o644)
    side.call("pwrite", fd=r["open_fd"], data=data, offset=0, timeout=120)
    return r


def test_read_through_and_validation(tiered_serve, store):
    t = tiered_serve()
    put(store, "d/f", b"version one")
    assert t.read_file("d/f") == b"version one"              # a miss: fetched
    path = cached(t)[b"version one"]
    path.write_bytes(b"VERSION ONE")                           # only the cache has this
    assert t.read_file("d/f") == b"VERSION ONE"               # a hit: not the store
    # Changed underneath (another size and ETag): fetched again on open.
    put(store, "d/f", b"version two!")
    assert t.read_file("d/f") == b"version two!"
    # A read-only open donates the cached copy's FD.
    r = t.open("d/f", os.O_RDONLY, read_host=7)
    assert r["host_data"] == b"version"
    # Listings, walks and errors are the backend's.
    assert t.names() == ["d"] and t.names("d") == ["f"]
    assert t.errno("walk", fd=t.top, name="nope") == errno.ENOENT


def test_write_back(tiered_serve, store):
    t = tiered_serve()
    data = os.urandom(2 * MIB + 5)
    r = write_file(t, "w.bin", data)
    assert body(store, "w.bin") == b""                        # not written back yet
    assert t.fstat(r["inode"]["fd"])["size"] == len(data)
    assert t.call("pread", fd=r["open_fd"], count=4, offset=MIB)["data"] == data[MIB:MIB + 4]
    t.call("sync", fd=r["open_fd"])                           # fsync writes back
    assert body(store, "w.bin") == data
    t.call("pwrite", fd=r["open_fd"], data=b"tail", offset=len(data))
    t.call("close", fd=r["open_fd"])                          # and so does the last close
    assert body(store, "w.bin") == data + b"tail"
    assert data + b"tail" in cached(t)                        # the written copy is cached
    # Partial overwrite of a cached file, then truncation by setstat.
    o = t.open("w.bin", os.O_RDWR)["open_fd"]
    t.call("pwrite", fd=o, data=b"HEAD", offset=0)
    t.call("close", fd=o)
    assert body(store, "w.bin")[:8] == b"HEAD" + data[4:8]
    r = t.call("setstat", fd=t.fd("w.bin"), mask=0x200, size=3)
    assert r["failure_errno"] == 0 and body(store, "w.bin") == b"HEA"
    assert t.read_file("w.bin") == b"HEA"
    # Rename and unlink go to the backend.
    t.call("rename_at", fd=t.top, old_name="w.bin", new_dir=t.top, new_name="v.bin")
    assert body(store, "v.bin") == b"HEA"
    t.call("unlink_at", fd=t.top, name="v.bin")
    assert t.names() == []


def test_two_mounts_share_the_cache(tiered_serve, store, tmp_path):
    a, b = tiered_serve(), tiered_serve()                     # two gofers, one cache dir
    a.call("close", fd=write_file(a, "f", b"from a")["open_fd"])
    assert b.read_file("f") == b"from a"
    b.call("close", fd=write_file(b, "g", b"g")["open_fd"])
    o = b.open("f", os.O_WRONLY | os.O_TRUNC)["open_fd"]
    b.call("pwrite", fd=o, data=b"from b, longer", offset=0)
    b.call("close", fd=o)
    assert a.read_file("f") == b"from b, longer"              # not a's stale copy
    # A cache of its own sees the same.
    c = tiered_serve(cache=tmp_path / "other")
    assert c.read_file("f") == b"from b, longer"


def test_eviction(tiered_serve, store):
    t = tiered_serve(gofer_tiered_size_limit=3 * MIB)
    files = {"f%d" % i: os.urandom(MIB) for i in range(5)}
    for k, v in files.items():
        put(store, k, v)
    for k, v in files.items():
        assert t.read_file(k) == v
    sizes = [p.stat().st_size for p in t.cache.glob("*.data")]
    assert sum(sizes) <= 3 * MIB and len(sizes) == 3
    assert set(cached(t)) == {files["f2"], files["f3"], files["f4"]}   # the oldest went
    assert t.read_file("f0") == files["f0"]                              # fetched again
    assert files["f0"] in cached(t) and files["f2"] not in cached(t)


def test_store_down_is_eio(tiered_serve, store, weed):
    t = tiered_serve(gofer_s3_timeout=1, gofer_s3_attempts=1)
    put(store, "f", b"data")
    assert t.read_file("f") == b"data"
    f = t.fd("f")
    weed.stop()
    try:
        # Validation needs the store: EIO, never a stale or hung answer.
        assert t.errno("open_at", fd=f, flags=os.O_RDONLY, timeout=60) == errno.EIO
    finally:
        weed.start()
    assert t.read_file("f") == b"data"


def test_over_memfs(start_server, sock_dir, go_client, tmp_path):
    """Any extension can be the backend: here memfs (which donates memfds)."""
    sock = sock_dir / "m.sock"
    env = dict(os.environ, GOFER_TIERED_CACHE_DIR=str(tmp_path / "c"),
               GOFER_TIERED_BACKEND="memfs")
    start_server([sys.executable, "-m", "gofer", "serve", "--extension", "tiered",
                  "--socket", sock, "--seccomp=kill"], sock, env=env)
    gc = go_client(sock)
    t = Side("tiered", gc, gc.root_fd, None, None)
    d = t.call("mkdir_at", fd=t.top, name="d", mode=0o755)["inode"]
    r = write_file(t, "f", b"over memfs", fd=d["fd"])
    t.call("close", fd=r["open_fd"])
    assert t.read_file("d/f") == b"over memfs"
    t.call("rename_at", fd=d["fd"], old_name="f", new_dir=t.top, new_name="g")
    assert t.read_file("g") == b"over memfs" and t.names() == ["d", "g"]
    o = t.open("g", os.O_WRONLY | os.O_TRUNC)["open_fd"]
    t.call("pwrite", fd=o, data=b"new", offset=0)
    t.call("close", fd=o)
    assert t.read_file("g") == b"new" and t.fstat(t.fd("g"))["size"] == 3
