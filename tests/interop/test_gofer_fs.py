"""Issue 4: our gofer through gVisor's Go client, one group per topic of gVisor's
local-filesystem test suite (runsc/fsgofer's lisafs tests): Stat, RegularFileIO,
RegularFileOpen, SetStat, Allocate, StatFS, Unlink, Symlink/ReadLinkAt, HardLink,
Walk, Rename, Mknod, UDS, Getdents, xattrs.

Each test runs over the socket and over channels. ``differential`` runs a scenario
on our gofer and on gVisor's fsgofer (identical fresh trees) and requires equal
observations; the scenario also checks the host tree itself.
"""

import errno
import os
import socket
import stat
import time

import pytest

from .gofer_env import (AT_REMOVEDIR, FILE_BYTES, RENAME_EXCHANGE, RENAME_NOREPLACE,
                        STATX_ATIME, STATX_GID, STATX_MODE, STATX_MTIME, STATX_SIZE,
                        STATX_UID, UTIME_NOW, UTIME_OMIT, XATTR_CREATE, XATTR_REPLACE, DT,
                        assert_matches_host, differential)
from .goclient import WALK_COMPONENT_DOES_NOT_EXIST, WALK_COMPONENT_SYMLINK, WALK_SUCCESS

STATX_NLINK = 0x4


def mode_of(st):
    return stat.S_IFMT(st["mode"])


# == Modes are the client's (no server umask) ====================================

def test_create_modes_are_not_masked_by_server_umask(open_side):
    def run(side):
        side.call("open_create_at", fd=side.top, name="f", flags=os.O_RDWR, mode=0o777)
        side.call("mkdir_at", fd=side.top, name="d", mode=0o777)
        side.call("mknod_at", fd=side.top, name="n", mode=stat.S_IFREG | 0o666)
        return [oct(os.lstat(side.host / n).st_mode) for n in ("f", "d", "n")]
    assert differential(open_side, run) == ["0o100777", "0o40777", "0o100666"]


# == Stat =========================================================================

def _special_files(host):
    os.mkfifo(host / "fifo", 0o640)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(host / "sock"))
    s.close()


def test_stat_every_file_type_matches_host(ours):
    _special_files(ours.host)
    for path in ("file.bin", "sub", "empty", "link", "dirlink", "fifo", "sock",
                 "sub/deeper/leaf"):
        st = os.lstat(ours.host / path)
        ino = ours.walk(path)
        assert_matches_host(ino["stat"], st)
        sx = ours.fstat(ino["fd"])
        assert_matches_host(sx, st)
        assert (sx["blksize"], sx["blocks"]) == (st.st_blksize, st.st_blocks)
        assert sx["atime_sec"] * 10**9 + sx["atime_nsec"] == st.st_atime_ns
        assert sx["ctime_sec"] * 10**9 + sx["ctime_nsec"] == st.st_ctime_ns
        assert sx["mask"] & 0x7ff == 0x7ff, hex(sx["mask"])  # STATX_BASIC_STATS
    ofd = ours.open("file.bin")["open_fd"]
    assert_matches_host(ours.fstat(ofd), os.stat(ours.host / "file.bin"))


def test_walk_stat_matches_host(ours):
    stats = ours.call("walk_stat", fd=ours.top, names=["", "sub", "deeper", "leaf"])["stats"]
    paths = ["", "sub", "sub/deeper", "sub/deeper/leaf"]
    assert len(stats) == 4
    for sx, p in zip(stats, paths):
        assert_matches_host(sx, os.lstat(ours.host / p))


def test_stat_same_as_fsgofer(open_side):
    def run(side):
        _special_files(side.host)
        out = []
        for path in ("file.bin", "sub", "link", "fifo", "sock"):
            sx = side.walk(path)["stat"]
            out.append((path, hex(sx["mask"]), stat.S_IFMT(sx["mode"]), sx["nlink"]))
        for names in (["", "sub"], ["link", "x"], ["nope"], ["sub", "nope"], [""],
                      ["dirlink", "inner.txt"], ["file.bin"],
                      # every name is checked before the walk
                      ["nope", ".."], ["link", "x", "."], ["sub", "nope", ""], ["", ""]):
            r = side.request("walk_stat", fd=side.top, names=names)
            out.append((names, r.get("errno"), [stat.S_IFMT(s["mode"]) for s in r.get("stats", [])]))
        out.append(("walk_stat from file", side.errno("walk_stat", fd=side.fd("file.bin"),
                                                      names=["x"])))
        out.append(("walk_stat '' from file", len(side.call(
            "walk_stat", fd=side.fd("file.bin"), names=[""])["stats"])))
        for names in (["..", "x"], ["", ".."], []):
            r = side.request("walk_stat", fd=side.fd("file.bin"), names=names)
            out.append(("walk_stat from file", names, r.get("errno"), len(r.get("stats", []))))
        out.append(("walk_stat bad name", side.errno("walk_stat", fd=side.top, names=["sub", ".."])))
        out.append(("fstat bad fd", side.errno("fstat", fd=99999)))
        return out
    differential(open_side, run)


# == RegularFileIO ================================================================

def test_pread_pwrite_at_offsets_same_as_fsgofer(open_side):
    def run(side):
        r = side.call("open_create_at", fd=side.top, name="f", flags=os.O_RDWR, mode=0o644)
        ofd = r["open_fd"]
        out = [side.call("pwrite", fd=ofd, data=b"hello", offset=0)["count"],
               side.call("pwrite", fd=ofd, data=b"world", offset=10000)["count"],
               side.call("pwrite", fd=ofd, data=b"XY", offset=3)["count"]]
        want = b"helXY" + bytes(9995) + b"world"
        assert (side.host / "f").read_bytes() == want
        assert side.call("pread", fd=ofd, count=20000)["data"] == want
        assert side.call("pread", fd=ofd, count=4, offset=9998)["data"] == b"\0\0wo"
        out.append(side.call("pread", fd=ofd, count=4, offset=1 << 40).get("eof"))
        out.append(side.fstat(ofd)["size"])
        ro = side.open("file.bin", os.O_RDONLY)["open_fd"]
        wo = side.open("file.bin", os.O_WRONLY)["open_fd"]
        out.append(("pwrite on O_RDONLY", side.errno("pwrite", fd=ro, data=b"x", offset=0)))
        out.append(("pread on O_WRONLY", side.errno("pread", fd=wo, count=1)))
        out.append(("pread on control fd", side.errno("pread", fd=side.fd("file.bin"), count=1)))
        out.append(("pwrite to dir open fd", side.errno("pwrite", fd=side.open("sub")["open_fd"],
                                                         data=b"x")))
        out.append(("empty pwrite", side.call("pwrite", fd=wo, data=b"", offset=0)["count"]))
        assert (side.host / "file.bin").read_bytes() == FILE_BYTES
        return out
    differential(open_side, run)


