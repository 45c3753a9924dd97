"""Escape suite: the client is malicious and must never reach outside the served tree.

Every test gets a fresh test directory inside the served tree and a fresh "outside"
directory next to the served tree (never served), reachable from inside only by
symlinks (absolute and ../.. relative). After each attack the outside tree must be
unchanged — contents, modes, owners, mtimes, atimes (a read under relatime would
bump them: their atime is set before their mtime), xattrs — and nothing may appear
in it or next to the served trees.

Where fsgofer's behaviour is fd-based too, the same attack runs against gVisor's
fsgofer and must get the same answers. (fsgofer relies on runsc's chroot for its
few path-based calls — BindAt, Connect, l*xattr — so those are checked on ours only.)
"""

import errno
import os
import socket
import stat

import pytest

from .gofer_env import (FILE_BYTES, STATX_ATIME, STATX_GID, STATX_MODE, STATX_MTIME,
                        STATX_SIZE, STATX_UID, build_tree, differential, make_outside,
                        snapshot)
from .goclient import WALK_COMPONENT_SYMLINK

BAD_NAMES = ["..", ".", "", "a/b", "../x", "/", "sub/inner.txt", "x/..", "a\x00b"]


@pytest.fixture
def attack(server_pool, open_side):
    """attack(kind="gofer", prepare=None, **open_side kw) -> Side with side.out (the
    outside dir) and side.rel (the ../.. path from the test dir to it). prepare(out)
    runs before the outside is snapshotted; teardown checks it is unchanged."""
    guards = []

    def open_(kind="gofer", prepare=None, **kw):
        out = make_outside(server_pool.new_outside())
        if prepare is not None:
            prepare(out)

        def setup(host):
            build_tree(host)
            rel = os.path.relpath(out, host)
            (host / "abs_link").symlink_to(out / "secret")
            (host / "rel_link").symlink_to(f"{rel}/secret")
            (host / "abs_dirlink").symlink_to(out / "secretdir")
            (host / "rel_dirlink").symlink_to(f"{rel}/secretdir")
            (host / "dangling_abs").symlink_to(out / "created-by-attack")
            (host / "dangling_rel").symlink_to(f"{rel}/created-by-attack2")
            (host / "d").mkdir()
            (host / "d" / "inside").write_bytes(b"inside\n")
        side = open_side(kind, setup=setup, **kw)
        side.out, side.rel = out, os.path.relpath(out, side.host)
        before = snapshot(out)
        pool_entries = _pool_entries(server_pool)
        guards.append((side, before, pool_entries))
        return side

    yield open_
    for side, before, pool_entries in guards:
        assert snapshot(side.out) == before, f"{side.kind}: the outside tree changed"
        assert not os.path.lexists(side.out / "created-by-attack")
        assert _pool_entries(server_pool) <= pool_entries | _server_owned(server_pool)


def _pool_entries(pool):
    return set(os.listdir(pool.tmp))


def _server_owned(pool):
    return {n for n in os.listdir(pool.tmp) if n.startswith("g")}


# == names ========================================================================

def test_unsafe_names_are_einval_same_as_fsgofer(attack):
    def run(side):
        out = []
        for fd in (side.top, side.gc.root_fd, side.fd("sub")):
            for name in BAD_NAMES:
                out.append(("walk", name, side.errno("walk", fd=fd, name=name)))
        for names in (["sub", ".."], ["..", "sub"], ["sub", "", "x"], ["sub", "."],
                      ["sub", "deeper", "..", ".."]):
            out.append(("walk_multiple", names, side.errno("walk_multiple", fd=side.top,
                                                           names=names)))
            out.append(("walk_stat", names, side.errno("walk_stat", fd=side.top, names=names)))
        t = side.top
        for name in ("..", ".", "", "a/b", "../escaped", "x\x00y"):
            out.append(("mkdir", name, side.errno("mkdir_at", fd=t, name=name, mode=0o777)))
            out.append(("create", name, side.errno("open_create_at", fd=t, name=name,
                                                   flags=os.O_RDWR, mode=0o666)))
            out.append(("mknod", name, side.errno("mknod_at", fd=t, name=name,
                                                  mode=stat.S_IFREG | 0o666)))
            out.append(("symlink", name, side.errno("symlink_at", fd=t, name=name, target="/")))
            out.append(("link", name, side.errno("link_at", fd=t, target=side.fd("file.bin"),
                                                 name=name)))
            out.append(("unlink", name, side.errno("unlink_at", fd=t, name=name)))
            out.append(("rmdir", name, side.errno("unlink_at", fd=t, name=name, flags=0x200)))
            out.append(("rename from", name, side.errno("rename_at", fd=t, old_name=name,
                                                        new_dir=t, new_name="zz")))
            out.append(("rename to", name, side.errno("rename_at", fd=t, old_name="file.bin",
                                                      new_dir=t, new_name=name)))
        out.append(sorted(os.listdir(side.host)))
        return out
    obs = differential(attack, run)
    assert all(e == errno.EINVAL for *_, e in obs[:-1] if isinstance(e, int))


