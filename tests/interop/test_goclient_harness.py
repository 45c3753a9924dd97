"""The harness itself: a hung or vanishing server must fail fast, never hang pytest."""

import socket
import threading
import time

import pytest

from .goclient import GoClient, GoDriverError, GoError


@pytest.fixture
def listener(sock_dir):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(str(sock_dir / "fake.sock"))
    ls.listen(4)
    yield ls, sock_dir / "fake.sock"
    ls.close()


def test_hung_server_times_out(lisafs_driver, listener):
    ls, path = listener
    accepted = []
    threading.Thread(target=lambda: accepted.append(ls.accept()), daemon=True).start()
    t = time.monotonic()
    with pytest.raises(GoDriverError, match="no answer"):
        GoClient(lisafs_driver, socket=path, timeout=1.0)  # Mount never answered
    assert time.monotonic() - t < 10


def test_server_hangup_during_mount_is_an_error(lisafs_driver, listener):
    ls, path = listener
    threading.Thread(target=lambda: ls.accept()[0].close(), daemon=True).start()
    with pytest.raises(GoError):
        GoClient(lisafs_driver, socket=path, timeout=10)


def test_bad_requests_get_driver_errors(go_client, refgofer, start_server, sock_dir):
    (sock_dir / "r").mkdir()
    sock = sock_dir / "r.sock"
    start_server([refgofer, "-root", sock_dir / "r", "-socket", sock], sock)
    gc = go_client(sock)
    assert gc.request("no_such_op")["errno"] == -1
    assert "missing argument" in gc.request("walk", fd=gc.root_fd)["error"]
    assert gc.request("fstat", fd="x")["errno"] == -1
    assert gc.call("fstat", fd=gc.root_fd)["ok"]  # still alive