def test_large_io_over_rpc(ours):
    """3 MiB is more than the max message size: the client splits it into chunks."""
    data = os.urandom(3 * 1024 * 1024 + 123)
    r = ours.call("open_create_at", fd=ours.top, name="big", flags=os.O_RDWR, mode=0o600)
    ofd = r["open_fd"]
    assert ours.call("pwrite", fd=ofd, data=data, offset=4097, timeout=60)["count"] == len(data)
    host = (ours.host / "big").read_bytes()
    assert host == bytes(4097) + data
    got = ours.call("pread", fd=ofd, count=len(host) + 10, timeout=60)["data"]
    assert got == host
    assert ours.call("pread", fd=ofd, count=1 << 20, offset=1 << 21)["data"] == host[1 << 21:(1 << 21) + (1 << 20)]


def test_large_io_via_donated_fd(ours):
    data = os.urandom(1536 * 1024)
    (ours.host / "f").write_bytes(b"")
    r = ours.open("f", os.O_RDWR, write_host=data, write_host_offset=100,
                  read_host=len(data) + 200)
    assert r["host_fd"] is True and r["host_written"] == len(data)
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDWR
    assert r["host_data"] == bytes(100) + data
    assert (ours.host / "f").read_bytes() == bytes(100) + data
    assert ours.read_all(r["open_fd"]) == bytes(100) + data
    # A write-only donation cannot be read, a read-only one cannot be written.
    r = ours.open("f", os.O_WRONLY, read_host=10)
    assert r["host_read_errno"] == errno.EBADF
    r = ours.open("f", os.O_RDONLY, write_host=b"zz")
    assert r["host_write_errno"] == errno.EBADF
    assert (ours.host / "f").read_bytes()[:100] == bytes(100)


# == RegularFileOpen ==============================================================

def test_open_flags_same_as_fsgofer(open_side):
    def run(side):
        out = []
        for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_RDWR | os.O_APPEND,
                      os.O_RDONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_DIRECTORY,
                      os.O_RDWR | os.O_CREAT | os.O_EXCL, os.O_RDONLY | os.O_SYNC):
            r = side.open("file.bin", flags)
            out.append((oct(flags), r["host_fd"], oct(r["host_flags"] & (
                os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECTORY | os.O_SYNC))))
            side.call("close", fd=r["open_fd"])
        assert (side.host / "file.bin").read_bytes() == FILE_BYTES
        r = side.open("file.bin", os.O_WRONLY | os.O_TRUNC)
        out.append(("trunc", r["host_stat"]["size"], os.stat(side.host / "file.bin").st_size))
        (side.host / "sub" / "inner.txt").write_bytes(b"abc")
        out.append(("rdonly|trunc", side.errno("open_at", fd=side.fd("sub/inner.txt"),
                                                flags=os.O_RDONLY | os.O_TRUNC),
                    os.stat(side.host / "sub" / "inner.txt").st_size))
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC):
            out.append(("dir", oct(flags), side.errno("open_at", fd=side.fd("sub"), flags=flags)))
        out.append(("dir rdonly host fd", side.open("sub")["host_fd"]))
        out.append(("symlink", side.errno("open_at", fd=side.fd("link"), flags=os.O_RDONLY)))
        out.append(("open fd", side.errno("open_at", fd=side.open("sub")["open_fd"], flags=0)))
        return out
    differential(open_side, run)


def test_open_create_same_as_fsgofer(open_side):
    def run(side):
        out = []
        for name, mode, flags in (("c1", 0o640, os.O_RDWR), ("c2", 0o755, os.O_WRONLY),
                                  ("c3", 0o4755, os.O_RDONLY), ("c4", 0o000, os.O_RDWR | os.O_TRUNC)):
            r = side.call("open_create_at", fd=side.top, name=name, flags=flags, mode=mode)
            st = os.lstat(side.host / name)
            assert_matches_host(r["inode"]["stat"], st, times=False)  # O_TRUNC may touch it
            out.append((name, oct(st.st_mode), r["host_fd"],
                        oct(r.get("host_flags", 0) & os.O_ACCMODE)))
        r = side.call("open_create_at", fd=side.top, name="owned", flags=os.O_RDWR, mode=0o600,
                      uid=1234, gid=4321)
        st = os.lstat(side.host / "owned")
        out.append(("owned", st.st_uid, st.st_gid, r["inode"]["stat"]["uid"]))
        out.append(("exists", side.errno("open_create_at", fd=side.top, name="file.bin",
                                         flags=os.O_RDWR, mode=0o644)))
        out.append(("symlink exists", side.errno("open_create_at", fd=side.top, name="link",
                                                 flags=os.O_RDWR, mode=0o644)))
        out.append(("in file", side.errno("open_create_at", fd=side.fd("file.bin"), name="x",
                                          flags=os.O_RDWR, mode=0o644)))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad name", bad, side.errno("open_create_at", fd=side.top, name=bad,
                                                    flags=os.O_RDWR, mode=0o644)))
        out.append(sorted(os.listdir(side.host)))
        return out
    differential(open_side, run)


# == SetStat ======================================================================

def test_setstat_file_same_as_fsgofer(open_side):
    def run(side):
        out = []
        p = side.host / "file.bin"
        fd = side.fd("file.bin")

        def ss(**kw):
            r = side.call("setstat", fd=fd, **kw)
            return (r["failure_mask"], r["failure_errno"])

        out.append(ss(mask=STATX_MODE, mode=0o4711))
        out.append(oct(os.lstat(p).st_mode))
        out.append(ss(mask=STATX_UID | STATX_GID, uid=1234, gid=4321))
        out.append((os.lstat(p).st_uid, os.lstat(p).st_gid))
        out.append(ss(mask=STATX_GID, gid=77))
        out.append((os.lstat(p).st_uid, os.lstat(p).st_gid))
        out.append(ss(mask=STATX_SIZE, size=10))
        out.append(p.read_bytes())
        out.append(ss(mask=STATX_SIZE, size=100000))
        out.append(os.lstat(p).st_size)
        out.append(ss(mask=STATX_ATIME | STATX_MTIME, atime_sec=1_000_000_000, atime_nsec=123456789,
                      mtime_sec=1_200_000_000, mtime_nsec=5))
        st = os.lstat(p)
        out.append((st.st_atime_ns, st.st_mtime_ns))
        # UTIME_OMIT leaves a time alone; UTIME_NOW sets it to the current time.
        out.append(ss(mask=STATX_ATIME | STATX_MTIME, atime_nsec=UTIME_OMIT,
                      mtime_sec=1_300_000_000, mtime_nsec=0))
        st = os.lstat(p)
        out.append((st.st_atime_ns, st.st_mtime_ns))
        before = time.time_ns()
        out.append(ss(mask=STATX_ATIME | STATX_MTIME, atime_nsec=UTIME_NOW, mtime_nsec=UTIME_OMIT))
        st = os.lstat(p)
        assert st.st_atime_ns >= before - 10**9 * 2 and st.st_mtime_ns == 1_300_000_000 * 10**9
        out.append(ss(mask=STATX_MTIME, mtime_nsec=UTIME_NOW))
        assert os.lstat(p).st_mtime_ns >= before - 10**9 * 2
        # What the client sees agrees with the host.
        assert_matches_host(side.fstat(fd), os.lstat(p))
        out.append(("mask outside the allowed bits", side.errno("setstat", fd=fd, mask=STATX_NLINK)))
        out.append(("nothing", ss(mask=0)))
        return out
    differential(open_side, run)


