"""The `gofer` command.

    gofer [global flags] serve DIR --socket PATH        serve DIR on a Unix socket
    gofer [global flags] [runsc's global flags] gofer ... CONTAINER_ID
                                                        drop-in for `runsc gofer`

Every flag is parsed the way runsc parses its own (Go's flag syntax,
gofer.goflag), so runsc's command line reaches `gofer gofer`
(gofer.runsc_gofer) as runsc wrote it; `serve` also takes DIR among its
flags. Neither imports argparse: start-up is on every sandbox's start path.

Every bad command line is one line on stderr, ``gofer: error: ...``, and exit
status 2.

Logging: every module logs to `gofer._log.log` (the start path does not
import `logging`); both commands set it up with `setup_logging`, at the level
`log_level` reads from ``--log-level``/``--debug`` (before or after the
command).
"""
# The C modules behind `signal` and `socket`: the wrappers' enums cost every
# start a few ms, and the gofer needs only the calls.
import _signal
import os
import stat
import sys

from gofer import __version__, goflag, runsc_flags
from gofer._log import log


class UsageError(Exception):
    """A problem with the command line or the environment, said in one line."""


# ------------------------------------------------------------------ logging

LOG_LEVELS = ("debug", "info", "warning", "error")


def add_log_flags(parser):
    """--log-level and --debug, on a goflag.FlagSet (the global flags, and
    again after each command)."""
    parser.add_argument("--log-level", choices=LOG_LEVELS, metavar="LEVEL",
                        help="log at LEVEL and above: %s (default: warning for serve, "
                             "info for gofer, as runsc)" % ", ".join(LOG_LEVELS))
    parser.add_argument("--debug", action="store_true",
                        help="the same as --log-level=debug (runsc's --debug)")


def log_level(*flags, default):
    """The level the parsed flags ask for (later ones win; --debug wins)."""
    if any(getattr(f, "debug", False) for f in flags):
        return "debug"
    given = [f.log_level for f in flags if getattr(f, "log_level", None)]
    return given[-1] if given else default


def setup_logging(level, streams=None):
    """Logs of `level` and above to `streams` (default stderr), one line each."""
    log.setup(level, streams)


def _listen(path, mode=0o600, gid=None):
    """A listening Unix stream socket at `path` whose file has exactly `mode`
    (and group `gid`) from the moment it exists, whatever the umask; replaces
    a stale socket file."""
    import _socket                      # `gofer serve` only: not on `gofer gofer`'s start
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError("%s exists and is not a socket" % path)
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)             # left behind by a gofer that died
        else:
            raise UsageError("socket %s is in use by another server" % path)
        finally:
            probe.close()
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
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
        raise UsageError("cannot listen on %s: %s" % (path, e.strerror or e)) from None
    return s


SUN_PATH_MAX = 107      # sockaddr_un.sun_path is 108 bytes, a path's NUL included


def _socket_path(text):
    if not text:
        raise ValueError("needs a path")
    if "\0" in text:
        raise ValueError("a path has no NUL byte")
    size = len(os.fsencode(text))
    if size > SUN_PATH_MAX:
        raise ValueError("the path is %d bytes long; a Unix socket's path is at most %d" % (
            size, SUN_PATH_MAX))
    return text


def _octal_mode(text):
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError("not an octal mode: %r" % text) from None
    if not 0 <= mode <= 0o777:
        raise ValueError("a socket mode is 0 to 0777, not %s" % text)
    return mode


def _gid(group):
    """A group name or number, as its gid."""
    if group.isdigit():
        return int(group)
    import grp
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise UsageError("no group named %s" % group) from None


def _backend(args):
    """Checks `gofer serve`'s mount once; returns (description, factory) where
    factory() gives a fresh (ConnectionImpl, ConnectionOpts) per connection,
    as each mount of a sandbox has its own."""
    from gofer._server import ConnectionOpts
    if args.extension and args.dir is not None:
        raise UsageError("serve takes a DIR or --extension NAME, not both")
    if args.extension:
        from gofer import extension
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
    """--seccomp=log|kill: the filter goes on after every import and the
    listener, right before the accept loop (see gofer.seccomp)."""
    if args.seccomp == "off":
        return
    from gofer import seccomp
    try:
        seccomp.install_for_serve(args)
    except (ValueError, RuntimeError, OSError) as e:
        raise UsageError("seccomp: %s" % e) from None


def _stop_on_signal(listener, signals):
    _signal.sigwait(signals)
    listener.shutdown(2)                # SHUT_RDWR


def cmd_serve(global_flags, argv):
    flags = serve_flags()
    try:
        args, positional = flags.parse(argv, interleaved=True)
    except goflag.FlagError as e:
        raise UsageError("%s (see gofer serve --help)" % e) from None
    except goflag.HelpRequested:
        print(flags.usage(SERVE_SYNOPSIS), end="")
        return 0
    if args.version:
        print("gofer " + __version__)
        return 0
    if len(positional) > 1:
        raise UsageError("serve takes one DIR, not %d arguments: %s" % (
            len(positional), " ".join(positional)))
    args.dir = positional[0] if positional else None
    if args.socket is None:
        raise UsageError("missing required flag: --socket (see gofer serve --help)")
    setup_logging(log_level(global_flags, args, default="warning"))
    from gofer._server import Server, Thread
    from gofer.service import Service

    what, backend = _backend(args)
    gid = None if args.socket_group is None else _gid(args.socket_group)
    listener = _listen(args.socket, args.socket_mode, gid)
    # From here on, files get modes exactly as the client sends them, as
    # with gVisor's gofer (the socket above is made already).
    os.umask(0)
    service = Service(Server())
    # SIGTERM and Ctrl-C stop the server. A thread waits for them and shuts
    # the listener down, which ends the accept loop; a Python-level handler
    # would not run until an accept() begun just after the signal had
    # returned. They are blocked from here on, so one sent before that thread
    # reaches sigwait stays pending; the thread starts under the filter, so
    # the filter's tests always see its sigwait.
    stop = {_signal.SIGINT, _signal.SIGTERM}
    _signal.pthread_sigmask(_signal.SIG_BLOCK, stop)       # inherited by every later thread
    try:
        _seccomp(args)
        Thread(target=_stop_on_signal, args=(listener, stop), name="gofer-signals").start()
        print("gofer: serving %s on %s (mode %04o)%s" % (
            what, args.socket, args.socket_mode, " (readonly)" if args.readonly else ""),
            file=sys.stderr, flush=True)
        service.serve_listener(listener, backend,
                               frozenset(args.allow_uid) if args.allow_uid else None)
    finally:
        listener.close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
        service.stop()
    print("gofer: stopped", file=sys.stderr)
    return 0


