"""`gofer serve --readonly`: every mutating RPC is refused with EROFS, exactly as
gVisor's handlers do for a readonly connection, reads keep working, and the host
tree is unchanged afterwards (contents, modes, owners, mtimes, xattrs, links).
"""

import errno
import os
import socket
import stat

import pytest

from .gofer_env import (FILE_BYTES, RENAME_EXCHANGE, RENAME_NOREPLACE, STATX_ATIME,
                        STATX_GID, STATX_MODE, STATX_MTIME, STATX_SIZE, STATX_UID, build_tree,
                        differential, snapshot)


def ro_tree(host):
    build_tree(host)
    os.setxattr(host / "file.bin", "user.k", b"v")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(host / "old.sock"))
    s.close()


def mutations(side):
    """(label, errno) for every mutating RPC, each tried in several shapes."""
    t = side.top
    f, d, lnk = side.fd("file.bin"), side.fd("sub"), side.fd("link")
    ro_open = side.open("file.bin", os.O_RDONLY)["open_fd"]
    out = []
    for mask in (STATX_MODE, STATX_UID, STATX_GID, STATX_SIZE, STATX_ATIME, STATX_MTIME,
                 STATX_MODE | STATX_SIZE, 0):
        out.append(("setstat", hex(mask), side.errno("setstat", fd=f, mask=mask, mode=0o777,
                                                     uid=1, gid=1, size=0, mtime_sec=1)))
    out.append(("setstat dir", side.errno("setstat", fd=d, mask=STATX_MODE, mode=0o777)))
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_TRUNC):
        out.append(("open", oct(flags), side.errno("open_at", fd=f, flags=flags)))
    out.append(("open dir rw", side.errno("open_at", fd=d, flags=os.O_RDWR)))
    out.append(("open symlink rw", side.errno("open_at", fd=lnk, flags=os.O_RDWR)))
    for name in ("new", "file.bin"):
        for flags in (os.O_RDONLY, os.O_RDWR):
            out.append(("open_create", name, oct(flags), side.errno(
                "open_create_at", fd=t, name=name, flags=flags, mode=0o644)))
    out.append(("pwrite rdonly fd", side.errno("pwrite", fd=ro_open, data=b"x", offset=0)))
    out.append(("allocate rdonly fd", side.errno("allocate", fd=ro_open, offset=0, length=10)))
    out.append(("mkdir", side.errno("mkdir_at", fd=t, name="nd", mode=0o755)))
    out.append(("mkdir existing", side.errno("mkdir_at", fd=t, name="sub", mode=0o755)))
    out.append(("mknod", side.errno("mknod_at", fd=t, name="nn", mode=stat.S_IFREG | 0o644)))
    out.append(("mknod fifo", side.errno("mknod_at", fd=t, name="nf", mode=stat.S_IFIFO | 0o644)))
    out.append(("symlink", side.errno("symlink_at", fd=t, name="ns", target="x")))
    out.append(("link", side.errno("link_at", fd=t, target=f, name="nl")))
    out.append(("unlink", side.errno("unlink_at", fd=t, name="file.bin")))
    out.append(("unlink missing", side.errno("unlink_at", fd=t, name="nope")))
    out.append(("rmdir", side.errno("unlink_at", fd=t, name="empty", flags=0x200)))
    out.append(("rename", side.errno("rename_at", fd=t, old_name="file.bin", new_dir=d,
                                     new_name="x")))
    out.append(("rename same name", side.errno("rename_at", fd=t, old_name="file.bin",
                                               new_dir=t, new_name="file.bin")))
    out.append(("rename2 noreplace", side.errno("rename_at", fd=t, old_name="file.bin",
                                                new_dir=t, new_name="y", flags=RENAME_NOREPLACE)))
    out.append(("rename2 exchange", side.errno("rename_at", fd=t, old_name="file.bin",
                                               new_dir=t, new_name="sub", flags=RENAME_EXCHANGE)))
    out.append(("set_xattr", side.errno("set_xattr", fd=f, name="user.n", value=b"x")))
    out.append(("set_xattr replace", side.errno("set_xattr", fd=f, name="user.k", value=b"x")))
    out.append(("remove_xattr", side.errno("remove_xattr", fd=f, name="user.k")))
    out.append(("bind", side.errno("bind_at", fd=t, name="b.sock")))
    return out


def reads(side):
    """Reads still work on a readonly connection."""
    out = [side.read_file("file.bin") == FILE_BYTES, side.names("sub"),
           side.call("read_link_at", fd=side.fd("link"))["target"],
           side.call("get_xattr", fd=side.fd("file.bin"), name="user.k")["value"],
           side.call("list_xattr", fd=side.fd("file.bin"))["names"],
           side.call("statfs", fd=side.top)["statfs"]["name_length"]]
    r = side.open("file.bin", os.O_RDONLY, read_host=4, write_host=b"zz")
    out.append((r["host_fd"], r["host_data"], r.get("host_write_errno")))
    side.call("sync", fd=r["open_fd"])
    out.append(side.call("walk_multiple", fd=side.top, names=["sub", "deeper", "leaf"])["status"])
    return out