def test_setstat_partial_failure_same_as_fsgofer(open_side):
    def run(side):
        out = []
        d, link = side.fd("sub"), side.fd("link")
        r = side.call("setstat", fd=d, mask=STATX_MODE | STATX_SIZE | STATX_MTIME, mode=0o700,
                      size=0, mtime_sec=1_100_000_000, mtime_nsec=0)
        st = os.lstat(side.host / "sub")
        out.append(("dir", r["failure_mask"], r["failure_errno"], oct(st.st_mode), st.st_mtime_ns))
        r = side.call("setstat", fd=link, mask=STATX_MODE | STATX_UID | STATX_MTIME, mode=0o600,
                      uid=4242, mtime_sec=1_100_000_000, mtime_nsec=7)
        st = os.lstat(side.host / "link")
        out.append(("symlink", r["failure_mask"], r["failure_errno"], oct(st.st_mode),
                    st.st_uid, st.st_mtime_ns))
        return out
    differential(open_side, run)


def test_setstat_on_special_files_same_as_fsgofer(open_side):
    def run(side):
        _special_files(side.host)
        out = []
        for name in ("fifo", "sock"):
            r = side.call("setstat", fd=side.fd(name), mask=STATX_MODE | STATX_GID, mode=0o604,
                          gid=99)
            st = os.lstat(side.host / name)
            out.append((name, r["failure_mask"], r["failure_errno"], oct(st.st_mode), st.st_gid))
        return out
    differential(open_side, run)


# == Allocate =====================================================================

def test_allocate_same_as_fsgofer(open_side):
    def run(side):
        out = []
        rw = side.open("file.bin", os.O_RDWR)["open_fd"]
        side.call("allocate", fd=rw, offset=0, length=100000)
        out.append(os.stat(side.host / "file.bin").st_size)
        assert (side.host / "file.bin").read_bytes()[:len(FILE_BYTES)] == FILE_BYTES
        out.append(("keep size", side.errno("allocate", fd=rw, mode=1, offset=0, length=1 << 20),
                    os.stat(side.host / "file.bin").st_size))
        ro = side.open("file.bin", os.O_RDONLY)["open_fd"]
        out.append(("rdonly", side.errno("allocate", fd=ro, offset=0, length=10)))
        out.append(("control fd", side.errno("allocate", fd=side.fd("file.bin"), offset=0,
                                             length=10)))
        out.append(("zero length", side.errno("allocate", fd=rw, offset=0, length=0)))
        out.append(os.stat(side.host / "file.bin").st_size)
        return out
    differential(open_side, run)


# == StatFS =======================================================================

def test_statfs_matches_host_and_fsgofer(open_side):
    def run(side):
        s = side.call("statfs", fd=side.top)["statfs"]
        v = os.statvfs(side.host)
        assert (s["block_size"], s["blocks"], s["name_length"]) == (v.f_bsize, v.f_blocks,
                                                                    v.f_namemax)
        assert s["files"] == v.f_files
        s2 = side.call("statfs", fd=side.fd("file.bin"))["statfs"]
        return (s["type"], s["block_size"], s["blocks"], s["name_length"], s2["type"])
    differential(open_side, run)


# == Unlink =======================================================================

def test_unlink_same_as_fsgofer(open_side):
    def run(side):
        t = side.top
        (side.host / "empty" / "x").write_bytes(b"")
        out = [
            ("file", side.errno("unlink_at", fd=t, name="file.bin")),
            ("dir without AT_REMOVEDIR", side.errno("unlink_at", fd=t, name="sub")),
            ("file with AT_REMOVEDIR", side.errno("unlink_at", fd=t, name="link",
                                                 flags=AT_REMOVEDIR)),
            ("non-empty dir", side.errno("unlink_at", fd=t, name="sub", flags=AT_REMOVEDIR)),
            ("missing", side.errno("unlink_at", fd=t, name="nope")),
            ("bad flags", side.errno("unlink_at", fd=t, name="link", flags=0x1)),
            ("in a file", side.errno("unlink_at", fd=side.fd("sub/inner.txt"), name="x")),
            ("symlink to dir", side.errno("unlink_at", fd=t, name="dirlink")),
            ("file in subdir", side.errno("unlink_at", fd=side.fd("empty"), name="x")),
            ("now-empty dir", side.errno("unlink_at", fd=t, name="empty", flags=AT_REMOVEDIR)),
        ]
        for bad in (".", "..", "", "sub/inner.txt"):
            out.append(("bad name", bad, side.errno("unlink_at", fd=t, name=bad,
                                                    flags=AT_REMOVEDIR if bad else 0)))
        out.append(sorted(os.listdir(side.host)))
        return out
    differential(open_side, run)


def test_unlinked_file_fds_keep_working_same_as_fsgofer(open_side):
    def run(side):
        ctl = side.fd("file.bin")
        ofd = side.open("file.bin", os.O_RDWR)["open_fd"]
        side.call("unlink_at", fd=side.top, name="file.bin")
        assert not (side.host / "file.bin").exists()
        out = [side.call("pread", fd=ofd, count=4)["data"],
               side.call("pwrite", fd=ofd, data=b"Z", offset=0)["count"],
               side.call("pread", fd=ofd, count=4)["data"],
               ("fstat ctl", side.request("fstat", fd=ctl).get("stat", {}).get("nlink")),
               ("fstat open", side.fstat(ofd)["nlink"]),
               ("setstat on deleted", side.call("setstat", fd=ctl, mask=STATX_SIZE, size=2)
                ["failure_mask"], side.fstat(ofd)["size"]),
               ("open deleted", side.errno("open_at", fd=ctl, flags=os.O_RDONLY)),
               ("walk deleted name", side.errno("walk", fd=side.top, name="file.bin")),
               ("link deleted", side.errno("link_at", fd=side.top, target=ctl, name="back"))]
        sub = side.fd("sub/deeper")
        side.call("unlink_at", fd=side.fd("sub/deeper"), name="leaf")
        side.call("unlink_at", fd=side.fd("sub"), name="deeper", flags=AT_REMOVEDIR)
        out += [("create in deleted dir", side.errno("open_create_at", fd=sub, name="n",
                                                     flags=os.O_RDWR, mode=0o600)),
                ("mkdir in deleted dir", side.errno("mkdir_at", fd=sub, name="n", mode=0o700)),
                ("walk in deleted dir", side.errno("walk", fd=sub, name="leaf"))]
        out.append(sorted(os.listdir(side.host)))
        return out
    differential(open_side, run)


