"""The wire codec against byte layouts built independently with `struct`
from the offsets in ../shared/spec/lisafs-wire.md §5-§6."""
import struct

import pytest

from gofer import _wire as w
from gofer._wire import Dirent, Inode, ProtocolError, Statx


def sstr(b):
    return struct.pack("<H", len(b)) + b


def statx(seed=1):
    return Statx(mask=0x7ff, blksize=4096, attributes=seed, nlink=2, uid=1000 + seed, gid=2000,
                 mode=0o100644, ino=123456789 + seed, size=1 << 40, blocks=8, attributes_mask=3,
                 atime_sec=-5, atime_nsec=1, btime_sec=2, btime_nsec=3, ctime_sec=4,
                 ctime_nsec=5, mtime_sec=6, mtime_nsec=999999999, rdev_major=7, rdev_minor=8,
                 dev_major=9, dev_minor=10)


def statx_bytes(seed=1):
    b = struct.pack("<IIQIIIHHQQQQ", 0x7ff, 4096, seed, 2, 1000 + seed, 2000, 0o100644, 0,
                    123456789 + seed, 1 << 40, 8, 3)
    for sec, nsec in ((-5, 1), (2, 3), (4, 5), (6, 999999999)):
        b += struct.pack("<qIi", sec, nsec, 0)
    return b + struct.pack("<IIII", 7, 8, 9, 10)


def inode(fd, seed=1):
    return Inode(fd, statx(seed))


def inode_bytes(fd, seed=1):
    return struct.pack("<Q", fd) + statx_bytes(seed)


CREATE = dict(dir_fd=3, uid=1000, gid=1001, mode=0o40755)
CREATE_B = struct.pack("<QIIHHI", 3, 1000, 1001, 0o40755, 0, 0)

