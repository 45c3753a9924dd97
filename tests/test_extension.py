"""Extensions: registration, gVisor's per-mount dispatch, the in-memory
example through the Python client, and misbehaving extensions."""
import errno
import fcntl
import logging
import os
import socket
import subprocess
import sys

import pytest

from gofer import _wire as w
from gofer import extension
from gofer.client import Client
from gofer.extension import Extension, ExtensionError
from gofer.fsgofer import HostConnection
from gofer.lisafs import ConnectionImpl, ConnectionOpts, ControlFDImpl, Statx
from test_server import errno_of

gofer_memfs = pytest.importorskip(
    "gofer_memfs", reason="examples/memfs is not installed (scripts/test installs it)")


@pytest.fixture(autouse=True)
def clean_registry():
    extension.unregister_all()
    yield
    extension.unregister_all()


class Recorder(Extension):
    """Claims the mounts in `claims`, records every offer."""

    def __init__(self, name, claims=(), fail=None):
        self.name, self.claims, self.fail, self.offers = name, set(claims), fail, []

    def new_connection(self, spec, mount, mount_path, readonly):
        self.offers.append((mount, mount_path, readonly))
        if self.fail == mount_path:
            raise RuntimeError("backend unreachable")
        if mount_path in self.claims:
            return gofer_memfs.MemConnection(), ConnectionOpts(readonly=readonly)
        return None


def test_register_keeps_order_and_refuses_duplicates():
    a, b = extension.register(Recorder("a")), extension.register(Recorder("b"))
    assert extension.registered() == [a, b]
    with pytest.raises(ValueError):
        extension.register(Recorder("a"))
    with pytest.raises(TypeError):
        extension.register(object())
    with pytest.raises(ValueError):
        extension.register(Recorder(""))


def test_dispatch_order_decline_and_first_claim_wins():
    a = extension.register(Recorder("a", claims={"/data"}))
    b = extension.register(Recorder("b", claims={"/data", "/other"}))
    ext, impl, opts = extension.claim({}, {"destination": "/data"}, "/data", True)
    assert ext is a and isinstance(impl, ConnectionImpl) and opts.readonly
    assert b.offers == []                                  # never asked after a claim
    ext, _, opts = extension.claim({}, {"destination": "/other"}, "/other", False)
    assert ext is b and not opts.readonly
    assert a.offers[-1] == ({"destination": "/other"}, "/other", False)
    assert extension.claim({}, {"destination": "/x"}, "/x", False) is None


def test_root_is_offered_as_none_and_dev_never():
    a = extension.register(Recorder("a", claims={"/", "/dev"}))
    assert extension.claim({}, None, "/", True)[0] is a
    assert a.offers == [(None, "/", True)]
    assert extension.claim({}, {"destination": "/dev"}, "/dev", False) is None
    assert len(a.offers) == 1


def test_claim_and_fail_names_extension_and_mount():
    extension.register(Recorder("flaky", fail="/data"))
    extension.register(Recorder("later", claims={"/data"}))
    with pytest.raises(ExtensionError, match="flaky.*'/data'.*backend unreachable"):
        extension.claim({}, {}, "/data", False)


@pytest.mark.parametrize("bad", [42, (1, 2), ("x",), (ConnectionImpl(), None)])
def test_a_claim_of_the_wrong_shape_is_an_error(bad):
    class Bad(Extension):
        name = "bad"

        def new_connection(self, *a):
            return bad
    extension.register(Bad())
    with pytest.raises(ExtensionError, match="bad"):
        extension.claim({}, None, "/", False)


def test_prepare_runs_in_order_and_stops_at_the_first_failure():
    calls = []

    class P(Extension):
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def prepare(self, ctx):
            calls.append((self.name, ctx.container_id))
            if self.fail:
                raise OSError("no device")
    for e in (P("one"), P("two", fail=True), P("three")):
        extension.register(e)
    ctx = extension.PrepareContext(spec={}, container_id="c1", bundle_dir="/b")
    with pytest.raises(ExtensionError, match="two"):
        extension.prepare_all(ctx)
    assert calls == [("one", "c1"), ("two", "c1")]


def test_entry_point_discovery():
    [ext] = extension.load_entry_points(["memfs"])
    assert isinstance(ext, gofer_memfs.MemFSExtension)
    assert extension.registered() == [ext]
    with pytest.raises(ExtensionError, match="no installed extension named nope"):
        extension.load_entry_points(["nope"])