# == Symlink + ReadLinkAt =========================================================

def test_symlink_and_readlink_same_as_fsgofer(open_side):
    def run(side):
        out = []
        long_target = "x/" * 2000 + "end"
        for name, target in (("s1", "file.bin"), ("s2", "/etc/passwd"), ("s3", "../../x"),
                             ("s4", long_target), ("s5", "dangling")):
            ino = side.call("symlink_at", fd=side.top, name=name, target=target)["inode"]
            assert os.readlink(side.host / name) == target
            assert_matches_host(ino["stat"], os.lstat(side.host / name))
            assert side.call("read_link_at", fd=ino["fd"])["target"] == target
            assert side.call("read_link_at", fd=side.fd(name))["target"] == target
            out.append((name, oct(ino["stat"]["mode"]), ino["stat"]["size"]))
        ino = side.call("symlink_at", fd=side.top, name="owned", target="t", uid=1234,
                        gid=4321)["inode"]
        st = os.lstat(side.host / "owned")
        out.append(("owned", st.st_uid, st.st_gid, ino["stat"]["uid"]))
        out.append(("exists", side.errno("symlink_at", fd=side.top, name="file.bin", target="x")))
        out.append(("empty target", side.errno("symlink_at", fd=side.top, name="e", target="")))
        out.append(("in a file", side.errno("symlink_at", fd=side.fd("file.bin"), name="e",
                                            target="x")))
        out.append(("readlink file", side.errno("read_link_at", fd=side.fd("file.bin"))))
        out.append(("readlink dir", side.errno("read_link_at", fd=side.fd("sub"))))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad name", bad, side.errno("symlink_at", fd=side.top, name=bad,
                                                    target="x")))
        return out
    differential(open_side, run)


# == HardLink =====================================================================

def test_hard_link_same_as_fsgofer(open_side):
    def run(side):
        f = side.walk("file.bin")
        h = side.call("link_at", fd=side.fd("sub"), target=f["fd"], name="hard")["inode"]
        host_st = os.lstat(side.host / "sub" / "hard")
        assert host_st.st_ino == os.lstat(side.host / "file.bin").st_ino
        assert h["stat"]["ino"] == f["stat"]["ino"] == host_st.st_ino
        assert (h["stat"]["dev_major"], h["stat"]["dev_minor"]) == (f["stat"]["dev_major"],
                                                                    f["stat"]["dev_minor"])
        assert_matches_host(h["stat"], host_st, times=False)
        out = [h["stat"]["nlink"], side.fstat(f["fd"])["nlink"], host_st.st_nlink]
        # Writing through one name is visible through the other.
        ofd = side.open("sub/hard", os.O_RDWR)["open_fd"]
        side.call("pwrite", fd=ofd, data=b"HARD", offset=0)
        assert (side.host / "file.bin").read_bytes()[:4] == b"HARD"
        lk = side.call("link_at", fd=side.top, target=side.fd("link"), name="hl")["inode"]
        out.append(("link a symlink", oct(lk["stat"]["mode"]), os.readlink(side.host / "hl")))
        out.append(("dir", side.errno("link_at", fd=side.top, target=side.fd("sub"), name="d2")))
        out.append(("exists", side.errno("link_at", fd=side.top, target=f["fd"], name="link")))
        out.append(("into a file", side.errno("link_at", fd=f["fd"], target=f["fd"], name="x")))
        out.append(("open fd as target", side.errno("link_at", fd=side.top, target=ofd, name="x")))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad name", bad, side.errno("link_at", fd=side.top, target=f["fd"],
                                                    name=bad)))
        side.call("unlink_at", fd=side.top, name="file.bin")
        out.append(("nlink after unlink", side.fstat(h["fd"])["nlink"]))
        return out
    differential(open_side, run)


# == Walk =========================================================================

def test_walk_same_as_fsgofer(open_side):
    def run(side):
        out = []
        for names in (["sub", "deeper", "leaf"], ["sub", "nope", "x"], ["nope"],
                      ["dirlink", "inner.txt"], ["link"], ["sub", "deeper"], []):
            r = side.request("walk_multiple", fd=side.top, names=names)
            out.append((names, r.get("errno"), r.get("status"),
                        [mode_of(i["stat"]) for i in r.get("inodes", [])]))
        r = side.call("walk_multiple", fd=side.top, names=["sub", "deeper", "leaf"])
        assert r["status"] == WALK_SUCCESS
        for i, p in zip(r["inodes"], ["sub", "sub/deeper", "sub/deeper/leaf"]):
            assert_matches_host(i["stat"], os.lstat(side.host / p))
        r = side.call("walk_multiple", fd=side.top, names=["dirlink", "inner.txt"])
        assert r["status"] == WALK_COMPONENT_SYMLINK and len(r["inodes"]) == 1
        r = side.call("walk_multiple", fd=side.top, names=["sub", "nope", "x"])
        assert r["status"] == WALK_COMPONENT_DOES_NOT_EXIST and len(r["inodes"]) == 1
        for names in (["file.bin", "x"], ["sub", ".."], ["sub", "."], ["sub", ""],
                      ["a/b"], ["sub", "deeper", "leaf", "x"]):
            out.append((names, side.errno("walk_multiple", fd=side.top, names=names)))
        out.append(("walk from file", side.errno("walk", fd=side.fd("file.bin"), name="x")))
        out.append(("walk from open fd", side.errno("walk", fd=side.open("sub")["open_fd"],
                                                    name="inner.txt")))
        out.append(("walk missing", side.errno("walk", fd=side.top, name="nope")))
        out.append(("walk through symlink", side.errno("walk", fd=side.fd("dirlink"),
                                                       name="inner.txt")))
        return out
    differential(open_side, run)


# == Rename =======================================================================