def test_walk_dotdot_from_mount_root(attack):
    side = attack()
    for name in ("..", "."):
        assert side.errno("walk", fd=side.gc.root_fd, name=name) == errno.EINVAL
    assert side.errno("walk_stat", fd=side.gc.root_fd, names=["", ".."]) == errno.EINVAL
    assert side.errno("walk_multiple", fd=side.gc.root_fd, names=[side.host.name, "..", ".."]) \
        == errno.EINVAL


# == symlinks pointing out ========================================================

def test_symlinks_out_are_returned_not_followed_same_as_fsgofer(attack):
    def run(side):
        out = []
        for name in ("abs_link", "rel_link", "abs_dirlink", "rel_dirlink", "dangling_abs"):
            ino = side.walk(name)
            st = os.lstat(side.host / name)
            assert stat.S_ISLNK(ino["stat"]["mode"]) and ino["stat"]["ino"] == st.st_ino
            assert side.call("read_link_at", fd=ino["fd"])["target"] == os.readlink(
                side.host / name)
            out.append((name, "open", side.errno("open_at", fd=ino["fd"], flags=os.O_RDONLY)))
            out.append((name, "open rw", side.errno("open_at", fd=ino["fd"], flags=os.O_RDWR)))
            out.append((name, "walk through", side.errno("walk", fd=ino["fd"], name="f")))
            out.append((name, "mkdir through", side.errno("mkdir_at", fd=ino["fd"], name="m",
                                                          mode=0o777)))
            out.append((name, "create through", side.errno(
                "open_create_at", fd=ino["fd"], name="c", flags=os.O_RDWR, mode=0o666)))
            out.append((name, "symlink through", side.errno("symlink_at", fd=ino["fd"],
                                                            name="s", target="x")))
            out.append((name, "mknod through", side.errno("mknod_at", fd=ino["fd"], name="n",
                                                          mode=stat.S_IFREG | 0o600)))
            out.append((name, "unlink through", side.errno("unlink_at", fd=ino["fd"], name="f")))
            out.append((name, "rename through", side.errno(
                "rename_at", fd=ino["fd"], old_name="f", new_dir=side.top, new_name="stolen")))
            out.append((name, "rename into", side.errno(
                "rename_at", fd=side.top, old_name="file.bin", new_dir=ino["fd"],
                new_name="planted")))
            out.append((name, "link into", side.errno("link_at", fd=ino["fd"],
                                                      target=side.fd("file.bin"), name="l")))
            out.append((name, "statfs", side.errno("statfs", fd=ino["fd"])))
            out.append((name, "fstat mode", stat.S_IFMT(side.fstat(ino["fd"])["mode"])))
            r = side.request("walk_multiple", fd=side.top, names=[name, "f"])
            out.append((name, "walk_multiple", r.get("status"), len(r.get("inodes", []))))
            r = side.request("walk_stat", fd=side.top, names=[name, "f"])
            out.append((name, "walk_stat", [stat.S_IFMT(s["mode"]) for s in r.get("stats", [])]))
        r = side.call("walk_multiple", fd=side.top, names=["rel_dirlink", "f"])
        assert r["status"] == WALK_COMPONENT_SYMLINK
        return out
    differential(attack, run)


