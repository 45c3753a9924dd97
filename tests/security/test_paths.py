"""Path attacks: names that climb, symlinks out (absolute, relative,
dangling), symlinks swapped in while walks race, hard links, host sockets,
and host-side renames under held FDs. Nothing outside the mount is read or
changed (conftest.World.check compares it byte for byte)."""
import errno
import os
import struct
import threading

import pytest

from gofer import _wire as w
from security.conftest import SECRET
from security.rawclient import sstr, u64

CREATE = struct.Struct("<QIIHHI")          # dir_fd, uid, gid, mode, pad, flags


def walk_answer(c, fd, *names):
    return c.rpc(w.WALK, u64(fd) + struct.pack("<H", len(names)) + b"".join(map(sstr, names)))


@pytest.mark.parametrize("name", [b"..", b".", b"", b"/", b"../outside", b"/etc",
                                  b"dir/inner", b"a\x00b"])
def test_names_that_climb_are_einval(world, name):
    c = world.connect()
    named = [
        (w.WALK, lambda n: u64(c.top) + struct.pack("<H", 1) + sstr(n)),
        (w.WALK_STAT, lambda n: u64(c.top) + struct.pack("<H", 1) + sstr(n)),
        (w.MKDIR_AT, lambda n: CREATE.pack(c.top, 0, 0, 0o755, 0, 0) + sstr(n)),
        (w.OPEN_CREATE_AT, lambda n: CREATE.pack(c.top, 0, 0, 0o644, 0, 0)
         + struct.pack("<I", os.O_RDWR) + sstr(n)),
        (w.SYMLINK_AT, lambda n: struct.pack("<QII", c.top, 0, 0) + sstr(n) + sstr(b"/etc")),
        (w.UNLINK_AT, lambda n: u64(c.top) + struct.pack("<I", 0) + sstr(n)),
        (w.RENAME_AT, lambda n: u64(c.top) + u64(c.top) + sstr(b"file") + sstr(n)),
        (w.LINK_AT, lambda n: u64(c.top) + u64(c.walk(c.top, "file")[0]) + sstr(n)),
    ]
    for mid, build in named:
        a = c.rpc(mid, build(name))
        if mid == w.WALK_STAT and name == b"":
            assert a.mid == w.WALK_STAT            # "" is the start itself
            continue
        assert a.errno in (errno.EINVAL, errno.ENOENT), (w.MID_NAMES[mid], a)
    assert (world.dir / "file").read_bytes()      # not renamed away


@pytest.mark.parametrize("link", ["escape", "up", "dangling"])
def test_symlinks_out_are_returned_never_followed(world, link):
    c = world.connect()
    a = walk_answer(c, c.top, link.encode(), b"secret")
    r = a.fields()
    assert r["status"] == w.WALK_COMPONENT_SYMLINK and len(r["inodes"]) == 1
    fd = r["inodes"][0].control_fd
    # Opening, reading, creating in, statting through it: never the target.
    assert c.rpc(w.OPEN_AT, struct.pack("<QII", fd, os.O_RDONLY, 0)).errno in (
        errno.EINVAL, errno.ELOOP)
    assert c.rpc(w.WALK, u64(fd) + struct.pack("<H", 1) + sstr(b"secret")).errno == errno.ENOTDIR
    for mid, payload in [
        (w.MKDIR_AT, CREATE.pack(fd, 0, 0, 0o755, 0, 0) + sstr(b"planted")),
        (w.OPEN_CREATE_AT, CREATE.pack(fd, 0, 0, 0o644, 0, 0) + struct.pack("<I", 2)
         + sstr(b"planted")),
        (w.GETDENTS64, struct.pack("<QiI", fd, 4096, 0)),
        (w.FSETXATTR, struct.pack("<QI", fd, 0) + sstr(b"user.x") + sstr(b"1")),
        (w.SETSTAT, struct.pack("<QIIIIQqqqq", fd, 0x2 | 0x200, 0o777, 0, 0, 0, 0, 0, 0, 0)),
    ]:
        a = c.rpc(mid, payload)
        if mid == w.SETSTAT and a.mid == w.SETSTAT:
            # Failures are reported per field; either way the target is untouched.
            continue
        assert a.mid == w.ERROR, (w.MID_NAMES[mid], a)
    # Creating over the dangling link out makes nothing outside.
    a = c.rpc(w.OPEN_CREATE_AT, CREATE.pack(c.top, 0, 0, 0o644, 0, 0)
              + struct.pack("<I", os.O_RDWR) + sstr(b"dangling"))
    assert a.errno == errno.EEXIST, a
    target = c.call(w.READLINK_AT, fd=fd)["target"]
    assert target == os.fsencode(os.readlink(world.dir / link))


