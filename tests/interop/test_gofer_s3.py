"""Issue 15: the gofer-s3 extension (`gofer serve --extension s3`) under
gVisor's Go client, against a real S3 server (SeaweedFS, tests/backends):
objects as files, key prefixes as directories, ranged reads, buffered
writes uploaded on close (multipart above the threshold), rename as
copy+delete, the stat cache's TTL, and a store that goes away and comes back.

What the client sees is checked against what the store holds (boto3).
"""
import errno
import hashlib
import os
import stat
import subprocess
import sys

import pytest

from .gofer_env import Side

MIB = 1 << 20


@pytest.fixture
def s3_serve(start_server, sock_dir, go_client, bucket, transport):
    """s3_serve(**settings) -> Side on a fresh `gofer serve --extension s3`
    for the test's bucket (settings: GOFER_S3_<NAME> values)."""
    endpoint, name = bucket
    n = [0]

    def serve(**settings):
        env = dict(os.environ, GOFER_S3_ENDPOINT=endpoint, GOFER_S3_BUCKET=name,
                   GOFER_S3_TTL="0")
        env.update({"GOFER_S3_" + k.upper(): str(v) for k, v in settings.items()})
        sock = sock_dir / ("s3-%d.sock" % n[0])
        n[0] += 1
        srv = start_server([sys.executable, "-m", "gofer", "serve", "--extension", "s3",
                            "--socket", sock, "--seccomp=kill"], sock, env=env)
        gc = go_client(sock, channels=transport)
        side = Side("s3", gc, gc.root_fd, None, None)
        side.proc = srv
        return side
    return serve


@pytest.fixture
def store(weed, bucket):
    """(boto3 client, bucket name) to look at the store directly."""
    return weed.client(), bucket[1]


def objects(store):
    client, name = store
    r = client.list_objects_v2(Bucket=name)
    return {o["Key"]: o for o in r.get("Contents", [])}


def body(store, key):
    client, name = store
    return client.get_object(Bucket=name, Key=key)["Body"].read()


def create(side, fd, name, data, flags=os.O_RDWR):
    r = side.call("open_create_at", fd=fd, name=name, flags=flags, mode=0o644)
    if data:
        assert side.call("pwrite", fd=r["open_fd"], data=data, offset=0,
                         timeout=120)["count"] == len(data)
    return r


def test_files_and_directories(s3_serve, store):
    s3 = s3_serve()
    root = s3.top
    assert stat.S_ISDIR(s3.fstat(root)["mode"])
    data = os.urandom(3 * MIB + 123)            # over the max message size: chunked
    r = create(s3, root, "big.bin", data)
    # Buffered locally until the close: the store has the empty new object,
    # the client already sees the written size.
    assert body(store, "big.bin") == b""
    assert s3.fstat(r["inode"]["fd"])["size"] == len(data)
    assert s3.call("pread", fd=r["open_fd"], count=10, offset=5)["data"] == data[5:15]
    s3.call("close", fd=r["open_fd"])
    assert body(store, "big.bin") == data
    # Ranged reads of what is in the store.
    ofd = s3.open("big.bin")["open_fd"]
    assert s3.call("pread", fd=ofd, count=1000, offset=2 * MIB)["data"] == \
        data[2 * MIB:2 * MIB + 1000]
    assert s3.call("pread", fd=ofd, count=1000, offset=len(data) - 10)["data"] == data[-10:]
    assert s3.call("pread", fd=ofd, count=10, offset=len(data)).get("eof") is True
    assert hashlib.md5(s3.read_all(ofd)).digest() == hashlib.md5(data).digest()

    d = s3.call("mkdir_at", fd=root, name="dir", mode=0o755)["inode"]
    assert stat.S_ISDIR(d["stat"]["mode"]) and "dir/" in objects(store)
    e = s3.call("mkdir_at", fd=d["fd"], name="deeper", mode=0o755)["inode"]
    s3.call("close", fd=create(s3, e["fd"], "leaf", b"leaf data")["open_fd"])
    assert body(store, "dir/deeper/leaf") == b"leaf data"
    # An object put by someone else, under a directory with no marker.
    store[0].put_object(Bucket=store[1], Key="other/x/y.txt", Body=b"from outside")
    assert s3.names() == ["big.bin", "dir", "other"]
    assert s3.read_file("other/x/y.txt") == b"from outside"
    assert stat.S_ISDIR(s3.walk("other/x")["stat"]["mode"])
    listed = {x["name"]: x["type"] for x in s3.listdir("dir")}
    assert listed == {"deeper": 4}
    assert s3.errno("walk", fd=root, name="nope") == errno.ENOENT
    assert s3.errno("mkdir_at", fd=root, name="dir", mode=0o755) == errno.EEXIST
    assert s3.errno("open_create_at", fd=root, name="big.bin", flags=os.O_RDWR,
                    mode=0o644) == errno.EEXIST
    assert s3.errno("unlink_at", fd=root, name="dir", flags=0x200) == errno.ENOTEMPTY
    assert s3.errno("unlink_at", fd=root, name="dir") == errno.EISDIR
    assert s3.errno("symlink_at", fd=root, name="l", target="x") == errno.EOPNOTSUPP

    # Truncating opens and setstat size.
    t = s3.open("big.bin", os.O_WRONLY | os.O_TRUNC)["open_fd"]
    s3.call("pwrite", fd=t, data=b"short", offset=0)
    s3.call("sync", fd=t)
    assert body(store, "big.bin") == b"short"
    s3.call("close", fd=t)
    r = s3.call("setstat", fd=s3.fd("big.bin"), mask=0x200, size=2)
    assert (r["failure_mask"], r["failure_errno"]) == (0, 0)
    assert body(store, "big.bin") == b"sh"
    r = s3.call("setstat", fd=s3.fd("big.bin"), mask=0x2, mode=0o600)
    assert r["failure_errno"] == errno.EPERM

    # Unlink and rmdir.
    s3.call("unlink_at", fd=root, name="big.bin")
    s3.call("unlink_at", fd=s3.fd("dir/deeper"), name="leaf")
    s3.call("unlink_at", fd=s3.fd("dir"), name="deeper", flags=0x200)
    assert sorted(objects(store)) == ["dir/", "other/x/y.txt"]