def test_rename_same_as_fsgofer(open_side):
    def run(side):
        t, h = side.top, side.host
        sub, empty = side.fd("sub"), side.fd("empty")
        (h / "a").write_bytes(b"A")
        (h / "b").write_bytes(b"B")
        (h / "c").write_bytes(b"C")
        (h / "full").mkdir()
        (h / "full" / "x").write_bytes(b"")
        out = []

        def rn(old, new_dir, new, flags=0, dir_fd=t):
            return side.errno("rename_at", fd=dir_fd, old_name=old, new_dir=new_dir,
                              new_name=new, flags=flags)

        out.append(("same dir", rn("a", t, "a2")))
        assert (h / "a2").read_bytes() == b"A" and not (h / "a").exists()
        out.append(("cross dir", rn("a2", sub, "a3")))
        assert (h / "sub" / "a3").read_bytes() == b"A"
        out.append(("replace", rn("b", t, "c")))
        assert (h / "c").read_bytes() == b"B" and not (h / "b").exists()
        out.append(("noreplace", rn("c", t, "file.bin", RENAME_NOREPLACE)))
        out.append(("noreplace ok", rn("c", empty, "c", RENAME_NOREPLACE)))
        out.append(("exchange", rn("file.bin", sub, "inner.txt", RENAME_EXCHANGE)))
        assert (h / "file.bin").read_bytes() == b"inner\n"
        assert (h / "sub" / "inner.txt").read_bytes() == FILE_BYTES
        out.append(("exchange file/dir", rn("file.bin", t, "full", RENAME_EXCHANGE)))
        assert (h / "file.bin" / "x").exists() and (h / "full").read_bytes() == b"inner\n"
        rn("file.bin", t, "full2")
        rn("full", t, "file.bin")
        rn("full2", t, "full")
        out.append(("exchange missing", rn("file.bin", t, "nope", RENAME_EXCHANGE)))
        out.append(("bad flags", rn("file.bin", t, "zz", 0x80)))
        out.append(("noreplace|exchange", rn("file.bin", t, "link",
                                             RENAME_NOREPLACE | RENAME_EXCHANGE)))
        out.append(("dir over non-empty", rn("sub", t, "full")))
        out.append(("dir over empty dir", rn("empty", t, "e2")))
        (h / "e3").mkdir()
        out.append(("dir over empty dir (replace)", rn("e2", t, "e3")))
        out.append(("file over dir", rn("file.bin", t, "e3")))
        out.append(("dir over file", rn("e3", t, "file.bin")))
        out.append(("dir into itself", rn("sub", sub, "inside")))
        out.append(("missing", rn("nope", t, "x")))
        out.append(("same name", rn("file.bin", t, "file.bin")))
        out.append(("symlink", rn("dirlink", sub, "dl")))
        assert os.readlink(h / "sub" / "dl") == "sub"
        out.append(("new dir is a file", rn("link", side.fd("file.bin"), "x")))
        out.append(("old dir is a file", rn("x", t, "y", dir_fd=side.fd("file.bin"))))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad old", bad, rn(bad, t, "x")))
            out.append(("bad new", bad, rn("file.bin", t, bad)))
        out.append(sorted(os.listdir(h)))
        out.append(sorted(os.listdir(h / "sub")))
        return out
    differential(open_side, run)


def test_fds_held_on_renamed_files_keep_working_same_as_fsgofer(open_side):
    def run(side):
        t, h = side.top, side.host
        f_ctl = side.fd("file.bin")
        f_open = side.open("file.bin", os.O_RDWR)["open_fd"]
        sub = side.fd("sub")
        deeper = side.fd("sub/deeper")
        lnk = side.fd("link")
        side.call("mkdir_at", fd=t, name="dst", mode=0o755)
        dst = side.fd("dst")
        side.call("rename_at", fd=t, old_name="file.bin", new_dir=sub, new_name="moved.bin")
        side.call("rename_at", fd=t, old_name="sub", new_dir=dst, new_name="sub2")
        side.call("rename_at", fd=t, old_name="link", new_dir=dst, new_name="link2")
        out = []
        # Through FDs held from before the renames:
        out.append(side.call("pread", fd=f_open, count=8)["data"])
        side.call("pwrite", fd=f_open, data=b"NEW", offset=0)
        assert (h / "dst" / "sub2" / "moved.bin").read_bytes()[:3] == b"NEW"
        assert_matches_host(side.fstat(f_ctl), os.lstat(h / "dst" / "sub2" / "moved.bin"))
        out.append(side.call("read_link_at", fd=lnk)["target"])
        out.append(mode_of(side.call("walk", fd=sub, name="inner.txt")["inode"]["stat"]))
        side.call("mkdir_at", fd=deeper, name="made", mode=0o700)
        assert (h / "dst" / "sub2" / "deeper" / "made").is_dir()
        r = side.call("open_create_at", fd=sub, name="created", flags=os.O_RDWR, mode=0o600)
        side.call("pwrite", fd=r["open_fd"], data=b"c", offset=0)
        assert (h / "dst" / "sub2" / "created").read_bytes() == b"c"
        side.call("setstat", fd=f_ctl, mask=STATX_MODE, mode=0o611)
        out.append(oct(os.lstat(h / "dst" / "sub2" / "moved.bin").st_mode))
        xr = side.request("set_xattr", fd=f_ctl, name="user.k", value=b"v")
        out.append(("xattr", xr.get("errno")))
        # The FD of a file replaced by a rename stays usable for I/O it already had.
        (h / "victim").write_bytes(b"victim")
        v_ctl, v_open = side.fd("victim"), side.open("victim")["open_fd"]
        side.call("rename_at", fd=t, old_name="empty", new_dir=t, new_name="e")
        (h / "repl").write_bytes(b"repl")
        side.call("rename_at", fd=t, old_name="repl", new_dir=t, new_name="victim")
        out.append(("victim read", side.call("pread", fd=v_open, count=10)["data"]))
        out.append(("victim fstat", side.request("fstat", fd=v_ctl).get("errno")))
        out.append(("victim open", side.errno("open_at", fd=v_ctl, flags=os.O_RDONLY)))
        out.append(sorted(os.listdir(h)))
        return out
    differential(open_side, run)


# == Mknod ========================================================================

def test_mknod_same_as_fsgofer(open_side):
    def run(side):
        out = []
        ino = side.call("mknod_at", fd=side.top, name="reg", mode=stat.S_IFREG | 0o640)["inode"]
        assert_matches_host(ino["stat"], os.lstat(side.host / "reg"))
        out.append(("reg", oct(os.lstat(side.host / "reg").st_mode)))
        ino = side.call("mknod_at", fd=side.top, name="owned", mode=stat.S_IFREG | 0o600,
                        uid=1234, gid=4321)["inode"]
        out.append(("owned", os.lstat(side.host / "owned").st_uid,
                    os.lstat(side.host / "owned").st_gid))
        for name, mode, mn, mj in (("fifo", stat.S_IFIFO | 0o600, 0, 0),
                                   ("null", stat.S_IFCHR | 0o600, 3, 1),
                                   ("whiteout", stat.S_IFCHR | 0o600, 0, 0),
                                   ("blk", stat.S_IFBLK | 0o600, 0, 7),
                                   ("sock", stat.S_IFSOCK | 0o600, 0, 0),
                                   ("notype", 0o600, 0, 0),
                                   ("dir", stat.S_IFDIR | 0o700, 0, 0)):
            e = side.errno("mknod_at", fd=side.top, name=name, mode=mode, minor=mn, major=mj)
            try:
                st = os.lstat(side.host / name)
                made = (oct(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev))
            except FileNotFoundError:
                made = None
            out.append((name, e, made))
        out.append(("exists", side.errno("mknod_at", fd=side.top, name="file.bin",
                                         mode=stat.S_IFREG | 0o600)))
        out.append(("in a file", side.errno("mknod_at", fd=side.fd("file.bin"), name="x",
                                            mode=stat.S_IFREG | 0o600)))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad name", bad, side.errno("mknod_at", fd=side.top, name=bad,
                                                    mode=stat.S_IFREG | 0o600)))
        return out
    differential(open_side, run)


