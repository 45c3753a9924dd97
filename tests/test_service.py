"""The service layer: connection threads, and the accept loop of `gofer serve`
when a connection cannot start."""
import _thread
import logging
import os
import socket
import threading

import pytest

from gofer._server import Connection, ConnectionOpts, Server, Thread
from gofer.client import Client
from gofer.fsgofer import HostConnection
from gofer.service import Service, Throttled


def fail_connection_threads(monkeypatch, times):
    """Thread.start fails for the next `times` connection threads, as it does
    when the process can make no more threads."""
    real = Thread.start
    left = [times]

    def start(self):
        if self.name.startswith("gofer-conn") and left[0] > 0:
            left[0] -= 1
            raise RuntimeError("can't start new thread")
        return real(self)
    monkeypatch.setattr(Thread, "start", start)


def test_threads():
    """gofer._server.Thread: what the service needs of threading.Thread."""
    from gofer._server import current_thread, running_threads
    go, seen = _thread.allocate_lock(), []
    go.acquire()

    def target(a, b):
        seen.append((a, b, current_thread()))
        go.acquire()
    t = Thread(target=target, args=(1, 2), name="gofer-test")
    assert not t.is_alive() and current_thread() is None
    t.start()
    with pytest.raises(RuntimeError):
        t.start()
    assert not t.join(0.05) and t.is_alive()
    assert t in running_threads() and t.ident
    go.release()
    assert t.join(10) and not t.is_alive()
    assert seen == [(1, 2, t)] and t not in running_threads()


def connect(path):
    """A Client, with a timeout so that a server that never answers fails the
    test instead of hanging it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(path)
        return Client(s)
    except BaseException:
        s.close()
        raise


def test_a_connection_whose_thread_cannot_start(tree, monkeypatch):
    service = Service(Server())
    fail_connection_threads(monkeypatch, 1)
    ours, theirs = socket.socketpair()
    ours.settimeout(30)
    with pytest.raises(RuntimeError):
        service.start(theirs.detach(), HostConnection(tree))
    assert ours.recv(1) == b""                          # start owned the FD: closed
    ours.close()
    service.stop()                                      # nothing to join, no error
    assert service.active() == 0


def test_the_accept_loop_outlives_a_connection_that_cannot_start(tree, tmp_path, monkeypatch,
                                                                 caplog):
    service = Service(Server())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "s")
    listener.bind(path)
    listener.listen(8)
    loop = threading.Thread(target=service.serve_listener,
                            args=(listener, lambda: (HostConnection(tree), ConnectionOpts())))
    loop.start()
    try:
        fail_connection_threads(monkeypatch, 1)
        with caplog.at_level(logging.WARNING, logger="gofer"):
            with pytest.raises(ConnectionError):
                connect(path)                           # closed without an answer
            with connect(path) as c:                    # the next one is served
                assert c.fstat(c.root.control_fd).ino == os.stat(tree).st_ino
        assert [r.getMessage() for r in caplog.records] == [
            "cannot serve a client (closed it): can't start new thread"]
    finally:
        listener.shutdown(socket.SHUT_RDWR)             # ends the loop
        loop.join(10)
        listener.close()
        service.stop()
    assert not loop.is_alive()


def test_throttled_warnings_say_what_they_left_out(caplog):
    now = [100.0]
    t = Throttled(interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gofer"):
        for _ in range(5):
            t.warning("out of %s", "FDs")
            now[0] += 1
        now[0] += 10
        t.warning("out of %s", "FDs")
    assert [r.getMessage() for r in caplog.records] == [
        "out of FDs", "out of FDs (and 4 more since the last report)"]


def test_a_connection_shut_down_before_it_serves_serves_nothing(tmp_path):
    """Service.stop may reach a connection whose thread has not begun to
    serve: serve() then returns at once, closing its socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    conn = Connection(Server(), HostConnection(tmp_path))
    conn.shutdown()
    t = threading.Thread(target=conn.serve, args=(theirs.detach(),))
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert ours.recv(1) == b""                      # closed: EOF
    ours.close()


def test_shutting_down_a_finished_connection_leaves_its_old_fd_number_alone(tmp_path):
    """A connection that has finished closed its socket, and the number may
    now be another file's: shutting the connection down (Service.stop racing
    a client that left) must not touch that file."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = theirs.detach()
    conn = Connection(Server(), HostConnection(tmp_path))
    t = threading.Thread(target=conn.serve, args=(fd,))
    t.start()
    ours.close()
    t.join(10)
    assert not t.is_alive()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reused = a if a.fileno() == fd else b
    assert reused.fileno() == fd                    # the lowest free number
    conn.shutdown()
    other = b if reused is a else a
    other.sendall(b"x")
    assert reused.recv(1) == b"x"
    reused.sendall(b"y")
    assert other.recv(1) == b"y"
    a.close()
    b.close()
