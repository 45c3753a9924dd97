"""Fixtures of the adversarial suite: one `gofer serve` per module on a
scratch directory, a fresh subtree per test, and after every test the
checks every attack must pass (see `World.check`)."""
import itertools
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from security.rawclient import GoferServer, Raw, snapshot, u64
from gofer import _wire as w

SECRET = b"host secret, never to be read through the gofer\n"
FILE = bytes(range(256)) * 16
LOG_BUDGET = 16384          # log bytes one test may add, whatever it sends


class Served:
    """base/mount is served; base/outside holds what no client may touch."""

    def __init__(self, base, refgofer=None):
        self.base = base
        self.mount = base / "mount"
        self.outside = base / "outside"
        self.mount.mkdir()
        self.outside.mkdir()
        (self.outside / "secret").write_bytes(SECRET)
        (self.outside / "dir").mkdir()
        (self.outside / "dir" / "secret").write_bytes(SECRET)
        self.server = GoferServer(self.mount, base / "s", base / "log", refgofer=refgofer)
        self._n = itertools.count()


class World:
    """A fresh subtree mount/tN of the served directory:

    file, dir/inner, empty/, link -> file, escape -> <outside> (absolute),
    up -> ../../outside (relative), dangling -> <outside>/new and hole (a
    host Unix socket, listening).
    """

    def __init__(self, served):
        self.served, self.server = served, served.server
        self.name = "t%d" % next(served._n)
        self.dir = served.mount / self.name
        self.dir.mkdir()
        d = self.dir
        (d / "file").write_bytes(FILE)
        (d / "dir").mkdir()
        (d / "dir" / "inner").write_bytes(b"inner\n")
        (d / "empty").mkdir()
        (d / "link").symlink_to("file")
        (d / "escape").symlink_to(served.outside)
        (d / "up").symlink_to("../../outside")
        (d / "dangling").symlink_to(served.outside / "new")
        self.hole = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.hole.bind(str(d / "hole"))
        self.hole.listen(1)
        self.outside_before = snapshot(served.outside)
        self.log_before = self.server.log_size()
        self.conns = []

    def connect(self, mount=True):
        """A connection (closed after the test); with mount, `c.top` is tN's FDID."""
        c = self.server.connect(mount)
        self.conns.append(c)
        if mount:
            c.top = c.walk(c.root, self.name)[0]
        return c

    def check(self):
        """What every attack must leave true."""
        assert self.server.alive(), self.server.log()
        with Raw(self.served.server.socket) as c:        # another client is served
            root = c.mount()
            a = c.rpc(w.FSTAT, u64(root))
            assert a.mid == w.FSTAT, a
            assert w.decode_response(w.FSTAT, a.body)["stat"].ino == os.stat(self.served.mount).st_ino
        assert snapshot(self.served.outside) == self.outside_before
        grew = self.server.log_size() - self.log_before
        assert grew <= LOG_BUDGET, self.server.log()[-4000:]

    def close(self):
        for c in self.conns:
            c.close()
        self.hole.close()


@pytest.fixture(scope="module")
def served():
    base = Path(tempfile.mkdtemp(prefix="gs-", dir="/tmp"))     # sun_path is short
    # GOFER_SECURITY_REFGOFER=PATH runs the suite against gVisor's fsgofer
    # (go build ./bench/peers/refgofer), for docs/reliability.md's comparison.
    s = Served(base, refgofer=os.environ.get("GOFER_SECURITY_REFGOFER"))
    yield s
    rc = s.server.stop()
    shutil.rmtree(base, ignore_errors=True)
    assert rc is None, "the gofer died (rc %s)" % rc


@pytest.fixture
def world(served):
    wd = World(served)
    yield wd
    try:
        wd.check()
    finally:
        wd.close()
