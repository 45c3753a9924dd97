"""The `gofer` command.

    gofer serve DIR --socket PATH    serve DIR over LISAFS on a Unix socket
    gofer [runsc flags] gofer ...    drop-in for `runsc gofer` (gofer.runsc_gofer)
"""
import argparse
import grp
import logging
import os
import signal
import socket
import stat
import sys

from gofer import __version__


class UsageError(Exception):
    """A problem with the command line or the environment, said in one line."""


def _listen(path, mode=0o600, gid=None):
    """A listening Unix stream socket at `path` whose file has exactly `mode`
    (and group `gid`) from the moment it exists, whatever the umask; replaces
    a stale socket file."""
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
    bound = False
    try:
        # bind() gives the file the socket's own mode less the umask: set
        # the one, clear the other, and the path never grants more.
        os.fchmod(s.fileno(), mode)
        umask = os.umask(0)
        try:
            s.bind(path)
        finally:
            os.umask(umask)
        bound = True
        if gid is not None:
            os.chown(path, -1, gid, follow_symlinks=False)
        s.listen(64)                    # connect() is refused until now
    except OSError as e:
        s.close()
        if bound:
            os.unlink(path)
        raise UsageError("cannot listen on %s: %s" % (path, e.strerror)) from None
    return s


def _octal_mode(text):
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError("not an octal mode: %r" % text) from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError("a socket mode is 0 to 0777, not %s" % text)
    return mode


def _gid(group):
    """A group name or number, as its gid."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError("no group named %s" % group) from None


def _backend(args):
    """Checks `gofer serve`'s mount once; returns (description, factory) where
    factory() gives a fresh (ConnectionImpl, ConnectionOpts) per connection,
    as each mount of a sandbox has its own."""
    from gofer._server import ConnectionOpts
    from gofer import extension
    if args.extension:
        def claim():
            claimed = extension.claim(None, None, "/", args.readonly, exts)
            if claimed is None:
                raise UsageError("extension %s declined to serve the root" % args.extension)
            return claimed[1], claimed[2]
        try:
            exts = extension.load_entry_points([args.extension])
            claim()
        except extension.ExtensionError as e:
            raise UsageError(str(e)) from None
        return "extension " + args.extension, claim
    from gofer.fsgofer import HostConnection
    if args.dir is None:
        raise UsageError("serve needs a DIR (or --extension NAME)")
    root = os.path.abspath(args.dir)
    if not os.path.exists(root):
        raise UsageError("%s does not exist" % args.dir)
    if not os.path.isdir(root):
        raise UsageError("%s is not a directory" % args.dir)
    # gVisor's fsgofer options: the host backend is fd-based, so deleted
    # files stay usable through the FDs that reach them.
    opts = ConnectionOpts(readonly=args.readonly, set_attr_on_deleted=True,
                          allocate_on_deleted=True,
                          open_on_deleted=True)
    return root, lambda: (HostConnection(root, host_uds=args.host_uds,
                                         host_fifo=args.host_fifo), opts)


def _seccomp(args):
    """--seccomp / --seccomp-log: the filter goes on after every import and
    the listener, right before the accept loop (see gofer.seccomp)."""
    if not (args.seccomp or args.seccomp_log):
        return
    from gofer import seccomp
    try:
        seccomp.install_for_serve(args)
    except (ValueError, RuntimeError, OSError) as e:
        raise UsageError("seccomp: %s" % e) from None


def cmd_serve(args):
    from gofer._server import Server
    from gofer.service import Service

    what, backend = _backend(args)
    gid = None if args.socket_group is None else _gid(args.socket_group)
    listener = _listen(args.socket, args.socket_mode, gid)
    # From here on, files get modes exactly as the client sends them, as
    # with gVisor's gofer (the socket above is made already).
    os.umask(0)
    service = Service(Server())
    # SIGTERM stops the server the same way as Ctrl-C (set before we say we
    # are serving: a launcher may stop us as soon as it reads that line).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        _seccomp(args)
        print("gofer: serving %s on %s (mode %04o)%s" % (
            what, args.socket, args.socket_mode, " (readonly)" if args.readonly else ""),
            file=sys.stderr, flush=True)
        service.serve_listener(listener, backend,
                               None if args.allow_uid is None else frozenset(args.allow_uid))
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
    s.add_argument("dir", nargs="?", help="the directory to serve")
    s.add_argument("--socket", required=True,
                   help="path of the Unix socket to listen on. Whoever can connect to it acts "
                        "inside the served tree with this process's privileges")
    s.add_argument("--socket-mode", type=_octal_mode, default=0o600, metavar="MODE",
                   help="the socket file's mode, in octal (default 0600: the owner only)")
    s.add_argument("--socket-group", metavar="GROUP",
                   help="the socket file's group (name or gid), e.g. with --socket-mode 0660")
    s.add_argument("--allow-uid", type=int, action="append", metavar="UID",
                   help="serve only clients running as UID (checked with SO_PEERCRED when "
                        "they connect; others are closed and logged); repeatable")
    s.add_argument("--readonly", action="store_true", help="refuse every mutation with EROFS")
    s.add_argument("--extension", metavar="NAME",
                   help="serve with the installed extension NAME instead of a directory")
    s.add_argument("--host-uds", default="none", choices=["none", "open", "create", "all"],
                   help="host Unix sockets the client may connect to / create")
    s.add_argument("--host-fifo", default="none", choices=["none", "open"],
                   help="whether host FIFOs may be opened")
    s.add_argument("--seccomp", action="store_true",
                   help="serve under the seccomp allowlist; a syscall outside it kills the gofer")
    s.add_argument("--seccomp-log", action="store_true",
                   help="like --seccomp, but a syscall outside the allowlist is logged to "
                        "stderr and fails with ENOSYS (to find what an extension needs)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # runsc's argv: global flags, then the "gofer" subcommand and its flags.
    for i, a in enumerate(argv):
        if a == "gofer":
            from gofer import runsc_gofer
            return runsc_gofer.main(argv[:i], argv[i + 1:])
        if not a.startswith("-"):
            break
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="gofer: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except UsageError as e:
        print("gofer: error: %s" % e, file=sys.stderr)
        return 2
