"""Issue 15: the encrypted-directory extension (`gofer serve --extension
crypt`, examples/crypt) under gVisor's Go client, over the socket and over
channels: contents read back as written through random writes across block
boundaries, truncation, directories, rename, getdents; the host files hold
ciphertext only; a changed, moved or cut block answers EIO, and so does a
file sealed under another key. No host FD ever reaches the client.
"""

import errno
import itertools
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gofer_crypt.cipher import BLOCK_SIZE, HEADER_SIZE, SEALED_BLOCK, host_size
from gofer_crypt.fs import MAX_HOLE

from .conftest import ServerProc, server_bugs
from .gofer_env import (FILE_BYTES, RENAME_EXCHANGE, RENAME_NOREPLACE, STATX_SIZE, Side,
                        build_via_protocol)


def crypt_argv(sock):
    return [sys.executable, "-m", "gofer", "serve", "--extension", "crypt", "--socket", sock,
            "--seccomp=kill"]


def crypt_env(data, key):
    return dict(os.environ, GOFER_CRYPT_DIR=str(data), GOFER_CRYPT_KEY=str(key))


class CryptServer:
    def __init__(self, top):
        self.top = top
        self.data = top / "data"
        self.data.mkdir()
        self.key = top / "key"
        self.key.write_bytes(os.urandom(32))
        self.socket = str(top / "s")
        self.proc = ServerProc(crypt_argv(self.socket), self.socket, top / "log",
                               env=crypt_env(self.data, self.key)).wait_ready()
        self.names = (f"t{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def crypt_server():
    top = Path(tempfile.mkdtemp(prefix="gc-", dir="/tmp"))
    srv = CryptServer(top)
    yield srv
    rc = srv.proc.stop()
    log = srv.proc.stderr()
    shutil.rmtree(top, ignore_errors=True)
    assert rc is None, f"the crypt server exited on its own:\n{log}"


@pytest.fixture
def crypt(crypt_server, go_client, transport):
    """A Side on a fresh directory of the shared crypt server, holding the
    default tree (made over the protocol); the server must log no bug."""
    start = len(crypt_server.proc.stderr())
    gc = go_client(crypt_server.socket, channels=transport)
    name = next(crypt_server.names)
    top = gc.call("mkdir_at", fd=gc.root_fd, name=name, mode=0o755)["inode"]["fd"]
    side = Side("crypt", gc, top, crypt_server.data / name, crypt_server)
    build_via_protocol(side)
    yield side
    new = crypt_server.proc.stderr()[start:]
    assert crypt_server.proc.proc.poll() is None, new
    assert not server_bugs(new), new


def write(side, path, data, offset=0):
    ofd = side.open(path, os.O_RDWR)["open_fd"]
    assert side.call("pwrite", fd=ofd, data=data, offset=offset, timeout=60)["count"] == len(data)
    side.call("close", fd=ofd)


def test_no_host_fd_reaches_the_client(crypt):
    assert crypt.gc.mount["mount_fd"] is False
    for flags in (os.O_RDONLY, os.O_RDWR, os.O_WRONLY):
        assert crypt.open("file.bin", flags)["host_fd"] is False
    assert crypt.open("sub")["host_fd"] is False
    r = crypt.call("open_create_at", fd=crypt.top, name="new", flags=os.O_RDWR, mode=0o600)
    assert r["host_fd"] is False


def test_read_write_across_blocks(crypt):
    assert crypt.read_file("file.bin") == FILE_BYTES
    assert crypt.read_file("sub/deeper/leaf") == b"leaf"
    r = crypt.call("open_create_at", fd=crypt.top, name="r", flags=os.O_RDWR, mode=0o640)
    ino, ofd = r["inode"], r["open_fd"]
    assert stat.S_IMODE(ino["stat"]["mode"]) == 0o640 and ino["stat"]["size"] == 0
    assert crypt.call("pread", fd=ofd, count=10).get("eof") is True
    rng = random.Random(15)
    model = bytearray()
    for i in range(80):
        if i % 2:     # at, just before or just after a block boundary
            off = max(0, rng.randrange(len(model) // BLOCK_SIZE + 3) * BLOCK_SIZE +
                      rng.choice((-1, 0, 1)))
        else:
            off = rng.randrange(len(model) + 3 * BLOCK_SIZE)
        n = rng.choice((1, 7, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17,
                        rng.randrange(1, 20000)))
        data = rng.randbytes(n)
        assert crypt.call("pwrite", fd=ofd, data=data, offset=off)["count"] == n
        if off > len(model):
            model.extend(bytes(off - len(model)))      # a hole reads as zeros
        model[off:off + n] = data
    assert crypt.read_all(ofd, size=7 * BLOCK_SIZE + 3) == model
    for _ in range(40):
        off = rng.randrange(len(model))
        n = rng.randrange(1, 3 * BLOCK_SIZE)
        assert crypt.call("pread", fd=ofd, offset=off, count=n)["data"] == model[off:off + n]
    assert crypt.fstat(ino["fd"])["size"] == crypt.fstat(ofd)["size"] == len(model)
    assert os.stat(crypt.host / "r").st_size == host_size(len(model))
    # A big write (chunked by the client) and a second FD on the same file.
    big = os.urandom(3 * 1024 * 1024 + 5)
    assert crypt.call("pwrite", fd=ofd, data=big, offset=100, timeout=60)["count"] == len(big)
    model[100:100 + len(big)] = big
    other = crypt.open("r", os.O_RDONLY)["open_fd"]
    assert crypt.read_all(other) == model
    crypt.call("sync", fd=ofd)


def test_truncate(crypt):
    rng = random.Random(5)
    model = bytearray(rng.randbytes(5 * BLOCK_SIZE + 123))
    crypt.mkfile("t", bytes(model))
    fd = crypt.fd("t")
    for size in (4 * BLOCK_SIZE + 10, 3 * BLOCK_SIZE, 3 * BLOCK_SIZE + 1, 9 * BLOCK_SIZE + 7, 1,
                 0, 2 * BLOCK_SIZE - 1):
        r = crypt.call("setstat", fd=fd, mask=STATX_SIZE, size=size)
        assert (r["failure_mask"], r["failure_errno"]) == (0, 0)
        del model[size:]
        model.extend(bytes(size - len(model)))
        assert crypt.fstat(fd)["size"] == size
        assert crypt.read_file("t") == model
        assert os.stat(crypt.host / "t").st_size == host_size(size)
    write(crypt, "t", b"tail", offset=len(model))
    assert crypt.read_file("t") == model + b"tail"
    # O_TRUNC on open, and a truncated file that grows again.
    ofd = crypt.open("t", os.O_WRONLY | os.O_TRUNC)["open_fd"]
    assert crypt.fstat(fd)["size"] == 0
    crypt.call("pwrite", fd=ofd, data=b"again", offset=BLOCK_SIZE)
    assert crypt.read_file("t") == bytes(BLOCK_SIZE) + b"again"
    r = crypt.call("setstat", fd=crypt.fd("sub"), mask=STATX_SIZE, size=0)
    assert (r["failure_mask"], r["failure_errno"]) == (STATX_SIZE, errno.EISDIR)
    # Holes are sealed zeros: one RPC may not grow a file by more than MAX_HOLE.
    size = BLOCK_SIZE + 5
    assert crypt.errno("pwrite", fd=ofd, data=b"x", offset=size + MAX_HOLE + 1) == errno.EFBIG
    r = crypt.call("setstat", fd=fd, mask=STATX_SIZE, size=1 << 62)
    assert (r["failure_mask"], r["failure_errno"]) == (STATX_SIZE, errno.EFBIG)
    assert crypt.fstat(fd)["size"] == size


def test_directories_getdents_symlinks(crypt):
    d = crypt.call("mkdir_at", fd=crypt.top, name="big", mode=0o750)["inode"]
    assert stat.S_ISDIR(d["stat"]["mode"]) and stat.S_IMODE(d["stat"]["mode"]) == 0o750
    names = {f"entry-{i:04d}" for i in range(300)}
    reqs = [{"op": "mkdir_at", "fd": d["fd"], "name": n, "mode": 0o700, "autoclose": True}
            for n in sorted(names)]
    r = crypt.call("parallel", goroutines=1, repeat=1, requests=reqs, summary=True)
    assert r["err_count"] == 0, r["errnos"]
    ofd = crypt.open("big")["open_fd"]
    got, batches = [], 0
    while batch := crypt.call("getdents64", fd=ofd, count=1024)["dirents"]:
        got += batch
        batches += 1
        assert batches < 500
    assert batches > 5 and sorted(e["name"] for e in got) == sorted(names)
    assert all(e["type"] == 4 and e["ino"] == os.stat(crypt.host / "big" / e["name"]).st_ino
               for e in got)
    again = crypt.call("getdents64", fd=ofd, count=-1024)["dirents"]
    assert again and again[0]["name"] == got[0]["name"]
    types = {e["name"]: e["type"] for e in crypt.listdir()}
    assert types == {"big": 4, "file.bin": 8, "sub": 4, "empty": 4, "link": 10, "dirlink": 10}
    # Names and symlink targets stay plain on the host.
    assert sorted(os.listdir(crypt.host)) == sorted(types)
    assert crypt.call("read_link_at", fd=crypt.fd("link"))["target"] == "file.bin"
    assert os.readlink(crypt.host / "dirlink") == "sub"
    assert crypt.errno("open_at", fd=crypt.fd("link"), flags=os.O_RDONLY) == errno.EINVAL
    assert crypt.errno("walk", fd=crypt.top, name="nope") == errno.ENOENT
    assert crypt.errno("mkdir_at", fd=crypt.top, name="sub", mode=0o755) == errno.EEXIST
    assert crypt.errno("unlink_at", fd=crypt.top, name="sub", flags=0x200) == errno.ENOTEMPTY
    crypt.call("unlink_at", fd=crypt.top, name="empty", flags=0x200)
    crypt.call("unlink_at", fd=crypt.top, name="link")
    assert not (crypt.host / "empty").exists() and not (crypt.host / "link").exists()
    fs = crypt.call("statfs", fd=crypt.top)["statfs"]
    assert fs["blocks"] == os.statvfs(crypt.host).f_blocks


def test_rename(crypt):
    t, sub = crypt.top, crypt.fd("sub")
    held = crypt.open("file.bin", os.O_RDWR)["open_fd"]
    crypt.call("rename_at", fd=t, old_name="file.bin", new_dir=sub, new_name="moved")
    assert "moved" in crypt.names("sub") and "file.bin" not in crypt.names()
    assert (crypt.host / "sub" / "moved").exists()
    # The file's blocks are bound to the file, not its name: it reads after a rename.
    assert crypt.call("pread", fd=held, count=8)["data"] == FILE_BYTES[:8]
    crypt.call("pwrite", fd=held, data=b"HELD", offset=4096)
    want = FILE_BYTES[:4096] + b"HELD" + FILE_BYTES[4100:]
    assert crypt.read_file("sub/moved") == want
    crypt.call("rename_at", fd=sub, old_name="moved", new_dir=sub, new_name="inner.txt")
    assert crypt.read_file("sub/inner.txt") == want
    assert crypt.errno("rename_at", fd=t, old_name="dirlink", new_dir=t, new_name="sub",
                       flags=RENAME_NOREPLACE) == errno.EEXIST
    crypt.call("rename_at", fd=t, old_name="empty", new_dir=sub, new_name="inner.txt",
               flags=RENAME_EXCHANGE)
    assert crypt.read_file("empty") == want
    d = crypt.fd("sub")
    crypt.call("rename_at", fd=t, old_name="sub", new_dir=t, new_name="sub2")
    assert crypt.read_file("sub2/deeper/leaf") == b"leaf"
    crypt.call("mkdir_at", fd=d, name="made", mode=0o700)
    assert "made" in crypt.names("sub2")


def test_host_files_hold_no_plaintext(crypt):
    secret = b"".join(b"SECRET-PLAINTEXT-%06d|" % i for i in range(20000))   # ~460 KiB
    crypt.mkfile("secret", secret)
    write(crypt, "secret", b"SECRET-PLAINTEXT-PATCH", offset=BLOCK_SIZE - 5)
    crypt.mkfile("tiny", b"tiny plaintext")
    write(crypt, "sub/inner.txt", b"inner plaintext")
    assert crypt.read_file("tiny") == b"tiny plaintext"
    found = []
    for path in crypt.host.rglob("*"):
        if path.is_file() and not path.is_symlink():
            raw = path.read_bytes()
            assert len(raw) >= HEADER_SIZE and raw.startswith(b"GOFERCRY")
            for needle in (b"SECRET", b"PLAINTEXT", b"tiny plain", b"inner", b"leaf",
                           FILE_BYTES[:16], FILE_BYTES[1000:1016]):
                if needle in raw:
                    found.append((path, needle))
    assert found == []
    assert os.stat(crypt.host / "secret").st_size == host_size(len(secret))


def host_blocks(path):
    raw = path.read_bytes()
    return raw[:HEADER_SIZE], [raw[i:i + SEALED_BLOCK]
                               for i in range(HEADER_SIZE, len(raw), SEALED_BLOCK)]


def rewrite(path, header, blocks):
    path.write_bytes(header + b"".join(blocks))


def test_tampering_answers_eio(crypt):
    data = os.urandom(4 * BLOCK_SIZE + 100)
    for name in ("a", "b"):
        crypt.mkfile(name, data)
    a, b = crypt.host / "a", crypt.host / "b"
    header, blocks = host_blocks(a)
    assert len(blocks) == 5

    def pread(name, block):
        ofd = crypt.open(name)["open_fd"]
        return crypt.request("pread", fd=ofd, count=BLOCK_SIZE, offset=block * BLOCK_SIZE)

    # One flipped bit of block 1's ciphertext: that block answers EIO, the others read.
    flipped = bytearray(blocks[1])
    flipped[100] ^= 0x01
    rewrite(a, header, [blocks[0], bytes(flipped)] + blocks[2:])
    assert pread("a", 1).get("errno") == errno.EIO
    assert pread("a", 0)["data"] == data[:BLOCK_SIZE]
    assert pread("a", 2)["data"] == data[2 * BLOCK_SIZE:3 * BLOCK_SIZE]
    # Two blocks swapped.
    rewrite(a, header, [blocks[0], blocks[2], blocks[1]] + blocks[3:])
    assert pread("a", 1).get("errno") == pread("a", 2).get("errno") == errno.EIO
    # A block of the same data from another file (same plaintext, same place).
    _, other = host_blocks(b)
    rewrite(a, header, [blocks[0], other[1]] + blocks[2:])
    assert pread("a", 1).get("errno") == errno.EIO
    # Cut at a block boundary: what is now the last block was not sealed as last.
    rewrite(a, header, blocks[:3])
    assert crypt.fstat(crypt.fd("a"))["size"] == 3 * BLOCK_SIZE
    assert pread("a", 2).get("errno") == errno.EIO
    # A changed header, and a file that is not ours: EIO on open.
    rewrite(a, header[:20] + bytes([header[20] ^ 0x80]) + header[21:], blocks)
    assert crypt.errno("open_at", fd=crypt.fd("a"), flags=os.O_RDONLY) == errno.EIO
    (crypt.host / "plain").write_bytes(b"a file put there on the host")
    assert crypt.errno("open_at", fd=crypt.fd("plain"), flags=os.O_RDONLY) == errno.EIO
    # Writes into a damaged block fail too, rather than sealing garbage.
    rewrite(a, header, [blocks[0], bytes(flipped)] + blocks[2:])
    ofd = crypt.open("a", os.O_RDWR)["open_fd"]
    assert crypt.errno("pwrite", fd=ofd, data=b"x", offset=BLOCK_SIZE + 5) == errno.EIO
    rewrite(a, header, blocks)
    assert crypt.read_file("a") == data


def test_wrong_key_answers_eio(crypt, crypt_server, start_server, go_client, sock_dir):
    crypt.mkfile("mine", b"sealed under the first key")
    wrong = sock_dir / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")                 # the hex form
    srv = start_server(crypt_argv(sock_dir / "s"), sock_dir / "s",
                       env=crypt_env(crypt_server.data, wrong))
    gc = go_client(srv.socket_path)
    other = Side("crypt", gc, gc.call("walk", fd=gc.root_fd, name=crypt.host.name)["inode"]["fd"],
                 crypt.host, crypt_server)
    # Names and sizes are plain; contents are not readable without the key.
    assert other.walk("mine")["stat"]["size"] == len(b"sealed under the first key")
    assert "mine" in other.names()
    for path in ("mine", "file.bin", "sub/inner.txt"):
        assert other.errno("open_at", fd=other.fd(path), flags=os.O_RDONLY) == errno.EIO
    r = other.call("setstat", fd=other.fd("mine"), mask=STATX_SIZE, size=0)
    assert (r["failure_mask"], r["failure_errno"]) == (STATX_SIZE, errno.EIO)
    # And the other way round.
    other.mkfile("theirs", b"sealed under the second key")
    assert other.read_file("theirs") == b"sealed under the second key"
    assert crypt.errno("open_at", fd=crypt.fd("theirs"), flags=os.O_RDONLY) == errno.EIO
    assert crypt.read_file("mine") == b"sealed under the first key"


def test_bad_key_file_is_refused(tmp_path):
    short = tmp_path / "short.key"
    short.write_bytes(b"12345")
    for key in (short, tmp_path / "missing.key"):
        r = subprocess.run(crypt_argv(str(tmp_path / "s")), env=crypt_env(tmp_path, key),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "crypt" in r.stderr and str(key) in r.stderr, r.stderr


def test_concurrent_writers_share_blocks(crypt):
    """Writes are read-modify-writes of whole blocks: FDs on the same file,
    written from several goroutines into the same blocks, lose nothing."""
    crypt.mkfile("shared", bytes(2 * BLOCK_SIZE))
    fds = [crypt.open("shared", os.O_RDWR)["open_fd"] for _ in range(4)]
    want = bytearray(2 * BLOCK_SIZE)
    reqs = []
    for i in range(64):
        off = i * 128 + 3
        data = bytes([i + 1]) * 100
        want[off:off + 100] = data
        reqs.append({"op": "pwrite", "fd": fds[i % 4], "data": data, "offset": off})
    r = crypt.call("parallel", goroutines=4, repeat=5, requests=reqs[::-1], summary=True)
    assert r["err_count"] == 0, r["errnos"]
    r = crypt.call("parallel", goroutines=4, repeat=1, requests=reqs, summary=True)
    assert r["err_count"] == 0, r["errnos"]
    assert crypt.read_file("shared") == want
