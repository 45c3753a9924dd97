# Included into _server.pyx. The threads the gofer starts (one per
# connection and per channel, the mounts writer, `gofer serve`'s signal
# waiter), made with `_thread`: importing `threading`, with the functools
# and collections it brings, costs every start about 4 ms.

import _thread

_running = {}       # ident -> Thread, while its target runs


class Thread:
    """A thread running `target(*args)`, which the process does not wait for
    at exit (threading's daemon threads). start() raises RuntimeError when no
    thread can be made; join() waits for the target to return."""

    def __init__(self, target, args=(), name="gofer"):
        self.target, self.args, self.name = target, args, name
        self.ident = None
        self._done = _thread.allocate_lock()    # held while started and not finished

    def start(self):
        if not self._done.acquire(False):
            raise RuntimeError("%s is started already" % self.name)
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._done.release()
            raise

    def _run(self):
        self.ident = _thread.get_ident()
        _running[self.ident] = self
        try:
            self.target(*self.args)
        finally:
            del _running[self.ident]
            self._done.release()

    def join(self, timeout=None):
        """Waits for the end (at most `timeout` seconds); True if it ended."""
        if self._done.acquire(True, -1 if timeout is None else timeout):
            self._done.release()
            return True
        return False

    def is_alive(self):
        return self._done.locked()

    def __repr__(self):
        return "<gofer Thread %s%s>" % (self.name, " running" if self.is_alive() else "")


def current_thread():
    """The Thread running this code, or None outside those threads."""
    return _running.get(_thread.get_ident())


def running_threads():
    """The Threads whose targets are running."""
    return list(_running.values())