def test_readonly_refuses_every_mutation_same_as_fsgofer(open_side):
    def run(side):
        before = snapshot(side.host, atime=False)
        obs = [mutations(side), reads(side)]
        assert snapshot(side.host, atime=False) == before
        return obs
    refused, _ = differential(open_side, run, readonly=True, host_uds="all", setup=ro_tree)
    bad = [o for o in refused if o[-1] != errno.EROFS and o[0] != "open symlink rw"]
    assert not bad, f"not EROFS: {bad}"


def test_readonly_host_tree_unchanged_byte_for_byte(open_side, transport):
    side = open_side("gofer", readonly=True, host_uds="all", setup=ro_tree)
    before = snapshot(side.host, atime=False)
    mutations(side)
    # Mutations issued concurrently too, across the connection's channels.
    t, f = side.top, side.fd("file.bin")
    reqs = [{"op": "mkdir_at", "fd": t, "name": "p", "mode": 0o755},
            {"op": "setstat", "fd": f, "mask": STATX_SIZE, "size": 0},
            {"op": "unlink_at", "fd": t, "name": "file.bin"},
            {"op": "open_at", "fd": f, "flags": os.O_RDWR},
            {"op": "fstat", "fd": f}]
    r = side.call("parallel", goroutines=4, repeat=10, requests=reqs, summary=True)
    assert r["errnos"] == {str(errno.EROFS): 4 * 10 * 4} and r["ok_count"] == 40
    assert snapshot(side.host, atime=False) == before
    assert side.read_file("file.bin") == FILE_BYTES
    # The readonly server does not turn writable for a second connection.
    other = open_side("gofer", readonly=True, host_uds="all", setup=None)
    assert other.errno("mkdir_at", fd=other.top, name="x", mode=0o755) == errno.EROFS


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR])
def test_readonly_donated_fds_are_read_only(open_side, flags):
    side = open_side("gofer", readonly=True, setup=ro_tree)
    assert side.errno("open_at", fd=side.fd("file.bin"), flags=flags) == errno.EROFS
    r = side.open("file.bin", os.O_RDONLY, write_host=b"evil")
    assert r["host_flags"] & os.O_ACCMODE == os.O_RDONLY
    assert r["host_write_errno"] == errno.EBADF
    assert (side.host / "file.bin").read_bytes() == FILE_BYTES


def bad_fd_mutations(side):
    """Mutations naming an FDID that does not exist (or is of the wrong kind)."""
    bad, t = 10**6, side.top
    ctl = side.fd("file.bin")
    out = []
    out += [
        ("unknown", "allocate", side.errno("allocate", fd=bad, offset=0, length=1)),
        ("control fd", "allocate", side.errno("allocate", fd=ctl, offset=0, length=1)),
        ("unknown", "setstat", side.errno("setstat", fd=bad, mask=STATX_MODE, mode=0o777)),
        ("unknown", "open_create", side.errno("open_create_at", fd=bad, name="n",
                                              flags=os.O_RDWR, mode=0o644)),
        ("unknown", "mkdir", side.errno("mkdir_at", fd=bad, name="n", mode=0o755)),
        ("unknown", "mknod", side.errno("mknod_at", fd=bad, name="n", mode=stat.S_IFREG)),
        ("unknown", "symlink", side.errno("symlink_at", fd=bad, name="n", target="x")),
        ("unknown", "link dir", side.errno("link_at", fd=bad, target=ctl, name="n")),
        ("unknown", "link target", side.errno("link_at", fd=t, target=bad, name="n")),
        ("unknown", "unlink", side.errno("unlink_at", fd=bad, name="file.bin")),
        ("unknown", "rename", side.errno("rename_at", fd=bad, old_name="a", new_dir=t,
                                         new_name="b")),
        ("unknown", "set_xattr", side.errno("set_xattr", fd=bad, name="user.n", value=b"x")),
        ("unknown", "remove_xattr", side.errno("remove_xattr", fd=bad, name="user.k")),
        ("unknown", "bind", side.errno("bind_at", fd=bad, name="b.sock")),
        ("file as dir", "mkdir", side.errno("mkdir_at", fd=ctl, name="n", mode=0o755)),
        ("file as dir", "unlink", side.errno("unlink_at", fd=ctl, name="n")),
        ("bad name", "mkdir", side.errno("mkdir_at", fd=t, name="..", mode=0o755)),
    ]
    return out


def test_readonly_checked_before_fd_lookup_same_as_fsgofer(open_side):
    """gVisor's handlers test Readonly first: EROFS even for a bad or wrong-kind FDID."""
    differential(open_side, bad_fd_mutations, readonly=True, host_uds="all", setup=ro_tree)


def test_readonly_pwrite_and_open_check_readonly_first(open_side):
    def run(side):
        return [("pwrite unknown fd", side.errno("pwrite", fd=10**6, data=b"x", offset=0)),
                ("pwrite control fd", side.errno("pwrite", fd=side.fd("file.bin"), data=b"x")),
                ("open_at unknown fd rw", side.errno("open_at", fd=10**6, flags=os.O_RDWR))]
    assert differential(open_side, run, readonly=True, setup=ro_tree) == [
        ("pwrite unknown fd", errno.EROFS), ("pwrite control fd", errno.EROFS),
        ("open_at unknown fd rw", errno.EROFS)]
