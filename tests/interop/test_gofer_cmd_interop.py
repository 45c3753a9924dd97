"""`gofer gofer` started as runsc starts its gofer, each socket driven by
gVisor's own Go client (over channels, as a directfs-off sentry does)."""
import errno
import os

import pytest

from test_gofer_cmd import Gofer, bundle  # noqa: F401  (fixture)

from .goclient import GoError


def names(gc, dir_fd):
    fd = gc.call("open_at", fd=dir_fd, flags=os.O_RDONLY)["open_fd"]
    out = {d["name"] for d in gc.call("getdents64", fd=fd)["dirents"]}
    gc.call("close", fd=fd)
    return out - {".", ".."}


@pytest.mark.parametrize("channels", [False, True], ids=["socket", "channels"])
def test_each_mount_behaves_as_configured(bundle, go_client, channels):  # noqa: F811
    g = Gofer(bundle, extra=["--apply-caps=false", "--setup-root=false"])     # seccomp on
    root, shared, ro, mem, data = (go_client(fd=s.fileno(), channels=channels) for s in g.socks)
    assert names(root, root.root_fd) == {"etc", "real", "via"}
    ino = root.call("walk_multiple", fd=root.root_fd, names=["etc", "hostname"])["inodes"][-1]
    fd = root.call("open_at", fd=ino["fd"], flags=os.O_RDONLY)["open_fd"]
    assert root.call("pread", fd=fd, count=100)["data"] == b"sandbox\n"

    made = shared.call("mkdir_at", fd=shared.root_fd, name="made", mode=0o755)["inode"]
    assert made["stat"]["ino"] == os.stat(bundle.shared / "made").st_ino

    with pytest.raises(GoError) as e:
        ro.call("mkdir_at", fd=ro.root_fd, name="x", mode=0o755)
    assert e.value.errno == errno.EROFS

    mem.call("mkdir_at", fd=mem.root_fd, name="m", mode=0o700)
    assert names(mem, mem.root_fd) == {"m"}
    assert not os.listdir(bundle.dir.parent / "memsrc")

    ino = data.call("walk", fd=data.root_fd, name="numbers")["inode"]
    assert ino["stat"]["size"] == 5

    assert [m["destination"] for m in g.mounts()] == ["/proc", "/real/shared", "/ro", "/mem",
                                                      "/tmp", "/data"]
    for gc in (root, shared, ro, mem, data):
        gc.close()
    rc, err = g.finish()
    assert rc == 0, err