def test_setstat_on_symlinks_out_never_touches_the_target_same_as_fsgofer(attack):
    def run(side):
        out = []
        for name in ("abs_link", "rel_link", "abs_dirlink"):
            fd = side.fd(name)
            r = side.call("setstat", fd=fd, mask=STATX_MODE, mode=0o777)
            out.append((name, "mode", r["failure_mask"], r["failure_errno"]))
            r = side.call("setstat", fd=fd, mask=STATX_SIZE, size=0)
            out.append((name, "size", r["failure_mask"], r["failure_errno"]))
            r = side.call("setstat", fd=fd, mask=STATX_UID | STATX_GID, uid=4242, gid=4343)
            out.append((name, "owner", r["failure_mask"], r["failure_errno"],
                        os.lstat(side.host / name).st_uid))
            r = side.call("setstat", fd=fd, mask=STATX_ATIME | STATX_MTIME, atime_sec=5,
                          mtime_sec=6)
            out.append((name, "times", r["failure_mask"], r["failure_errno"],
                        os.lstat(side.host / name).st_mtime_ns))
        return out
    differential(attack, run)


def test_xattrs_on_symlinks_out_never_touch_the_target(attack):
    side = attack()
    for name in ("abs_link", "rel_link", "abs_dirlink"):
        fd = side.fd(name)
        side.errno("set_xattr", fd=fd, name="user.evil", value=b"x")
        side.errno("set_xattr", fd=fd, name="trusted.evil", value=b"x")
        side.errno("remove_xattr", fd=fd, name="user.mark")
        assert side.errno("get_xattr", fd=fd, name="user.mark") != 0
        assert "user.mark" not in side.request("list_xattr", fd=fd).get("names", [])


def test_creating_over_dangling_symlinks_out_same_as_fsgofer(attack):
    """O_CREAT|O_EXCL, mkdir, mknod, symlink, link and bind never follow a final
    symlink: the names exist (as symlinks), nothing is created outside."""
    def run(side):
        out = []
        t = side.top
        for name in ("dangling_abs", "dangling_rel", "abs_link"):
            out.append((name, "create", side.errno("open_create_at", fd=t, name=name,
                                                   flags=os.O_RDWR | os.O_TRUNC, mode=0o666)))
            out.append((name, "mkdir", side.errno("mkdir_at", fd=t, name=name, mode=0o777)))
            out.append((name, "mknod", side.errno("mknod_at", fd=t, name=name,
                                                  mode=stat.S_IFREG | 0o666)))
            out.append((name, "symlink", side.errno("symlink_at", fd=t, name=name, target="x")))
            out.append((name, "link", side.errno("link_at", fd=t, target=side.fd("file.bin"),
                                                 name=name)))
            out.append((name, "still a symlink", stat.S_ISLNK(os.lstat(side.host / name).st_mode)))
        # Renaming over a symlink replaces the symlink itself.
        out.append(("rename over", side.errno("rename_at", fd=t, old_name="file.bin", new_dir=t,
                                              new_name="abs_link")))
        assert (side.host / "abs_link").read_bytes() == FILE_BYTES
        out.append(("unlink a symlink", side.errno("unlink_at", fd=t, name="rel_link")))
        return out
    differential(attack, run)


def test_bind_over_dangling_symlink_out(attack):
    side = attack(host_uds="all")
    for name in ("dangling_abs", "dangling_rel"):
        assert side.errno("bind_at", fd=side.top, name=name) == errno.EADDRINUSE
    assert not os.path.lexists(side.out / "created-by-attack2")


# == a directory swapped for a symlink between two RPCs ===========================

def _swap_dir_for_symlink(side, how):
    d = side.host / "d"
    if how == "rename":
        os.rename(d, side.host / "d.old")
    else:  # "rmdir": the held directory is deleted on the host
        os.unlink(d / "inside")
        os.rmdir(d)
    os.symlink(side.out / "secretdir", d)