def test_rename(s3_serve, store):
    s3 = s3_serve()
    root = s3.top
    s3.call("close", fd=create(s3, root, "a", b"A" * 1000)["open_fd"])
    d = s3.call("mkdir_at", fd=root, name="d", mode=0o755)["inode"]
    sub = s3.call("mkdir_at", fd=d["fd"], name="sub", mode=0o755)["inode"]
    s3.call("close", fd=create(s3, sub["fd"], "f", b"in sub")["open_fd"])
    held = s3.walk("d/sub")["fd"]

    s3.call("rename_at", fd=root, old_name="a", new_dir=d["fd"], new_name="b")
    assert body(store, "d/b") == b"A" * 1000 and "a" not in objects(store)
    assert s3.read_file("d/b") == b"A" * 1000
    s3.call("close", fd=create(s3, root, "c", b"C")["open_fd"])
    assert s3.errno("rename_at", fd=root, old_name="c", new_dir=d["fd"], new_name="b",
                    flags=1) == errno.EEXIST
    s3.call("rename_at", fd=root, old_name="c", new_dir=d["fd"], new_name="b")   # replaces
    assert body(store, "d/b") == b"C"
    assert s3.errno("rename_at", fd=root, old_name="d", new_dir=d["fd"],
                    new_name="x") == errno.EINVAL                                 # into itself
    # A directory: every key under it is copied, then deleted.
    s3.call("rename_at", fd=root, old_name="d", new_dir=root, new_name="e")
    assert sorted(objects(store)) == ["e/", "e/b", "e/sub/", "e/sub/f"]
    # A control FD held on the directory follows it.
    assert s3.call("walk", fd=held, name="f")["inode"]["stat"]["size"] == 6
    assert s3.read_file("e/sub/f") == b"in sub"
    assert s3.errno("rename_at", fd=root, old_name="e", new_dir=root, new_name="g",
                    flags=2) == errno.EINVAL                                     # no exchange


def test_multipart_upload(s3_serve, store):
    s3 = s3_serve(multipart_threshold=5 * MIB)
    data = os.urandom(11 * MIB + 7)
    r = create(s3, s3.top, "mp", data)
    s3.call("close", fd=r["open_fd"], timeout=120)
    head = store[0].head_object(Bucket=store[1], Key="mp")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")        # three parts: a multipart upload
    assert body(store, "mp") == data
    small = create(s3, s3.top, "small", b"x" * MIB)
    s3.call("close", fd=small["open_fd"])
    assert "-" not in store[0].head_object(Bucket=store[1], Key="small")["ETag"]


