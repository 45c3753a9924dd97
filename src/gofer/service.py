"""Runs LISAFS connections: one service thread per connection socket, and the
accept loop of `gofer serve`."""
import errno
import os
import _thread
import time

from gofer._log import log
from gofer._server import Connection, Thread, accept_client, current_thread, peer_creds

# accept() failures that mean the process is short of something for now (a
# client may hold every FD it may): wait, retry, keep serving the others.
_SHORT_OF_RESOURCES = frozenset([errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS])
# accept() failures that concern only the connection being accepted.
_PEER_GONE = frozenset([errno.ECONNABORTED, errno.EPROTO, errno.EPERM])
BACKOFF_MIN, BACKOFF_MAX = 0.01, 1.0        # seconds; doubled per failure in a row


class Throttled:
    """A warning a client can cause as often as it likes: logged at most once
    per `interval` seconds, the next line saying how many were left out."""

    def __init__(self, interval=10.0, clock=time.monotonic):
        self.interval, self.clock = interval, clock
        self.last = None
        self.missed = 0

    def warning(self, fmt, *args):
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            self.missed += 1
            return
        more = " (and %d more since the last report)" % self.missed if self.missed else ""
        log.warning("%s%s", fmt % args, more)
        self.last, self.missed = now, 0


class Service:
    """Serves connections of one `Server` until stopped.

    `start(sock, impl, opts, mount_path)` takes ownership of a connected
    stream socket and serves it on its own thread; `stop()` shuts every live
    socket down so the threads finish, releasing their FDs. `serve_listener`
    is `gofer serve`'s accept loop.
    """

    def __init__(self, server):
        self.server = server
        self._lock = _thread.allocate_lock()
        self._threads = {}          # running thread -> the Connection it serves

    def start(self, sock_fd, impl, opts=None, mount_path="/"):
        """Serves `sock_fd` on a new thread. Owns the FD from the call on: if
        it raises (RuntimeError when no thread can start), the FD is closed."""
        try:
            conn = Connection(self.server, impl, opts, mount_path)
            t = Thread(target=self._run, args=(conn, sock_fd), name="gofer-conn-%d" % sock_fd)
            # Registered once it runs, so stop() never joins a thread that
            # never started; under the lock, so _run cannot unregister first.
            with self._lock:
                t.start()
                self._threads[t] = conn
        except BaseException:
            os.close(sock_fd)
            raise
        return t

    def _run(self, conn, sock_fd):
        try:
            conn.serve(sock_fd)
        except Exception:
            log.exception("connection on fd %d failed", sock_fd)
        finally:
            with self._lock:
                self._threads.pop(current_thread(), None)

    def serve_listener(self, listener, backend, allow_uids=None):
        """Accepts clients on a listening socket (an object with fileno())
        until it is shut down
        (shutdown(2)), serving each with a fresh `backend()`, which returns
        (ConnectionImpl, ConnectionOpts).

        With `allow_uids`, a client whose uid (SO_PEERCRED) is not in it is
        closed, and logged. No client can end the loop: when accept() or a
        connection's start fails for want of FDs, memory or threads, the
        loop logs it (throttled), waits a little longer after each failure
        in a row, and meanwhile the clients it has go on being served.
        """
        short = Throttled()
        refused = Throttled()
        delay = 0
        while True:
            if delay:
                time.sleep(delay)
            try:
                fd = accept_client(listener.fileno())
            except OSError as e:
                if e.errno in _SHORT_OF_RESOURCES:
                    short.warning("cannot accept a client: %s; retrying", os.strerror(e.errno))
                    delay = min(max(2 * delay, BACKOFF_MIN), BACKOFF_MAX)
                    continue
                if e.errno in _PEER_GONE:
                    continue
                if e.errno == errno.EINVAL:     # shut down: no more clients
                    return
                raise
            owned = fd                  # closed here unless start() took it
            try:
                if allow_uids is not None:
                    pid, uid = peer_creds(fd)
                    if uid not in allow_uids:
                        refused.warning("refused a client with uid %d (pid %d): not an "
                                        "allowed uid", uid, pid)
                        continue
                impl, opts = backend()
                owned = None
                self.start(fd, impl, opts)
            except Exception as e:
                short.warning("cannot serve a client (closed it): %s", e)
                delay = min(max(2 * delay, BACKOFF_MIN), BACKOFF_MAX)
                continue
            finally:
                if owned is not None:
                    os.close(owned)
            delay = 0

    def active(self):
        with self._lock:
            return len(self._threads)

    def stop(self, timeout=5.0):
        with self._lock:
            items = list(self._threads.items())
        for _, conn in items:
            conn.shutdown()
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
