"""Issue 5: the memfs example extension (`gofer serve --extension memfs`) under
gVisor's Go client, over the socket and over channels: files, directories,
symlinks, hard links, rename, getdents, xattrs, pread/pwrite, setstat.

memfs keeps no host files (a regular file's bytes are in a memfd it donates
on open), so each scenario checks what the client sees; the
protocol-level answers (errnos, walk statuses, shapes) are also compared with
gVisor's fsgofer serving the same tree from the host.
"""

import errno
import os
import stat

import pytest

from .gofer_env import (FILE_BYTES, RENAME_EXCHANGE, RENAME_NOREPLACE, STATX_ATIME,
                        STATX_MODE, STATX_MTIME, STATX_SIZE, UTIME_OMIT, XATTR_CREATE,
                        XATTR_REPLACE, differential)


@pytest.fixture
def mem(open_side):
    return open_side("memfs")


def memfs_vs_fsgofer(open_side, scenario):
    """Like differential, with memfs in place of our host backend."""
    return differential(lambda kind, **kw: open_side("memfs" if kind == "gofer" else kind, **kw),
                        scenario)


def test_mount_and_supported(mem, transport):
    assert stat.S_ISDIR(mem.gc.root["stat"]["mode"])
    assert (mem.gc.mount["channels"] > 0) == transport
    sup = set(mem.gc.mount["supported"])
    assert {1, 2, 3, 5, 7, 8, 11, 12, 24, 26} <= sup
    assert 29 not in sup  # no BindAt in memfs
    assert mem.errno("bind_at", fd=mem.top, name="s") == errno.EOPNOTSUPP


def test_files_read_write(mem):
    assert mem.read_file("file.bin") == FILE_BYTES
    # The file's memfd is donated, and what the client writes through it is
    # the file's content.
    r = mem.call("open_create_at", fd=mem.top, name="h", flags=os.O_RDWR, mode=0o600,
                 write_host=b"through the host FD")
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDWR and r["host_written"] == 19
    assert mem.call("pread", fd=r["open_fd"], count=100)["data"] == b"through the host FD"
    assert mem.fstat(r["inode"]["fd"])["size"] == 19
    r = mem.call("open_create_at", fd=mem.top, name="n", flags=os.O_RDWR, mode=0o640)
    ino, ofd = r["inode"], r["open_fd"]
    assert stat.S_IMODE(ino["stat"]["mode"]) == 0o640 and ino["stat"]["size"] == 0
    data = os.urandom(3 * 1024 * 1024 + 5)  # over the max message size: chunked
    assert mem.call("pwrite", fd=ofd, data=data, offset=100, timeout=60)["count"] == len(data)
    assert mem.call("pwrite", fd=ofd, data=b"head", offset=0)["count"] == 4
    want = b"head" + bytes(96) + data
    assert mem.read_all(ofd) == want
    assert mem.call("pread", fd=ofd, count=10, offset=98)["data"] == want[98:108]
    assert mem.call("pread", fd=ofd, count=10, offset=len(want)).get("eof") is True
    assert mem.fstat(ino["fd"])["size"] == len(want)
    assert mem.fstat(ofd)["size"] == len(want)
    # O_TRUNC on open, and access modes.
    t = mem.open("n", os.O_WRONLY | os.O_TRUNC)["open_fd"]
    assert mem.fstat(ino["fd"])["size"] == 0
    assert mem.errno("pread", fd=t, count=1) == errno.EBADF
    r = mem.open("n", os.O_RDONLY)
    ro = r["open_fd"]
    assert mem.errno("pwrite", fd=ro, data=b"x") == errno.EBADF
    # A read-only open donates a read-only FD (a new open file description).
    r = mem.call("open_at", fd=ino["fd"], flags=os.O_RDONLY, write_host=b"x", read_host=4)
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDONLY
    assert r["host_write_errno"] == errno.EBADF and r["host_data"] == b""
    mem.call("allocate", fd=t, offset=0, length=5000)
    assert mem.fstat(ino["fd"])["size"] == 5000
    mem.call("sync", fd=t)


