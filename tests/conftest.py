import os
import socket

import pytest

from gofer._server import ConnectionOpts, Server
from gofer.client import Client
from gofer.fsgofer import HostConnection
from gofer.service import Service


# The S3 server of the gofer-s3 / gofer-tiered tests (weed, bucket).
pytest_plugins = ["tests.backends.weed"]


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def describe_fds(fds):
    """What each of our FDs refers to, for a failure message."""
    out = {}
    for fd in fds:
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            out[fd] = "(closed since)"
    return out


@pytest.fixture
def tree(tmp_path):
    """A small host tree: a file, a subdirectory, a symlink, a nested file."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "file.txt").write_bytes(b"hello, gofer\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.bin").write_bytes(bytes(range(256)) * 40)
    (root / "link").symlink_to("sub")
    (tmp_path / "outside.txt").write_text("secret")
    return root


@pytest.fixture
def service():
    svc = Service(Server())
    yield svc
    svc.stop()


@pytest.fixture
def connect_impl(service):
    """connect_impl(ConnectionImpl, **opts) -> a Client of that backend,
    served in-process over a socketpair."""
    clients = []

    def make(impl, **opts):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        service.start(theirs.detach(), impl, ConnectionOpts(**opts))
        clients.append(Client(ours))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def connect(connect_impl):
    """connect(root, **opts) -> a Client of the stock backend serving root."""
    return lambda root, **opts: connect_impl(HostConnection(root), **opts)