def test_mixed_mounts_share_one_server(tree, service):
    """A stock root and an extension-claimed /data on one Server."""
    extension.register(gofer_memfs.MemFSExtension())
    spec = {"mounts": [{"destination": "/data", "type": "memfs", "source": "none"}]}
    assert extension.claim(spec, None, "/", False) is None          # root stays stock
    _, impl, opts = extension.claim(spec, spec["mounts"][0], "/data", False)
    clients = []
    for backend, o, path in ((HostConnection(tree), ConnectionOpts(), "/"), (impl, opts, "/data")):
        ours, theirs = socket.socketpair()
        service.start(theirs.detach(), backend, o, path)
        clients.append(Client(ours))
    root, data = clients
    assert root.fstat(root.root.control_fd).ino == os.stat(tree).st_ino
    r = data.call(w.MKDIR_AT, dir_fd=data.root.control_fd, uid=0, gid=0, mode=0o755, name=b"d")
    assert r["child"].stat.mode == 0o40755 and not (tree / "d").exists()
    # One tree: the /data mount's node sits under the root's.
    assert sorted(service.server.tree_paths()) == [b"/", b"/data", b"/data/d"]
    for c in clients:
        c.close()


def test_memfs_through_the_client(connect_impl):
    c = connect_impl(gofer_memfs.MemConnection())
    root = c.root.control_fd
    r, fds = c.call_fds(w.OPEN_CREATE_AT, dir_fd=root, uid=1, gid=2, mode=0o640, flags=os.O_RDWR,
                        name=b"f")
    assert r["child"].stat.mode == 0o100640 and r["child"].stat.uid == 1
    (memfd,) = fds                                  # the file's memfd, read-write
    assert fcntl.fcntl(memfd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
    os.close(memfd)
    assert c.pwrite(r["new_fd"], 3, b"abc") == 3
    assert c.pread(r["new_fd"], 0, 10) == b"\0\0\0abc"
    c.call(w.MKDIR_AT, dir_fd=root, uid=0, gid=0, mode=0o755, name=b"dir")
    c.call(w.SYMLINK_AT, dir_fd=root, uid=0, gid=0, name=b"l", target=b"dir")
    c.call(w.RENAME_AT, old_dir=root, new_dir=root, old_name=b"f", new_name=b"g")
    c.call(w.FSETXATTR, fd=r["child"].control_fd, flags=0, name=b"user.a", value=b"1")
    assert c.call(w.FLISTXATTR, fd=r["child"].control_fd, size=0)["xattrs"] == [b"user.a"]
    d, _ = c.open_at(root, os.O_RDONLY)
    names = [e.name for e in c.getdents64(d, -65536)]
    assert names == [b"dir", b"l", b"g"]
    status, inodes = c.walk(root, [b"l", b"x"])
    assert status == w.WALK_COMPONENT_SYMLINK
    assert c.call(w.READLINK_AT, fd=inodes[0].control_fd)["target"] == b"dir"
    assert c.walk(root, [b"f"])[0] == w.WALK_COMPONENT_DOES_NOT_EXIST
    assert errno_of(c.call, w.UNLINK_AT, dir_fd=root, flags=0, name=b"dir") == errno.EISDIR
    assert errno_of(c.call, w.FLUSH, fd=d) == errno.EOPNOTSUPP            # not listed


class Misbehaving(ControlFDImpl):
    def __init__(self, mode):
        self.mode = mode

    def stat(self):
        if self.mode == "raise":
            raise RuntimeError("boom")
        if self.mode == "oserror":
            raise PermissionError(errno.EACCES, "no")
        if self.mode == "bare":                       # .errno is None, args[0] the errno
            raise OSError(errno.EACCES)
        if self.mode == "type":
            return {"mode": 0o40755}
        if self.mode == "notype":
            return Statx(mask=w.STATX_MODE, mode=0o40755)
        return Statx(mask=w.STATX_BASIC_STATS, mode=0o40755, ino=1)

    def walk(self, name):
        if name == b"wrong":
            return "not a pair"
        return Misbehaving(name.decode()), Misbehaving(name.decode()).stat()


    def get_xattr(self, name, size):
        return b"x" * int(name.split(b".")[1])


class MisbehavingConnection(ConnectionImpl):
    def mount(self):
        return Misbehaving("ok")

    def supported_messages(self):
        return super().supported_messages() + [w.FGETXATTR]


@pytest.mark.parametrize("mode, expected", [
    ("raise", errno.EREMOTEIO), ("oserror", errno.EACCES), ("bare", errno.EACCES),
    ("type", errno.EREMOTEIO), ("notype", errno.EREMOTEIO), ("wrong", errno.EREMOTEIO)])
def test_misbehaving_extension_gets_an_errno_and_a_log_line(connect_impl, caplog, mode, expected):
    c = connect_impl(MisbehavingConnection())
    with caplog.at_level(logging.DEBUG, logger="gofer"):
        assert errno_of(c.walk, c.root.control_fd, [mode.encode()]) == expected
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    if expected == errno.EREMOTEIO:
        # One line naming the RPC and the exception; the traceback only at debug.
        [line] = errors
        assert "Walk" in line.getMessage() and "answering EREMOTEIO" in line.getMessage()
        assert line.exc_info is None
        assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
    else:
        assert errors == []
    assert c.fstat(c.root.control_fd).ino == 1                 # still serving
    assert errno_of(c.call, w.MKDIR_AT, dir_fd=c.root.control_fd, uid=0, gid=0, mode=0,
                    name=b"x") == errno.EOPNOTSUPP


def test_a_value_beyond_a_sized_string_is_e2big(connect_impl):
    c = connect_impl(MisbehavingConnection())
    get = dict(fd=c.root.control_fd, buf_size=0)
    assert len(c.call(w.FGETXATTR, name=b"user.65535", **get)["value"]) == 65535
    assert errno_of(c.call, w.FGETXATTR, name=b"user.65536", **get) == errno.E2BIG


def test_the_core_refuses_values_no_backend_should_see(connect_impl):
    """Offsets beyond off_t, a fallocate mode beyond 32 bits and NUL inside
    C strings are EINVAL before the backend is called (memfs would take a
    negative offset as counting from the end of the file)."""
    c = connect_impl(gofer_memfs.MemConnection())
    root = c.root.control_fd
    r = c.call(w.OPEN_CREATE_AT, dir_fd=root, uid=0, gid=0, mode=0o644, flags=os.O_RDWR,
               name=b"f")
    fd, f = r["new_fd"], r["child"].control_fd
    c.pwrite(fd, 0, b"abc")
    assert errno_of(c.pwrite, fd, 2**64 - 1, b"X") == errno.EINVAL
    assert errno_of(c.pread, fd, 2**64 - 2, 1) == errno.EINVAL
    assert errno_of(c.call, w.FALLOCATE, fd=fd, mode=0, offset=1 << 63, length=1) == errno.EINVAL
    assert errno_of(c.call, w.FALLOCATE, fd=fd, mode=1 << 32, offset=0, length=1) == errno.EINVAL
    assert errno_of(c.call, w.SYMLINK_AT, dir_fd=root, uid=0, gid=0, name=b"l",
                    target=b"f\0") == errno.EINVAL
    assert errno_of(c.call, w.FSETXATTR, fd=f, flags=0, name=b"user.a\0", value=b"") \
        == errno.EINVAL
    assert c.pread(fd, 0, 10) == b"abc"
    assert c.call(w.FLISTXATTR, fd=f, size=0)["xattrs"] == []
    d, _ = c.open_at(root, os.O_RDONLY)
    assert [e.name for e in c.getdents64(d, -4096)] == [b"f"]


def test_gofer_serve_finds_the_extension_by_entry_point(tmp_path):
    sock = str(tmp_path / "m.sock")
    p = subprocess.Popen([sys.executable, "-m", "gofer", "serve", "--extension", "memfs",
                          "--socket", sock], stderr=subprocess.PIPE, text=True)
    try:
        assert "serving extension memfs" in p.stderr.readline()
        with Client.connect(sock) as c:
            c.call(w.MKDIR_AT, dir_fd=c.root.control_fd, uid=0, gid=0, mode=0o700, name=b"m")
            assert c.walk(c.root.control_fd, [b"m"])[1][0].stat.mode == 0o40700
    finally:
        p.terminate()
        p.wait(10)
    r = subprocess.run([sys.executable, "-m", "gofer", "serve", "--extension", "nope", "--socket",
                        sock], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no installed extension named nope" in r.stderr


@pytest.mark.parametrize("group", ["gofer.extensions", "console_scripts", "pytest11"])
def test_entry_points_found_as_importlib_metadata_finds_them(group):
    import importlib.metadata
    want = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=group)}
    got = {name: ep.value for name, ep in extension.installed_entry_points(group).items()}
    assert got == want
    assert "gofer" in got or group != "console_scripts"     # the scan found something
    if group == "gofer.extensions":
        ours = extension.installed_entry_points(group)["memfs"]
        assert ours.load() is importlib.metadata.entry_points(group=group)["memfs"].load()