def test_mkdir_same_as_fsgofer(open_side):
    def run(side):
        ino = side.call("mkdir_at", fd=side.top, name="d", mode=0o1751, uid=1234, gid=4321)["inode"]
        st = os.lstat(side.host / "d")
        assert_matches_host(ino["stat"], st)
        out = [(oct(st.st_mode), st.st_uid, st.st_gid)]
        out.append(("exists", side.errno("mkdir_at", fd=side.top, name="sub", mode=0o755)))
        out.append(("over symlink", side.errno("mkdir_at", fd=side.top, name="link", mode=0o755)))
        out.append(("in a file", side.errno("mkdir_at", fd=side.fd("file.bin"), name="x",
                                            mode=0o755)))
        for bad in (".", "..", "", "a/b"):
            out.append(("bad name", bad, side.errno("mkdir_at", fd=side.top, name=bad, mode=0o755)))
        return out
    differential(open_side, run)


# == Unix domain sockets ==========================================================

def test_uds_bind_listen_accept_connect(open_side):
    side = open_side("gofer", host_uds="all")
    r = side.call("bind_at", fd=side.top, name="b.sock", sock_type=socket.SOCK_STREAM, mode=0o751)
    st = os.lstat(side.host / "b.sock")
    assert stat.S_ISSOCK(st.st_mode) and r["notification_fd"] is True
    assert_matches_host(r["inode"]["stat"], st, times=False)
    side.call("listen", fd=r["bound_fd"], backlog=4)
    for msg in (b"ping", b"second"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(side.host / "b.sock"))
            c.sendall(msg)
            a = side.call("accept", fd=r["bound_fd"], send=b"pong:" + msg, recv=len(msg))
            assert a["host_fd"] is True and a["recv"] == msg
            assert c.recv(100) == b"pong:" + msg
    side.call("close_bound", fd=r["bound_fd"])
    # Connect to a host listener inside the tree, both directions of data.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
        ls.bind(str(side.host / "sub" / "h.sock"))
        ls.listen(1)
        ls.settimeout(10)
        fd = side.fd("sub/h.sock")
        import threading
        got = []

        def serve():
            conn, _ = ls.accept()
            with conn:
                got.append(conn.recv(5))
                conn.sendall(b"reply")
        th = threading.Thread(target=serve)
        th.start()
        r = side.call("connect", fd=fd, sock_type=socket.SOCK_STREAM, send=b"hello", recv=5)
        th.join(10)
        assert r["host_fd"] is True and r["sent"] == 5 and r["recv"] == b"reply"
        assert got == [b"hello"]
    # A datagram socket too.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ds:
        ds.bind(str(side.host / "d.sock"))
        r = side.call("connect", fd=side.fd("d.sock"), sock_type=socket.SOCK_DGRAM, send=b"dg")
        assert r["sent"] == 2 and ds.recv(10) == b"dg"


def test_uds_errors_same_as_fsgofer(open_side):
    def run(side):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
            ls.bind(str(side.host / "h.sock"))
            ls.listen(1)
            out = []
            r = side.call("bind_at", fd=side.top, name="b.sock", sock_type=socket.SOCK_STREAM)
            out.append(("listen twice", side.errno("listen", fd=r["bound_fd"]),
                        side.errno("listen", fd=r["bound_fd"])))
            out.append(("bind existing", side.errno("bind_at", fd=side.top, name="file.bin")))
            out.append(("bind in a file", side.errno("bind_at", fd=side.fd("file.bin"), name="x")))
            for bad in (".", "..", "", "a/b", "sub/x.sock"):
                out.append(("bind bad name", bad, side.errno("bind_at", fd=side.top, name=bad)))
            h = side.fd("h.sock")
            out.append(("connect dgram to stream", side.errno("connect", fd=h,
                                                              sock_type=socket.SOCK_DGRAM)))
            out.append(("connect bad type", side.errno("connect", fd=h, sock_type=99)))
            out.append(("connect a file", side.errno("connect", fd=side.fd("file.bin"))))
            out.append(("open a socket", side.errno("open_at", fd=h, flags=os.O_RDONLY)))
            # Not compared: connect after the host unlinks the socket file. fsgofer
            # connects by path (ENOENT); ours by the walked inode (/proc/self/fd).
            return out
    differential(open_side, run, host_uds="all")


def test_uds_refused_without_host_uds_same_as_fsgofer(open_side):
    def run(side):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
            ls.bind(str(side.host / "h.sock"))
            ls.listen(1)
            out = [("bind", side.errno("bind_at", fd=side.top, name="b.sock")),
                   ("connect", side.errno("connect", fd=side.fd("h.sock"))),
                   ("open", side.errno("open_at", fd=side.fd("h.sock"), flags=os.O_RDONLY))]
            out.append(sorted(os.listdir(side.host)))
            return out
    assert differential(open_side, run)[:2] == [("bind", errno.EPERM), ("connect", errno.EPERM)]


# == Getdents =====================================================================

def test_getdents_10k_entries_in_batches(ours):
    big = ours.host / "big"
    big.mkdir()
    names = {f"entry-{i:05d}-{'x' * (i % 40)}" for i in range(10_000)}
    (big / "base").write_bytes(b"")
    for n in names:  # hard links: new inodes are slow to make on this disk, names are not
        os.link(big / "base", big / n)
    names.add("base")
    os.mkdir(big / "adir")
    os.symlink("x", big / "alink")
    names |= {"adir", "alink"}
    ofd = ours.open("big")["open_fd"]
    got, batches = [], 0
    while batch := ours.call("getdents64", fd=ofd, count=8192)["dirents"]:
        got += batch
        batches += 1
        assert batches < 1000
    assert batches > 10  # really in batches
    listed = [e["name"] for e in got if e["name"] not in (".", "..")]
    assert len(listed) == len(set(listed)) and set(listed) == names
    dev = os.stat(big).st_dev
    for e in got:
        if e["name"] in (".", ".."):
            continue
        st = os.lstat(big / e["name"])
        assert (e["ino"], e["type"]) == (st.st_ino, DT[stat.S_IFMT(st.st_mode)]), e
        assert (e["dev_major"], e["dev_minor"]) == (os.major(dev), os.minor(dev))
    # A negative count rewinds (the sentry's first call after open).
    again = ours.call("getdents64", fd=ofd, count=-8192)["dirents"]
    assert again and {e["name"] for e in again} <= names | {".", ".."}
    assert again[0]["name"] == got[0]["name"]