def test_symlink_swapped_in_while_walks_race(world):
    """The host flips dir/ between a directory and a symlink to the outside
    while the client walks into it, opens, reads and creates there."""
    c = world.connect()
    d = world.dir
    (d / "dir" / "secret").write_bytes(b"inside\n")
    stop = threading.Event()
    flips = [0]

    def flipper():
        while not stop.is_set():
            try:
                os.rename(d / "dir", d / "parked")
                os.symlink(world.served.outside / "dir", d / "dir")
                os.unlink(d / "dir")
                os.rename(d / "parked", d / "dir")
                flips[0] += 1
            except OSError:
                pass
    t = threading.Thread(target=flipper)
    t.start()
    seen = set()
    try:
        for i in range(300):
            a = walk_answer(c, c.top, b"dir", b"secret")
            if a.mid != w.WALK:
                continue
            r = a.fields()
            if r["status"] != w.WALK_SUCCESS:
                continue
            f = r["inodes"][1].control_fd
            o = c.rpc(w.OPEN_AT, struct.pack("<QII", f, os.O_RDONLY, 0))
            if o.mid == w.OPEN_AT:
                p = c.rpc(w.PREAD, struct.pack("<QQII", 0, o.fields()["open_fd"], 100, 0))
                if p.mid == w.PREAD:
                    seen.add(p.fields()["data"])
            dfd = r["inodes"][0].control_fd
            c.rpc(w.MKDIR_AT, CREATE.pack(dfd, 0, 0, 0o755, 0, 0) + sstr(b"m%d" % i))
            c.rpc(w.CLOSE, struct.pack("<HQQ", 2, dfd, f))
    finally:
        stop.set()
        t.join()
    assert flips[0] > 0
    assert SECRET not in seen and seen <= {b"inside\n"}


def test_hard_links_stay_inside(world):
    c = world.connect()
    escape = c.walk(c.top, "escape")[0]
    # LinkAt of a symlink out links the symlink, never its target.
    a = c.rpc(w.LINK_AT, u64(c.top) + u64(escape) + sstr(b"hard"))
    if a.mid == w.LINK_AT:
        assert os.path.islink(world.dir / "hard")
    assert os.stat(world.served.outside / "secret").st_nlink == 1
    # A hard link of a directory is refused.
    dir_ = c.walk(c.top, "dir")[0]
    assert c.rpc(w.LINK_AT, u64(c.top) + u64(dir_) + sstr(b"dirlink")).mid == w.ERROR


def test_host_sockets_are_not_reachable(world):
    c = world.connect()
    hole = c.walk(c.top, "hole")[0]
    for mid in (w.CONNECT, w.CONNECT_WITH_CREDS):
        payload = struct.pack("<QII", hole, 1, 0) + (struct.pack("<II", 0, 0)
                                                      if mid == w.CONNECT_WITH_CREDS else b"")
        assert c.rpc(mid, payload).mid == w.ERROR
    a = c.rpc(w.BIND_AT, CREATE.pack(c.top, 0, 0, 0o140777, 0, 0) + struct.pack("<I", 1)
              + sstr(b"bound"))
    assert a.mid == w.ERROR
    world.hole.settimeout(0)
    with pytest.raises(BlockingIOError):
        world.hole.accept()                     # nobody connected


def test_host_renames_under_held_fds(world):
    """FDs follow their node when the host renames it; a name freed on the
    host and reused names the new file."""
    c = world.connect()
    d = world.dir
    inner = c.walk(c.top, "dir", "inner")[1]
    dir_ = c.walk(c.top, "dir")[0]
    os.rename(d / "dir", d / "empty" / "elsewhere")
    (d / "dir").mkdir()
    (d / "dir" / "inner").write_bytes(b"new one\n")
    assert c.call(w.FSTAT, fd=inner)["stat"].ino == os.stat(d / "empty" / "elsewhere" / "inner").st_ino
    o = c.open_at(inner, os.O_RDONLY)
    assert c.call(w.PREAD, fd=o, offset=0, count=100)["data"] == b"inner\n"
    # A fresh walk by name finds what is there now.
    again = c.walk(c.top, "dir", "inner")[1]
    o2 = c.open_at(again, os.O_RDONLY)
    assert c.call(w.PREAD, fd=o2, offset=0, count=100)["data"] == b"new one\n"
    # Creating under the held directory FD creates where that directory is now.
    a = c.rpc(w.MKDIR_AT, CREATE.pack(dir_, 0, 0, 0o755, 0, 0) + sstr(b"made"))
    assert a.mid == w.MKDIR_AT, a
    assert (d / "empty" / "elsewhere" / "made").is_dir()