SERVE_SYNOPSIS = "[flags] DIR --socket PATH"


def serve_flags():
    """`gofer serve`'s flags (after the command), parsed the Go way as the
    global ones are; DIR may come before, between or after them."""
    from gofer import seccomp
    s = goflag.FlagSet(
        "gofer serve",
        description="Serve a host directory (or an installed extension) over LISAFS on a "
                    "Unix socket, to every client that connects.")
    s.add_argument("--socket", type=_socket_path, metavar="PATH",
                   help="(required) path of the Unix socket to listen on. Whoever can "
                        "connect to it acts inside the served tree with this process's "
                        "privileges")
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
                   metavar="WHICH",
                   help="host Unix sockets the client may connect to (open), create (create) "
                        "or both (all); default none")
    s.add_argument("--host-fifo", default="none", choices=["none", "open"], metavar="WHICH",
                   help="whether host FIFOs may be opened; default none")
    s.add_argument("--seccomp", nargs="?", const="kill", default="off",
                   type=seccomp.parse_mode, metavar="MODE",
                   help="serve under the seccomp allowlist: kill (a syscall outside it kills "
                        "the gofer; --seccomp alone means this), log (it is logged to stderr "
                        "and fails with ENOSYS: to find what an extension needs; "
                        "--seccomp=log) or off (default)")
    add_log_flags(s)
    s.add_argument("--version", action="store_true", help="print gofer's version and exit")
    return s


# ------------------------------------------------------------ the global flags

HELP = """\
usage: gofer [global flags] serve DIR --socket PATH [flags]
       gofer [global flags] [runsc's global flags] gofer [flags] CONTAINER_ID

A LISAFS file server for gVisor sandboxes.

commands:
  serve     serve a host directory (or an installed extension) on a Unix socket,
            for development and tests (gofer serve --help)
  gofer     a drop-in for `runsc gofer`: takes the command line runsc gives its
            gofer, runsc's global flags before `gofer` (gofer gofer --help)

global flags (also accepted after the command):
  -h, --help              print this help and exit
"""

RUNSC_HELP = """
runsc's global flags (runsc --help) are accepted before `gofer`, spelt as runsc
takes them: -name or --name, a value as -name=value or -name value, a boolean
as -name or -name=false. gofer gofer --help says which it acts on.
"""


def _runsc_dest(name):
    return "runsc:" + name


def global_flags():
    """gofer's global flags, and runsc's (their values kept as given)."""
    fs = goflag.FlagSet("gofer", keep_unknown=True)
    add_log_flags(fs)
    fs.add_argument("--version", action="store_true", help="print gofer's version and exit")
    for name in sorted(runsc_flags.BOOLEAN | runsc_flags.VALUE):
        if name not in ("debug", "version", "h", "help"):
            fs.add_argument("--" + name, type=bool if name in runsc_flags.BOOLEAN else str,
                            dest=_runsc_dest(name), help=goflag.SUPPRESS)
    return fs


def parse_globals(argv):
    """(global flags, the command and what follows). The runsc flags given
    are in ``flags.runsc`` ({name: value}), those gofer does not know as well
    (given as -name=value: runsc always passes its flags so)."""
    fs = global_flags()
    try:
        flags, rest = fs.parse(argv)
    except goflag.FlagError as e:
        raise UsageError("%s (see gofer --help)" % e) from None
    except goflag.HelpRequested:
        print(HELP + fs.flags_help() + RUNSC_HELP, end="")
        raise SystemExit(0)
    flags.runsc = dict(flags.unknown)
    for name in sorted(runsc_flags.BOOLEAN | runsc_flags.VALUE):
        value = getattr(flags, _runsc_dest(name), None)
        if value is not None:
            flags.runsc[name] = value
    return flags, rest


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags, rest = parse_globals(argv)
        if flags.version:
            print("gofer " + __version__)
            return 0
        if not rest:
            raise UsageError("no command: gofer serve ... or gofer [runsc flags] gofer ... "
                             "(see gofer --help)")
        command, args = rest[0], rest[1:]
        if command == "gofer":
            from gofer import runsc_gofer
            return runsc_gofer.main(flags, args)
        if command != "serve":
            raise UsageError("unknown command %r: serve or gofer (see gofer --help)" % command)
        runsc_only = sorted(set(flags.runsc) - {"debug"})
        if runsc_only:
            raise UsageError("--%s is a runsc flag: only `gofer gofer` takes it" % runsc_only[0])
        return cmd_serve(flags, args)
    except UsageError as e:
        print("gofer: error: %s" % e, file=sys.stderr)
        return 2