@pytest.mark.parametrize("how", ["rename", "rmdir"])
def test_dir_swapped_for_symlink_same_as_fsgofer(attack, how):
    def run(side):
        d = side.walk("d")["fd"]
        d_open = side.open("d")["open_fd"]
        _swap_dir_for_symlink(side, how)
        out = []
        r = side.request("open_create_at", fd=d, name="new", flags=os.O_RDWR, mode=0o666)
        out.append(("create", r.get("errno")))
        if r.get("ok"):
            side.call("pwrite", fd=r["open_fd"], data=b"planted", offset=0)
        out.append(("mkdir", side.errno("mkdir_at", fd=d, name="nd", mode=0o777)))
        out.append(("mknod", side.errno("mknod_at", fd=d, name="nn", mode=stat.S_IFREG | 0o666)))
        out.append(("symlink", side.errno("symlink_at", fd=d, name="ns", target="x")))
        out.append(("link", side.errno("link_at", fd=d, target=side.fd("file.bin"), name="nl")))
        out.append(("walk to a name only outside", side.errno("walk", fd=d, name="f")))
        out.append(("walk", side.errno("walk", fd=d, name="inside")))
        out.append(("unlink outside name", side.errno("unlink_at", fd=d, name="f")))
        out.append(("rename outside name", side.errno("rename_at", fd=d, old_name="f",
                                                      new_dir=side.top, new_name="stolen")))
        out.append(("rename into", side.errno("rename_at", fd=side.top, old_name="file.bin",
                                              new_dir=d, new_name="planted2")))
        out.append(("setstat", side.call("setstat", fd=d, mask=STATX_MODE, mode=0o777)
                    ["failure_mask"]))
        r = side.request("getdents64", fd=d_open, count=65536)
        out.append(("getdents", r.get("errno"), sorted(e["name"] for e in r.get("dirents", [])
                                                       if e["name"] not in (".", ".."))))
        # A fresh walk sees the symlink and stops there.
        r = side.call("walk_multiple", fd=side.top, names=["d", "f"])
        out.append(("fresh walk", r["status"], len(r["inodes"]),
                    stat.S_IFMT(r["inodes"][0]["stat"]["mode"])))
        if how == "rename":
            out.append(sorted(os.listdir(side.host / "d.old")))
        return out
    obs = differential(attack, run)
    assert obs[-2 if how == "rename" else -1][1] == WALK_COMPONENT_SYMLINK


def test_file_swapped_for_symlink_same_as_fsgofer(attack):
    """A control FD held on a file keeps meaning that file after the host replaces
    it with a symlink to a file outside."""
    def run(side):
        f = side.fd("file.bin")
        os.rename(side.host / "file.bin", side.host / "file.old")
        os.symlink(side.out / "secret", side.host / "file.bin")
        out = []
        r = side.call("open_at", fd=f, flags=os.O_RDWR, read_host=64)
        out.append(("open held", r["host_data"][:8], r["host_stat"]["ino"] ==
                    os.lstat(side.host / "file.old").st_ino))
        side.call("pwrite", fd=r["open_fd"], data=b"W", offset=0)
        out.append(("read held", side.call("pread", fd=r["open_fd"], count=4)["data"]))
        r = side.call("setstat", fd=f, mask=STATX_SIZE | STATX_MODE | STATX_MTIME, size=3,
                      mode=0o600, mtime_sec=7)
        out.append(("setstat held", r["failure_mask"], os.lstat(side.host / "file.old").st_size))
        side.call("set_xattr", fd=f, name="user.k", value=b"v")
        out.append(("xattr held", os.getxattr(side.host / "file.old", "user.k")))
        out.append(("fresh open", side.errno("open_at", fd=side.fd("file.bin"),
                                             flags=os.O_RDONLY)))
        return out
    differential(attack, run)


# == hard links ===================================================================