def test_setstat(mem):
    fd = mem.fd("file.bin")
    r = mem.call("setstat", fd=fd, mask=STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_ATIME,
                 mode=0o600, size=10, mtime_sec=1_000_000_000, mtime_nsec=5,
                 atime_nsec=UTIME_OMIT)
    assert (r["failure_mask"], r["failure_errno"]) == (0, 0)
    st = mem.fstat(fd)
    assert st["mode"] == stat.S_IFREG | 0o600 and st["size"] == 10
    assert (st["mtime_sec"], st["mtime_nsec"]) == (1_000_000_000, 5)
    assert mem.read_file("file.bin") == FILE_BYTES[:10]
    r = mem.call("setstat", fd=mem.fd("sub"), mask=STATX_SIZE | STATX_MODE, size=0, mode=0o700)
    assert (r["failure_mask"], r["failure_errno"]) == (STATX_SIZE, errno.EISDIR)
    assert stat.S_IMODE(mem.fstat(mem.fd("sub"))["mode"]) == 0o700


def test_directories_and_getdents(mem):
    d = mem.call("mkdir_at", fd=mem.top, name="big", mode=0o755)["inode"]
    assert stat.S_ISDIR(d["stat"]["mode"])
    names = {f"entry-{i:04d}" for i in range(600)}
    reqs = [{"op": "mknod_at", "fd": d["fd"], "name": n, "mode": stat.S_IFREG | 0o600,
             "autoclose": True} for n in sorted(names)]
    r = mem.call("parallel", goroutines=1, repeat=1, requests=reqs, summary=True)
    assert r["err_count"] == 0, r["errnos"]
    ofd = mem.open("big")["open_fd"]
    got, batches = [], 0
    while batch := mem.call("getdents64", fd=ofd, count=2048)["dirents"]:
        got += batch
        batches += 1
        assert batches < 500
    assert batches > 5
    listed = [e["name"] for e in got if e["name"] not in (".", "..")]
    assert len(listed) == len(set(listed)) and set(listed) == names
    inos = {e["name"]: e["ino"] for e in got}
    st = mem.call("walk_stat", fd=d["fd"], names=["entry-0042"])["stats"][0]
    assert inos["entry-0042"] == st["ino"] and got[-1]["type"] == 8
    again = mem.call("getdents64", fd=ofd, count=-2048)["dirents"]
    assert again and again[0]["name"] == got[0]["name"]
    assert mem.names() == sorted(["big", "dirlink", "empty", "file.bin", "link", "sub"])


def test_symlinks_and_hard_links(mem):
    s = mem.call("symlink_at", fd=mem.top, name="s", target="../../outside")["inode"]
    assert stat.S_ISLNK(s["stat"]["mode"])
    assert mem.call("read_link_at", fd=s["fd"])["target"] == "../../outside"
    assert mem.errno("open_at", fd=s["fd"], flags=os.O_RDONLY) == errno.EINVAL
    assert mem.errno("read_link_at", fd=mem.fd("file.bin")) == errno.EINVAL
    f = mem.walk("file.bin")
    h = mem.call("link_at", fd=mem.fd("sub"), target=f["fd"], name="hard")["inode"]
    assert h["stat"]["ino"] == f["stat"]["ino"] and h["stat"]["nlink"] == 2
    assert mem.fstat(f["fd"])["nlink"] == 2
    ofd = mem.open("sub/hard", os.O_RDWR)["open_fd"]
    mem.call("pwrite", fd=ofd, data=b"HARD", offset=0)
    assert mem.read_file("file.bin")[:4] == b"HARD"
    assert mem.errno("link_at", fd=mem.top, target=mem.fd("sub"), name="d") == errno.EPERM
    mem.call("unlink_at", fd=mem.top, name="file.bin")
    assert mem.fstat(h["fd"])["nlink"] == 1
    assert mem.read_file("sub/hard")[:4] == b"HARD"