# (mid, request fields, request bytes, response fields, response bytes)
CASES = [
    (w.MOUNT, {}, b"", dict(root=inode(1), max_message_size=2093056, supported=[1, 2, 3]),
     inode_bytes(1) + struct.pack("<IHHHH", 2093056, 3, 1, 2, 3)),
    (w.CHANNEL, {}, b"", dict(data_offset=4096, data_length=2097152), struct.pack("<qQ", 4096, 2097152)),
    (w.FSTAT, dict(fd=5), struct.pack("<Q", 5), dict(stat=statx()), statx_bytes()),
    (w.SETSTAT,
     dict(fd=5, mask=0x27a, mode=0o644, uid=1, gid=2, size=3, atime_sec=4, atime_nsec=(1 << 30) - 1,
          mtime_sec=-6, mtime_nsec=(1 << 30) - 2),
     struct.pack("<QIIIIQqqqq", 5, 0x27a, 0o644, 1, 2, 3, 4, (1 << 30) - 1, -6, (1 << 30) - 2),
     dict(failure_mask=0x200, failure_errno=1), struct.pack("<II", 0x200, 1)),
    (w.WALK, dict(dir_fd=1, path=[b"a", b"bc"]), struct.pack("<QH", 1, 2) + sstr(b"a") + sstr(b"bc"),
     dict(status=2, inodes=[inode(7), inode(8, 2)]),
     struct.pack("<BH", 2, 2) + inode_bytes(7) + inode_bytes(8, 2)),
    (w.WALK_STAT, dict(dir_fd=1, path=[b""]), struct.pack("<QH", 1, 1) + sstr(b""),
     dict(stats=[statx(), statx(3)]), struct.pack("<H", 2) + statx_bytes() + statx_bytes(3)),
    (w.OPEN_AT, dict(fd=9, flags=0o1002), struct.pack("<QII", 9, 0o1002, 0),
     dict(open_fd=10), struct.pack("<Q", 10)),
    (w.OPEN_CREATE_AT, dict(CREATE, flags=2, name=b"new"), CREATE_B + struct.pack("<I", 2) + sstr(b"new"),
     dict(child=inode(11), new_fd=12), inode_bytes(11) + struct.pack("<Q", 12)),
    (w.CLOSE, dict(fds=[1, 2, 1 << 63]), struct.pack("<HQQQ", 3, 1, 2, 1 << 63), {}, b""),
    (w.FSYNC, dict(fds=[4]), struct.pack("<HQ", 1, 4), {}, b""),
    (w.PWRITE, dict(offset=1 << 33, fd=4, data=b"xyz"), struct.pack("<QQI", 1 << 33, 4, 3) + b"xyz",
     dict(count=3), struct.pack("<Q", 3)),
    (w.PREAD, dict(offset=7, fd=4, count=4096), struct.pack("<QQII", 7, 4, 4096, 0),
     dict(data=b"hello"), struct.pack("<Q", 5) + b"hello"),
    (w.MKDIR_AT, dict(CREATE, name=b"d"), CREATE_B + sstr(b"d"), dict(child=inode(13)), inode_bytes(13)),
    (w.MKNOD_AT, dict(CREATE, minor=1, major=2, name=b"n"), CREATE_B + struct.pack("<II", 1, 2) + sstr(b"n"),
     dict(child=inode(14)), inode_bytes(14)),
    (w.SYMLINK_AT, dict(dir_fd=1, uid=5, gid=6, name=b"l", target=b"../t"),
     struct.pack("<QII", 1, 5, 6) + sstr(b"l") + sstr(b"../t"), dict(child=inode(15)), inode_bytes(15)),
    (w.LINK_AT, dict(dir_fd=1, target=7, name=b"h"), struct.pack("<QQ", 1, 7) + sstr(b"h"),
     dict(child=inode(16)), inode_bytes(16)),
    (w.FSTATFS, dict(fd=1), struct.pack("<Q", 1),
     dict(type=0xEF53, block_size=4096, blocks=1, blocks_free=2, blocks_available=3, files=4,
          files_free=5, name_length=255),
     struct.pack("<QqQQQQQQ", 0xEF53, 4096, 1, 2, 3, 4, 5, 255)),
    (w.FALLOCATE, dict(fd=4, mode=1, offset=2, length=3), struct.pack("<QQQQ", 4, 1, 2, 3), {}, b""),
    (w.READLINK_AT, dict(fd=15), struct.pack("<Q", 15), dict(target=b"../t"), sstr(b"../t")),
    (w.FLUSH, dict(fd=4), struct.pack("<Q", 4), {}, b""),
    (w.CONNECT, dict(fd=4, sock_type=1), struct.pack("<QII", 4, 1, 0), {}, b""),
    (w.UNLINK_AT, dict(dir_fd=1, flags=0x200, name=b"d"), struct.pack("<QI", 1, 0x200) + sstr(b"d"), {}, b""),
    (w.RENAME_AT, dict(old_dir=1, new_dir=2, old_name=b"a", new_name=b"bb"),
     struct.pack("<QQ", 1, 2) + sstr(b"a") + sstr(b"bb"), {}, b""),
    (w.GETDENTS64, dict(dir_fd=4, count=-65536), struct.pack("<QiI", 4, -65536, 0),
     dict(dirents=[Dirent(1, 2, 3, 4, 5, b"x"), Dirent(6, 7, 8, 9, 4, b"yz")]),
     struct.pack("<H", 2) + struct.pack("<QIIQB", 1, 2, 3, 4, 5) + sstr(b"x")
     + struct.pack("<QIIQB", 6, 7, 8, 9, 4) + sstr(b"yz")),
    (w.FGETXATTR, dict(fd=1, buf_size=0, name=b"user.a"), struct.pack("<QI", 1, 0) + sstr(b"user.a"),
     dict(value=b"v"), sstr(b"v")),
    (w.FSETXATTR, dict(fd=1, flags=1, name=b"user.a", value=b"\x00\x01"),
     struct.pack("<QI", 1, 1) + sstr(b"user.a") + sstr(b"\x00\x01"), {}, b""),
    (w.FLISTXATTR, dict(fd=1, size=0), struct.pack("<QQ", 1, 0),
     dict(xattrs=[b"user.a", b"user.b"]), struct.pack("<H", 2) + sstr(b"user.a") + sstr(b"user.b")),
    (w.FREMOVEXATTR, dict(fd=1, name=b"user.a"), struct.pack("<Q", 1) + sstr(b"user.a"), {}, b""),
    (w.BIND_AT, dict(CREATE, sock_type=5, name=b"s"), CREATE_B + struct.pack("<I", 5) + sstr(b"s"),
     dict(child=inode(17), bound_socket_fd=18), inode_bytes(17) + struct.pack("<Q", 18)),
    (w.LISTEN, dict(fd=18, backlog=-1), struct.pack("<QiI", 18, -1, 0), {}, b""),
    (w.ACCEPT, dict(fd=18), struct.pack("<Q", 18), dict(peer_addr=b""), sstr(b"")),
    (w.CONNECT_WITH_CREDS, dict(fd=4, sock_type=2, uid=3, gid=4), struct.pack("<QIIII", 4, 2, 0, 3, 4),
     {}, b""),
    (w.RENAME_AT2, dict(old_dir=1, new_dir=2, old_name=b"a", new_name=b"b", flags=2),
     struct.pack("<QQ", 1, 2) + sstr(b"a") + sstr(b"b") + struct.pack("<I", 2), {}, b""),
]


