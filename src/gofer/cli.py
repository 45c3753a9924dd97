"""The `gofer` command.

    gofer serve DIR --socket PATH    serve DIR over LISAFS on a Unix socket
"""
import argparse
import logging
import os
import signal
import socket
import stat
import sys

from gofer import __version__


class UsageError(Exception):
    """A problem with the command line or the environment, said in one line."""


def _listen(path):
    """A listening Unix stream socket at `path`; replaces a stale socket file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError("%s exists and is not a socket" % path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)             # left behind by a gofer that died
        else:
            raise UsageError("socket %s is in use by another server" % path)
        finally:
            probe.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        s.listen(64)
    except OSError as e:
        s.close()
        raise UsageError("cannot listen on %s: %s" % (path, e.strerror)) from None
    return s


def cmd_serve(args):
    from gofer._server import ConnectionOpts, Server
    from gofer.fsgofer import HostConnection
    from gofer.service import Service

    root = os.path.abspath(args.dir)
    if not os.path.exists(root):
        raise UsageError("%s does not exist" % args.dir)
    if not os.path.isdir(root):
        raise UsageError("%s is not a directory" % args.dir)
    listener = _listen(args.socket)
    service = Service(Server())
    opts = ConnectionOpts(readonly=args.readonly)
    print("gofer: serving %s on %s%s" % (root, args.socket, " (readonly)" if args.readonly else ""),
          file=sys.stderr, flush=True)
    # SIGTERM stops the server the same way as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        while True:
            conn, _ = listener.accept()
            service.start(conn.detach(), HostConnection(root), opts)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
        service.stop()
    print("gofer: stopped", file=sys.stderr)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="gofer", description="A LISAFS file server for gVisor sandboxes.")
    p.add_argument("--version", action="version", version="gofer " + __version__)
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a host directory on a Unix socket")
    s.add_argument("dir", help="the directory to serve")
    s.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    s.add_argument("--readonly", action="store_true", help="refuse every mutation with EROFS")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="gofer: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except UsageError as e:
        print("gofer: error: %s" % e, file=sys.stderr)
        return 2