def test_rename(mem):
    t, sub = mem.top, mem.fd("sub")
    held = mem.open("file.bin", os.O_RDWR)["open_fd"]
    mem.call("rename_at", fd=t, old_name="file.bin", new_dir=sub, new_name="moved")
    assert "moved" in mem.names("sub") and "file.bin" not in mem.names()
    assert mem.call("pread", fd=held, count=4)["data"] == FILE_BYTES[:4]
    mem.call("rename_at", fd=sub, old_name="moved", new_dir=t, new_name="link")  # replace
    assert mem.read_file("link") == FILE_BYTES
    assert mem.errno("rename_at", fd=t, old_name="link", new_dir=t, new_name="sub",
                     flags=RENAME_NOREPLACE) == errno.EEXIST
    mem.call("rename_at", fd=t, old_name="link", new_dir=t, new_name="empty",
             flags=RENAME_EXCHANGE)
    assert mem.read_file("empty") == FILE_BYTES
    assert stat.S_ISDIR(mem.walk("link")["stat"]["mode"])
    # The held FD to a directory follows it when renamed.
    d = mem.fd("sub")
    mem.call("rename_at", fd=t, old_name="sub", new_dir=t, new_name="sub2")
    assert mem.call("walk", fd=d, name="inner.txt")["inode"]["stat"]["size"] == 6
    mem.call("mkdir_at", fd=d, name="made", mode=0o700)
    assert "made" in mem.names("sub2")


def test_xattrs(mem):
    f = mem.fd("file.bin")
    mem.call("set_xattr", fd=f, name="user.k", value=b"\x00v\xff")
    assert mem.call("get_xattr", fd=f, name="user.k")["value"] == b"\x00v\xff"
    assert mem.errno("set_xattr", fd=f, name="user.k", value=b"x", flags=XATTR_CREATE) == \
        errno.EEXIST
    assert mem.errno("set_xattr", fd=f, name="user.n", value=b"x", flags=XATTR_REPLACE) == \
        errno.ENODATA
    mem.call("set_xattr", fd=f, name="user.k", value=b"r", flags=XATTR_REPLACE)
    mem.call("set_xattr", fd=f, name="user.n", value=b"", flags=XATTR_CREATE)
    assert sorted(mem.call("list_xattr", fd=f)["names"]) == ["user.k", "user.n"]
    mem.call("remove_xattr", fd=f, name="user.k")
    assert mem.errno("get_xattr", fd=f, name="user.k") == errno.ENODATA
    assert mem.errno("remove_xattr", fd=f, name="user.k") == errno.ENODATA
    assert mem.call("list_xattr", fd=f)["names"] == ["user.n"]


def test_concurrent_rpcs(mem):
    f = mem.walk("file.bin")
    ofd = mem.open("file.bin")["open_fd"]
    reqs = [{"op": "pread", "fd": ofd, "count": 100, "offset": 50},
            {"op": "fstat", "fd": f["fd"]},
            {"op": "walk_stat", "fd": mem.top, "names": ["sub", "deeper", "leaf"]}]
    r = mem.call("parallel", goroutines=4, repeat=25, requests=reqs)
    assert r["err_count"] == 0, r["errnos"]
    for g in r["results"]:
        for i, res in enumerate(g):
            if i % 3 == 0:
                assert res["data"] == FILE_BYTES[50:150]
            elif i % 3 == 1:
                assert res["stat"]["ino"] == f["stat"]["ino"]
            else:
                assert len(res["stats"]) == 3