def test_getdents_same_as_fsgofer(open_side):
    def run(side):
        for i in range(50):
            (side.host / "empty" / f"n{i}").write_bytes(b"")
        out = [side.names(), side.names("empty"), side.names("sub/deeper")]
        ofd = side.open("empty")["open_fd"]
        small = side.call("getdents64", fd=ofd, count=64)["dirents"]
        out.append(("count 64 gives few", 0 < len(small) <= 3))
        out.append(("getdents on a file", side.errno("getdents64", fd=side.open("file.bin")
                                                     ["open_fd"])))
        out.append(("getdents on a control fd", side.errno("getdents64", fd=side.fd("sub"))))
        return out
    differential(open_side, run)


# == xattrs =======================================================================

def test_xattrs_same_as_fsgofer(open_side):
    def run(side):
        f, d, lnk = side.fd("file.bin"), side.fd("sub"), side.fd("link")
        p = side.host / "file.bin"
        out = []
        side.call("set_xattr", fd=f, name="user.k", value=b"\x00v\xff")
        assert os.getxattr(p, "user.k") == b"\x00v\xff"
        out.append(side.call("get_xattr", fd=f, name="user.k")["value"])
        out.append(("size 0 = whole value", side.call("get_xattr", fd=f, name="user.k",
                                                      size=0)["value"]))
        out.append(("too small", side.errno("get_xattr", fd=f, name="user.k", size=1)))
        out.append(("create existing", side.errno("set_xattr", fd=f, name="user.k", value=b"x",
                                                  flags=XATTR_CREATE)))
        out.append(("replace missing", side.errno("set_xattr", fd=f, name="user.n", value=b"x",
                                                  flags=XATTR_REPLACE)))
        out.append(("replace", side.errno("set_xattr", fd=f, name="user.k", value=b"r",
                                          flags=XATTR_REPLACE), os.getxattr(p, "user.k")))
        out.append(("create", side.errno("set_xattr", fd=f, name="user.c", value=b"",
                                         flags=XATTR_CREATE), os.getxattr(p, "user.c")))
        big = os.urandom(4000)
        side.call("set_xattr", fd=f, name="user.big", value=big)
        assert side.call("get_xattr", fd=f, name="user.big")["value"] == big
        out.append(sorted(side.call("list_xattr", fd=f)["names"]))
        out.append(("get missing", side.errno("get_xattr", fd=f, name="user.none")))
        side.call("remove_xattr", fd=f, name="user.k")
        out.append(("removed", side.errno("get_xattr", fd=f, name="user.k"),
                    sorted(os.listxattr(p))))
        out.append(("remove missing", side.errno("remove_xattr", fd=f, name="user.k")))
        out.append(("bad namespace", side.errno("set_xattr", fd=f, name="bogus.k", value=b"v")))
        out.append(("trusted as root", side.errno("set_xattr", fd=f, name="trusted.k",
                                                  value=b"v")))
        out.append(("empty name", side.errno("get_xattr", fd=f, name="")))
        side.call("set_xattr", fd=d, name="user.dir", value=b"D")
        out.append(("dir", os.getxattr(side.host / "sub", "user.dir"),
                    side.call("list_xattr", fd=d)["names"]))
        out.append(("symlink user.", side.errno("set_xattr", fd=lnk, name="user.l", value=b"v")))
        out.append(("symlink list", side.request("list_xattr", fd=lnk).get("names")))
        out.append(("open fd", side.errno("get_xattr", fd=side.open("file.bin")["open_fd"],
                                          name="user.big")))
        return out
    differential(open_side, run)


def test_list_xattr_too_small_size_is_erange(open_side):
    def run(side):
        f = side.fd("file.bin")
        side.call("set_xattr", fd=f, name="user.long-attribute-name", value=b"v")
        return [side.errno("list_xattr", fd=f, size=3),
                sorted(side.call("list_xattr", fd=f, size=0)["names"])]
    assert differential(open_side, run) == [errno.ERANGE, ["user.long-attribute-name"]]


def test_uds_connect_with_creds_and_accept_same_as_fsgofer(open_side):
    """ConnectWithCreds checks the socket's permissions as the sandbox user; Accept
    never blocks."""
    def run(side):
        out = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ls:
            ls.bind(str(side.host / "priv.sock"))
            ls.listen(8)
            os.chmod(side.host / "priv.sock", 0o700)
            fd = side.fd("priv.sock")
            for euid, egid in ((0, 0), (1234, 1234), (0, 1234), (1234, 0)):
                r = side.request("connect", fd=fd, euid=euid, egid=egid, send=b"x")
                out.append(("creds", euid, egid, r.get("errno"), r.get("sent")))
            os.chmod(side.host / "priv.sock", 0o777)
            r = side.request("connect", fd=fd, euid=1234, egid=1234)
            out.append(("creds after chmod", r.get("errno")))
            # The gofer's own identity is restored after each ConnectWithCreds.
            out.append(("still root", side.errno("mkdir_at", fd=side.top, name="owned-by-root",
                                                 mode=0o700), os.lstat(side.host /
                                                                       "owned-by-root").st_uid))
        b = side.call("bind_at", fd=side.top, name="b.sock")["bound_fd"]
        side.call("listen", fd=b, backlog=2)
        out.append(("accept with nobody waiting", side.errno("accept", fd=b)))
        return out
    obs = differential(open_side, run, host_uds="all")
    assert obs[0][3] is None and obs[1][3] == errno.EACCES


# == special files: FIFOs, devices ================================================

def _devices(host):
    os.mkfifo(host / "fifo", 0o666)
    os.mknod(host / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(host / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 200))


