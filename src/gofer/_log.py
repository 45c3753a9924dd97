"""The "gofer" logger, without `logging` on the command's start path.

Importing `logging` (with `re`, `traceback`, ...) costs 6-12 ms of every
sandbox's start, for a few lines. Every gofer module logs through `log`,
which has the part of `logging.Logger` they use:

- in a program that uses gofer as a library (tests, embedding), until a
  command calls `setup`, each message goes to ``logging.getLogger("gofer")``
  (imported then), so its handlers and pytest's caplog see it;
- once the `gofer` command has called `setup`, lines at the level asked for
  are written straight to its streams, in `FORMAT`; should something import
  `logging` (an extension), `follow` points logging's root at the same
  streams, so an extension's own loggers end up there too.

It also has logging's names the server uses (`getLogger`, `DEBUG`), so the
Cython core can take it in place of the module.
"""
import os
import sys

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
FORMAT = "gofer[%(process)d]: %(levelname)s: %(message)s"     # logging's syntax


class Logger:
    def __init__(self):
        self.level = WARNING
        self.streams = None         # None: hand every message to `logging`

    def setup(self, level, streams=None):
        """The command's logging: `level` ("debug" ... "error") and above,
        one line each to `streams` (default: stderr)."""
        self.level = LEVELS[level]
        self.streams = list(streams or [sys.stderr])
        self.follow()

    def follow(self):
        """If `logging` was imported since (an extension uses it), send its
        records where ours go. Called after extensions load."""
        logging = sys.modules.get("logging")
        if logging is not None and self.streams is not None:
            logging.basicConfig(level=self.level, format=FORMAT, force=True,
                                handlers=[logging.StreamHandler(s) for s in self.streams])

    def isEnabledFor(self, level):
        if self.streams is None:
            return _std().isEnabledFor(level)
        return level >= self.level

    def _log(self, level, name, msg, args, exc_info=None):
        if self.streams is None:
            _std().log(level, msg, *args, exc_info=exc_info)
            return
        if level < self.level:
            return
        line = "gofer[%d]: %s: %s\n" % (os.getpid(), name, msg % args if args else msg)
        if exc_info:
            line += _traceback(exc_info)
        for s in self.streams:
            try:
                s.write(line)
                s.flush()
            except (OSError, ValueError):       # a closed log FD: as logging, go on
                pass

    def debug(self, msg, *args, exc_info=None):
        self._log(DEBUG, "DEBUG", msg, args, exc_info)

    def info(self, msg, *args, exc_info=None):
        self._log(INFO, "INFO", msg, args, exc_info)

    def warning(self, msg, *args, exc_info=None):
        self._log(WARNING, "WARNING", msg, args, exc_info)

    def error(self, msg, *args, exc_info=None):
        self._log(ERROR, "ERROR", msg, args, exc_info)

    def exception(self, msg, *args, exc_info=True):
        self._log(ERROR, "ERROR", msg, args, exc_info)


def _std():
    import logging
    return logging.getLogger("gofer")


def _traceback(exc_info):
    """The traceback text, as logging appends it."""
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if exc_info[0] is None:
        return ""
    try:
        import traceback
    except ImportError:         # confined (chroot) after start: what is known without it
        return "%s: %s\n" % (exc_info[0].__name__, exc_info[1])
    return "".join(traceback.format_exception(*exc_info))


log = Logger()


def getLogger(name):
    """logging.getLogger for the one logger gofer has."""
    if name != "gofer":
        raise ValueError("gofer._log has only the 'gofer' logger, not %r" % name)
    return log