def test_stat_cache_ttl(s3_serve, store):
    client, name = store
    client.put_object(Bucket=name, Key="f", Body=b"12345")
    cached = s3_serve(ttl=3600)
    fresh = s3_serve(ttl=0)
    assert cached.walk("f")["stat"]["size"] == 5
    client.put_object(Bucket=name, Key="f", Body=b"1234567890")
    assert cached.walk("f")["stat"]["size"] == 5          # within the TTL: remembered
    assert fresh.walk("f")["stat"]["size"] == 10
    # The cache forgets what the mount itself changed.
    cached.call("unlink_at", fd=cached.top, name="f")
    assert cached.errno("walk", fd=cached.top, name="f") == errno.ENOENT


def test_store_unreachable_then_back(s3_serve, store, weed):
    s3 = s3_serve(timeout=1, attempts=2)
    store[0].put_object(Bucket=store[1], Key="f", Body=b"still here")
    f = s3.walk("f")["fd"]
    ofd = s3.open("f")["open_fd"]
    w = create(s3, s3.top, "w", b"pending")["open_fd"]
    closed = create(s3, s3.top, "c", b"closed while away")["open_fd"]
    weed.stop()
    try:
        # EIO (not a hang: the driver's own timeout would fail the test).
        assert s3.errno("pread", fd=ofd, count=5, timeout=60) == errno.EIO
        assert s3.errno("walk", fd=s3.top, name="g", timeout=60) == errno.EIO
        assert s3.errno("fstat", fd=f, timeout=60) == errno.EIO
        assert s3.errno("sync", fd=w, timeout=60) == errno.EIO
        assert s3.errno("flush", fd=closed, timeout=60) == errno.EIO
        s3.call("close", fd=closed, timeout=60)          # Close itself cannot fail
        assert "store unreachable" in s3.proc.stderr()
    finally:
        weed.start()
    assert s3.call("pread", fd=ofd, count=5)["data"] == b"still"
    s3.call("close", fd=w)                      # the writes kept: uploaded now
    assert body(store, "w") == b"pending"
    # The file closed while the store was away is sent by the next request.
    assert s3.walk("c")["stat"]["size"] == len(b"closed while away")
    assert body(store, "c") == b"closed while away"


def test_readonly_and_config_errors(start_server, sock_dir, go_client, bucket):
    endpoint, name = bucket
    env = dict(os.environ, GOFER_S3_ENDPOINT=endpoint, GOFER_S3_BUCKET=name)
    sock = sock_dir / "ro.sock"
    start_server([sys.executable, "-m", "gofer", "serve", "--extension", "s3", "--readonly",
                  "--socket", sock, "--seccomp=kill"], sock, env=env)
    gc = go_client(sock)
    assert gc.errno("mkdir_at", fd=gc.root_fd, name="x", mode=0o755) == errno.EROFS
    # No bucket: a readable message on the command line, not a traceback.
    env.pop("GOFER_S3_BUCKET")
    r = subprocess.run([sys.executable, "-m", "gofer", "serve", "--extension", "s3",
                        "--socket", sock_dir / "x.sock"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "no bucket" in r.stderr and "Traceback" not in r.stderr
    # No endpoint in the gofer's environment: gofer-s3 is off, and says so.
    env.pop("GOFER_S3_ENDPOINT")
    r = subprocess.run([sys.executable, "-m", "gofer", "serve", "--extension", "s3",
                        "--socket", sock_dir / "y.sock"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "GOFER_S3_ENDPOINT" in r.stderr


def test_off_without_an_endpoint():
    """Installed but not enabled, gofer-s3 widens no gofer's seccomp filter
    and loads no boto3 (every `gofer gofer` loads all installed extensions)."""
    import gofer_s3
    # In a new process: other tests of this one may have loaded boto3.
    off = ("import sys, gofer_s3\n"
           "assert gofer_s3.S3Extension(environ={}).seccomp_rules() == []\n"
           "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", off], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "connect" in gofer_s3.S3Extension(environ={"GOFER_S3_ENDPOINT": "http://x"}
                                             ).seccomp_rules()