@pytest.mark.parametrize("host_fifo", [None, "open"])
def test_fifos_and_devices_same_as_fsgofer(open_side, host_fifo):
    def run(side):
        _devices(side.host)
        out = []
        for name in ("fifo", "null"):
            ino = side.walk(name)
            out.append((name, oct(ino["stat"]["mode"]), ino["stat"]["rdev_major"],
                        ino["stat"]["rdev_minor"]))
            for flags in (os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
                r = side.request("open_at", fd=ino["fd"], flags=flags)
                out.append((name, oct(flags), r.get("errno"), r.get("host_fd"),
                            oct(r.get("host_flags", 0) & (os.O_ACCMODE | os.O_NONBLOCK))))
        # Block devices are not served at all (checkSupportedFileType).
        out.append(("walk blk", side.errno("walk", fd=side.top, name="blk")))
        out.append(("walk_stat blk", side.errno("walk_stat", fd=side.top, names=["blk"])))
        out.append(("walk_multiple blk", side.errno("walk_multiple", fd=side.top,
                                                    names=["blk", "x"])))
        out.append(("listed", side.names()))
        return out
    differential(open_side, run, host_fifo=host_fifo)


def test_fifo_donated_fd_is_the_fifo(open_side):
    side = open_side("gofer", host_fifo="open", setup=_devices)
    r = side.open("fifo", os.O_RDWR, write_host=b"x")
    st = os.stat(side.host / "fifo")
    assert r["host_fd"] is True and stat.S_ISFIFO(r["host_stat"]["mode"])
    assert r["host_stat"]["ino"] == st.st_ino
    assert r["host_flags"] & (os.O_ACCMODE | os.O_NONBLOCK) == os.O_RDWR | os.O_NONBLOCK
    assert r["host_write_errno"] == errno.ESPIPE  # the driver pwrite()s: a pipe refuses


# == names and lengths ============================================================

def test_long_names_and_targets_same_as_fsgofer(open_side):
    def run(side):
        t = side.top
        out = []
        for n in (255, 256, 4000):
            name = "n" * n
            out.append(("mkdir", n, side.errno("mkdir_at", fd=t, name=name, mode=0o755)))
            out.append(("create", n, side.errno("open_create_at", fd=t, name=name,
                                                flags=os.O_RDWR, mode=0o644)))
            out.append(("walk", n, side.errno("walk", fd=t, name=name)))
            out.append(("symlink", n, side.errno("symlink_at", fd=t, name="s" * n, target="x")))
        for n in (4095, 4096, 5000):
            out.append(("target", n, side.errno("symlink_at", fd=t, name=f"t{n}", target="x" * n)))
        out.append(("readlink 4095", len(side.call("read_link_at", fd=side.fd("t4095"))["target"])))
        out.append(("xattr name 255", side.errno("set_xattr", fd=side.fd("file.bin"),
                                                 name="user." + "k" * 250, value=b"v")))
        out.append(("xattr name 256", side.errno("set_xattr", fd=side.fd("file.bin"),
                                                 name="user." + "k" * 251, value=b"v")))
        out.append(("xattr value 64k-1", side.errno("set_xattr", fd=side.fd("file.bin"),
                                                    name="user.big", value=b"v" * 65535)))
        out.append(sorted(len(n) for n in os.listdir(side.host)))
        return out
    differential(open_side, run)


# == FD lifecycle =================================================================

def test_fd_lifecycle_same_as_fsgofer(open_side):
    def run(side):
        out = []
        ctl = side.fd("file.bin")
        ofd = side.open("file.bin", os.O_RDWR)["open_fd"]
        dfd = side.open("sub")["open_fd"]
        side.call("close", fd=ctl)
        out.append(("closed control fd", side.errno("fstat", fd=ctl)))
        out.append(("open fd outlives its control fd", side.call("pread", fd=ofd, count=4)["data"],
                    side.fstat(ofd)["size"]))
        out.append(("sync open fd", side.errno("sync", fd=ofd)))
        out.append(("sync dir open fd", side.errno("sync", fd=dfd)))
        out.append(("sync control fd", side.errno("sync", fd=side.fd("sub"))))
        out.append(("sync several", side.errno("sync", fds=[ofd, dfd])))
        side.call("close_batch", fds=[ofd, dfd])
        out.append(("closed open fd", side.errno("pread", fd=ofd, count=1)))
        out.append(("closed twice", side.errno("close", fd=ofd)))
        out.append(("setstat on open fd", side.errno("setstat", fd=side.open("file.bin")["open_fd"],
                                                     mask=STATX_MODE, mode=0o600)))
        out.append(("walk_stat '' on a symlink", len(side.call("walk_stat", fd=side.fd("link"),
                                                                names=[""])["stats"])))
        out.append(("walk_stat '', x on a symlink", side.errno("walk_stat", fd=side.fd("link"),
                                                               names=["", "x"])))
        out.append(("readlink via open fd", side.errno("read_link_at",
                                                       fd=side.open("file.bin")["open_fd"])))
        out.append(("xattr via open fd", side.errno("list_xattr",
                                                    fd=side.open("file.bin")["open_fd"])))
        # FDIDs are never reused.
        a = side.fd("sub")
        side.call("close", fd=a)
        b = side.fd("sub")
        out.append(("fdid reuse", a == b))
        return out
    differential(open_side, run)


# == several connections on one tree ==============================================

def test_connections_share_one_tree_same_as_fsgofer(open_side, transport):
    """Renames and unlinks made through one connection are seen by FDs another
    connection holds (one server node tree for all connections)."""
    def run(side):
        other = side.another(channels=not transport)
        out = []
        sub_b = other.fd("sub")
        f_b = other.fd("file.bin")
        f_b_open = other.open("file.bin", os.O_RDWR)["open_fd"]
        side.call("mkdir_at", fd=side.top, name="dst", mode=0o755)
        side.call("rename_at", fd=side.top, old_name="sub", new_dir=side.fd("dst"), new_name="s2")
        side.call("rename_at", fd=side.top, old_name="file.bin", new_dir=side.top, new_name="f2")
        # B's FDs follow the renames A made.
        other.call("mkdir_at", fd=sub_b, name="made-by-b", mode=0o755)
        out.append(("b creates in renamed dir", (side.host / "dst" / "s2" / "made-by-b").is_dir()))
        other.call("pwrite", fd=f_b_open, data=b"B", offset=0)
        out.append(("b writes renamed file", (side.host / "f2").read_bytes()[:1]))
        out.append(("b walks renamed dir", mode_of(other.call("walk", fd=sub_b,
                                                              name="inner.txt")["inode"]["stat"])))
        # A unlinks a file B holds, and removes a directory B holds.
        side.call("unlink_at", fd=side.top, name="f2")
        out.append(("b fstat unlinked", other.request("fstat", fd=f_b).get("errno")))
        out.append(("b reads unlinked", other.call("pread", fd=f_b_open, count=2)["data"]))
        e_b = other.fd("empty")
        side.call("unlink_at", fd=side.top, name="empty", flags=0x200)
        out.append(("b creates in removed dir", other.errno("mkdir_at", fd=e_b, name="x",
                                                            mode=0o755)))
        out.append(("b walks into removed dir", other.errno("walk", fd=e_b, name="x")))
        # Exchange across connections' views.
        (side.host / "a").write_bytes(b"a")
        (side.host / "b").write_bytes(b"b")
        a_b = other.fd("a")
        side.call("rename_at", fd=side.top, old_name="a", new_dir=side.top, new_name="b",
                  flags=RENAME_EXCHANGE)
        other.call("setstat", fd=a_b, mask=STATX_MODE, mode=0o600)
        out.append(("b setstat follows exchange", oct(os.lstat(side.host / "b").st_mode),
                    oct(os.lstat(side.host / "a").st_mode)))
        out.append(sorted(os.listdir(side.host)))
        return out
    differential(open_side, run)
