"""Runs LISAFS connections: one service thread per connection socket."""
import logging
import os
import socket
import threading

from gofer._server import Connection

log = logging.getLogger("gofer")


class Service:
    """Serves connections of one `Server` until stopped.

    `start(sock, impl, opts, mount_path)` takes ownership of a connected
    stream socket and serves it on its own thread; `stop()` shuts every live
    socket down so the threads finish, releasing their FDs.
    """

    def __init__(self, server):
        self.server = server
        self._lock = threading.Lock()
        self._threads = {}          # thread -> socket fd it serves

    def start(self, sock_fd, impl, opts=None, mount_path="/"):
        conn = Connection(self.server, impl, opts, mount_path)
        t = threading.Thread(target=self._run, args=(conn, sock_fd), daemon=True,
                             name="gofer-conn-%d" % sock_fd)
        with self._lock:
            self._threads[t] = sock_fd
        t.start()
        return t

    def _run(self, conn, sock_fd):
        try:
            conn.serve(sock_fd)
        except Exception:
            log.exception("connection on fd %d failed", sock_fd)
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)

    def active(self):
        with self._lock:
            return len(self._threads)

    def stop(self, timeout=5.0):
        with self._lock:
            items = list(self._threads.items())
        for _, fd in items:
            try:
                with socket.socket(fileno=os.dup(fd)) as s:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t, _ in items:
            t.join(timeout)

    def wait(self):
        """Blocks until every connection has closed."""
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return
            for t in threads:
                t.join()