def test_memfs_protocol_answers_same_as_fsgofer(open_side):
    """Protocol-level answers that do not depend on the storage: errnos, walk shapes."""
    def run(side):
        t = side.top
        out = []
        for names in (["sub", "deeper", "leaf"], ["sub", "nope", "x"], ["dirlink", "inner.txt"],
                      ["link"]):
            r = side.call("walk_multiple", fd=t, names=names)
            out.append((names, r["status"], [stat.S_IFMT(i["stat"]["mode"]) for i in r["inodes"]]))
        for bad in ("..", ".", "", "a/b"):
            out.append(("walk", bad, side.errno("walk", fd=t, name=bad)))
            out.append(("mkdir", bad, side.errno("mkdir_at", fd=t, name=bad, mode=0o755)))
        out += [
            ("walk missing", side.errno("walk", fd=t, name="nope")),
            ("walk from file", side.errno("walk", fd=side.fd("file.bin"), name="x")),
            ("mkdir exists", side.errno("mkdir_at", fd=t, name="sub", mode=0o755)),
            ("create exists", side.errno("open_create_at", fd=t, name="file.bin",
                                         flags=os.O_RDWR, mode=0o644)),
            ("create in file", side.errno("open_create_at", fd=side.fd("file.bin"), name="x",
                                          flags=os.O_RDWR, mode=0o644)),
            ("open dir rw", side.errno("open_at", fd=side.fd("sub"), flags=os.O_RDWR)),
            ("open symlink", side.errno("open_at", fd=side.fd("link"), flags=os.O_RDONLY)),
            ("unlink dir", side.errno("unlink_at", fd=t, name="sub")),
            ("rmdir non-empty", side.errno("unlink_at", fd=t, name="sub", flags=0x200)),
            ("rmdir file", side.errno("unlink_at", fd=t, name="file.bin", flags=0x200)),
            ("unlink missing", side.errno("unlink_at", fd=t, name="nope")),
            ("rename missing", side.errno("rename_at", fd=t, old_name="nope", new_dir=t,
                                          new_name="x")),
            ("rename noreplace", side.errno("rename_at", fd=t, old_name="file.bin", new_dir=t,
                                            new_name="link", flags=RENAME_NOREPLACE)),
            ("rename dir over non-empty", side.errno("rename_at", fd=t, old_name="empty",
                                                     new_dir=t, new_name="sub")),
            ("rename file over dir", side.errno("rename_at", fd=t, old_name="file.bin",
                                                new_dir=t, new_name="empty")),
            ("rename dir over file", side.errno("rename_at", fd=t, old_name="empty",
                                                new_dir=t, new_name="file.bin")),
            ("readlink file", side.errno("read_link_at", fd=side.fd("file.bin"))),
            ("link dir", side.errno("link_at", fd=t, target=side.fd("sub"), name="x")),
            ("get missing xattr", side.errno("get_xattr", fd=side.fd("file.bin"), name="user.x")),
            ("replace missing xattr", side.errno("set_xattr", fd=side.fd("file.bin"),
                                                 name="user.x", value=b"v", flags=XATTR_REPLACE)),
            ("setstat nlink", side.errno("setstat", fd=t, mask=0x4)),
            ("pread control fd", side.errno("pread", fd=side.fd("file.bin"), count=1)),
            ("getdents file", side.errno("getdents64", fd=side.open("file.bin")["open_fd"])),
            ("fstat bad", side.errno("fstat", fd=10**6)),
            side.names(), side.names("sub"), side.read_file("sub/deeper/leaf"),
        ]
        return out
    memfs_vs_fsgofer(open_side, run)


def test_memfs_readonly(open_side):
    mem = open_side("memfs", readonly=True, setup=None)
    assert mem.errno("mkdir_at", fd=mem.gc.root_fd, name="x", mode=0o755) == errno.EROFS
    assert mem.errno("open_create_at", fd=mem.gc.root_fd, name="x", flags=os.O_RDWR,
                     mode=0o644) == errno.EROFS
    assert mem.errno("setstat", fd=mem.gc.root_fd, mask=STATX_MODE, mode=0o777) == errno.EROFS
    assert mem.errno("set_xattr", fd=mem.gc.root_fd, name="user.k", value=b"v") == errno.EROFS
    assert mem.errno("open_at", fd=mem.gc.root_fd, flags=os.O_RDWR) == errno.EROFS
    assert mem.call("fstat", fd=mem.gc.root_fd)["ok"]