def test_hard_link_cannot_reach_outside(attack):
    """LinkAt names its target by FDID, and every FDID is inside the tree: linking a
    symlink that points out links the symlink itself, never the file outside."""
    def run(side):
        out = []
        secret_ino = os.stat(side.out / "secret").st_ino
        for name in ("abs_link", "rel_link"):
            lnk = side.walk(name)
            r = side.request("link_at", fd=side.top, target=lnk["fd"], name=name + ".hard")
            out.append((name, r.get("errno")))
            if r.get("ok"):
                st = os.lstat(side.host / (name + ".hard"))
                assert stat.S_ISLNK(st.st_mode) and st.st_ino != secret_ino
                assert r["inode"]["stat"]["ino"] != secret_ino
        # A held file FD whose name was swapped for a symlink out.
        f = side.fd("file.bin")
        os.rename(side.host / "file.bin", side.host / "file.old")
        os.symlink(side.out / "secret", side.host / "file.bin")
        r = side.request("link_at", fd=side.top, target=f, name="relinked")
        out.append(("swapped", r.get("errno")))
        if r.get("ok"):
            st = os.lstat(side.host / "relinked")
            assert st.st_ino != secret_ino
            if side.kind == "gofer":  # by inode; fsgofer relinks by name (the new symlink)
                assert st.st_ino == os.lstat(side.host / "file.old").st_ino
        out.append(("fdid of nothing", side.errno("link_at", fd=side.top, target=10**6,
                                                  name="x")))
        assert os.stat(side.out / "secret").st_nlink == 1
        return out
    differential(attack, run)


# == sockets ======================================================================

def test_bind_names_with_slash_are_rejected(attack):
    side = attack(host_uds="all")
    for name in (f"{side.rel}/evil.sock", "a/b", "../evil.sock", "/tmp/evil.sock", "..", ".", ""):
        assert side.errno("bind_at", fd=side.top, name=name) == errno.EINVAL, name
    assert not os.path.lexists(side.host.parent / "evil.sock")
    assert not os.path.lexists("/tmp/evil.sock")


def test_bind_and_connect_through_symlinks_out(attack):
    listeners = []

    def prepare(out):
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(str(out / "secretdir" / "evil.sock"))
        ls.listen(4)
        ls.setblocking(False)
        listeners.append(ls)
    side = attack(host_uds="all", prepare=prepare)
    with listeners[0] as ls:
        (side.host / "sock_link").symlink_to(side.out / "secretdir" / "evil.sock")
        # Connect on a symlink's FD: not a socket.
        assert side.errno("connect", fd=side.fd("sock_link")) == errno.ENOTSOCK
        # Bind through a directory symlink's FD: not a directory.
        assert side.errno("bind_at", fd=side.fd("abs_dirlink"), name="b.sock") == errno.ENOTDIR
        # A held directory FD swapped for a symlink out: bind lands inside or fails.
        d = side.fd("d")
        _swap_dir_for_symlink(side, "rename")
        r = side.request("bind_at", fd=d, name="b2.sock")
        if r.get("ok"):
            assert stat.S_ISSOCK(os.lstat(side.host / "d.old" / "b2.sock").st_mode)
        # A held socket FD whose name is swapped for a symlink to the outside listener.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as inner:
            inner.bind(str(side.host / "in.sock"))
            inner.listen(4)
            s = side.fd("in.sock")
            os.rename(side.host / "in.sock", side.host / "in.old")
            os.symlink(side.out / "secretdir" / "evil.sock", side.host / "in.sock")
            side.request("connect", fd=s, send=b"x")
        with pytest.raises(BlockingIOError):
            ls.accept()  # nobody ever reached the outside listener


# == what the client sees of the outside ===========================================

def test_getdents_of_root_reveals_nothing_outside(start_server, sock_dir, go_client, transport):
    import sys
    root = sock_dir / "root"
    root.mkdir()
    (root / "f").write_bytes(b"")
    sock = sock_dir / "g.sock"
    start_server([sys.executable, "-m", "gofer", "serve", root, "--socket", sock], sock)
    gc = go_client(sock, channels=transport)
    ofd = gc.call("open_at", fd=gc.root_fd, flags=os.O_RDONLY)["open_fd"]
    ents = gc.call("getdents64", fd=ofd, count=65536)["dirents"]
    parent_ino = os.stat(sock_dir).st_ino
    assert parent_ino not in {e["ino"] for e in ents}