def test_every_mid_has_a_case():
    assert sorted(c[0] for c in CASES) == list(range(1, 34))
    assert len(w.MID_NAMES) == 34


@pytest.mark.parametrize("case", CASES, ids=lambda c: w.MID_NAMES[c[0]])
def test_request_bytes_and_round_trip(case):
    mid, req, req_b, _, _ = case
    assert w.encode_request(mid, req) == req_b
    assert w.decode_request(mid, req_b) == req


@pytest.mark.parametrize("case", CASES, ids=lambda c: w.MID_NAMES[c[0]])
def test_response_bytes_and_round_trip(case):
    mid, _, _, resp, resp_b = case
    assert w.encode_response(mid, resp) == resp_b
    assert w.decode_response(mid, resp_b) == resp


@pytest.mark.parametrize("case", CASES, ids=lambda c: w.MID_NAMES[c[0]])
def test_every_truncation_is_a_protocol_error(case):
    mid, _, req_b, _, resp_b = case
    for cut in range(len(req_b)):
        with pytest.raises(ProtocolError):
            w.decode_request(mid, req_b[:cut])
    for cut in range(len(resp_b)):
        with pytest.raises(ProtocolError):
            w.decode_response(mid, resp_b[:cut])


def test_error_response_is_four_bytes():
    assert w.encode_response(w.ERROR, dict(errno=2)) == b"\x02\x00\x00\x00"
    assert w.decode_response(w.ERROR, b"\x02\x00\x00\x00") == dict(errno=2)


def test_statx_offsets():
    b = statx().to_bytes()
    assert len(b) == 144 == w.STATX_SIZE_BYTES
    assert struct.unpack_from("<H", b, 28)[0] == 0o100644          # mode
    assert struct.unpack_from("<Q", b, 32)[0] == 123456790          # ino
    assert struct.unpack_from("<q", b, 64)[0] == -5                 # atime
    assert struct.unpack_from("<I", b, 120)[0] == 999999999         # mtime nsec
    assert struct.unpack_from("<IIII", b, 128) == (7, 8, 9, 10)     # rdev, dev
    assert Statx.from_bytes(b) == statx()


def test_overrunning_lengths_and_counts():
    # A string length past the end, a count past the end, a data length past the end.
    with pytest.raises(ProtocolError):
        w.decode_request(w.UNLINK_AT, struct.pack("<QIH", 1, 0, 10) + b"abc")
    with pytest.raises(ProtocolError):
        w.decode_request(w.WALK, struct.pack("<QH", 1, 60000) + sstr(b"a"))
    with pytest.raises(ProtocolError):
        w.decode_request(w.CLOSE, struct.pack("<HQ", 2, 1))
    with pytest.raises(ProtocolError):
        w.decode_request(w.PWRITE, struct.pack("<QQI", 0, 1, 0xffffffff) + b"x")
    with pytest.raises(ProtocolError):
        w.decode_response(w.PREAD, struct.pack("<Q", 1 << 63))


def test_trailing_bytes_and_padding_are_ignored():
    # go_marshal ignores both; so do we.
    assert w.decode_request(w.FSTAT, struct.pack("<Q", 5) + b"junk") == dict(fd=5)
    assert w.decode_request(w.OPEN_AT, struct.pack("<QII", 9, 0, 0xdeadbeef)) == dict(fd=9, flags=0)


def test_unencodable_values_are_refused():
    with pytest.raises(ValueError):
        w.encode_request(w.UNLINK_AT, dict(dir_fd=1, flags=0, name=b"x" * 65536))
    with pytest.raises(ValueError):
        w.encode_request(w.CLOSE, dict(fds=list(range(70000))))
    with pytest.raises(ProtocolError):
        w.encode_request(99, {})
