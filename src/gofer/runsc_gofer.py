"""`gofer gofer`: a drop-in for `runsc gofer`.

A sandbox launcher execs it with runsc's argv unchanged:

    gofer [runsc global flags] gofer --bundle B --spec-fd N --io-fds N ... \
          [--mounts-fd N] [--apply-caps] [--setup-root] ... CONTAINER_ID

The start-up follows runsc's order: read and check the spec, match the
--io-fds to mounts, wait on the sync FDs, set up the root, run the
extensions' prepare hooks, write the resolved mounts, drop capabilities and
limits, install the seccomp filter, then serve every connection on one
server until all have closed.

Its command line is parsed as runsc parses its own, with Go's flag syntax
(gofer.goflag): the container ID comes last. A command line runsc would
refuse exits 2, a failure to start exits 128 (runsc's util.Fatalf), each
with one line on runsc's log FD (or stderr when runsc gave none).
"""
import os
import sys

from gofer import cli, extension, goflag, sandbox, spec as specmod

from gofer._log import log

# runsc global flags this gofer acts on, or whose effect reaches it otherwise
# (--overlay2 through --gofer-mount-confs); any other is accepted and reported once.
HONOURED_GLOBALS = {"log-fd", "debug-log-fd", "debug", "host-uds", "host-fifo",
                    "character-device-policy", "directfs", "fdlimit", "overlay2",
                    "TESTONLY-unsafe-nonroot", "panic-log-fd"}
# runsc gofer flags accepted but without effect here (no urpc, no profiling).
INERT_FLAGS = ("rpc_fd", "pin_ring_fd", "sync_sentry_exit_fd", "proc_mount_sync_fd",
               "profile_block_fd", "profile_cpu_fd", "profile_heap_fd", "profile_mutex_fd",
               "trace_fd")
EXIT_USAGE, EXIT_FATAL = 2, 128     # runsc's ExitUsageError, and util.Fatalf's exit

SYNOPSIS = "[flags] CONTAINER_ID"
DESCRIPTION = """\
A drop-in for `runsc gofer`: runsc's global flags before `gofer`, these after
it, the container ID last, as runsc passes them. It serves the root and each
bind mount of the OCI spec on its --io-fds socket, in runsc's order, letting
installed extensions claim mounts.

runsc's global flags it acts on: --log-fd and --debug-log-fd (where it logs),
--debug, --host-uds, --host-fifo, --character-device-policy, --directfs and
--fdlimit; --overlay2 reaches it through --gofer-mount-confs. It logs that it
ignores the others."""


class Usage(Exception):
    """A command line runsc would refuse (exit 2)."""


class Fatal(Exception):
    """Stops the gofer with a one-line reason (exit 128)."""


def _seccomp_mode(text):
    from gofer import seccomp           # only when --seccomp is given a value
    return seccomp.parse_mode(text)


def _fds(text):
    """An FD list flag's value: comma-separated FDs (runsc's IntFlags)."""
    return [goflag.parse_int(v) for v in text.split(",") if v]


def build_flags(exts):
    """runsc gofer's flags (runsc/cmd/gofer.go), gofer's own, the extensions'."""
    fs = goflag.FlagSet("gofer gofer", description=DESCRIPTION)
    flag = fs.add_argument
    flag("--bundle", default="", help="the bundle directory (required, or --spec-fd)")
    flag("--spec-fd", type=int, default=-1, help="FD of the OCI spec (config.json)")
    flag("--mounts-fd", type=int, default=-1,
         help="FD to which the mounts, their destinations resolved, are written")
    flag("--io-fds", type=_fds, action="append", metavar="FDS",
         help="LISAFS sockets: the root first, then each served mount in the spec's order "
              "(repeatable, or comma-separated)")
    flag("--dev-io-fd", type=int, default=-1, help="LISAFS socket for /dev")
    flag("--gofer-mount-confs", action="append", metavar="CONFS",
         help="lower:upper[:size=N] for the root, then each mount (repeatable, or "
              "comma-separated)")
    flag("--apply-caps", type=bool, default=True, help="keep only the gofer's capabilities")
    flag("--setup-root", type=bool, default=True,
         help="serve from a new root holding only the container's mounts (pivot_root)")
    flag("--sync-chroot-fd", type=int, default=-1, help="wait for EOF on this FD before setup")
    flag("--sync-userns-fd", type=int, default=-1,
         help="wait for EOF on this FD, then switch to --uid and --gid (rootless)")
    flag("--uid", type=int, default=0, help="user ID to switch to after --sync-userns-fd")
    flag("--gid", type=int, default=0, help="group ID to switch to after --sync-userns-fd")
    for name in INERT_FLAGS:
        flag("--" + name.replace("_", "-"), type=int, default=-1,
             help="accepted, without effect here (no urpc, no profiling)")
    flag("--extension", action="append", metavar="NAMES",
         help="load only these installed extensions, comma-separated (default: all)")
    flag("--seccomp", type=_seccomp_mode, nargs="?", const="kill", default="kill",
         metavar="MODE",
         help="kill (a syscall outside the allowlist kills the gofer), log (it is logged and "
              "fails with ENOSYS) or off (only to debug); --seccomp and --seccomp=true mean "
              "kill, --seccomp=false off")
    cli.add_log_flags(fs)
    flag("--version", action="store_true", help="print gofer's version and exit")
    for e in exts:
        try:
            e.add_flags(fs)
        except Exception as err:
            raise extension.ExtensionError("extension %s: add_flags: %s: %s" % (
                e.name, type(err).__name__, err)) from err
    return fs


def _named_extensions(args):
    """The --extension names (None if not given). Read before the flags are
    parsed: which extensions load decides which flags exist."""
    names = None
    for i, a in enumerate(args):
        name, eq, value = a[2 if a.startswith("--") else 1:].partition("=")
        if a.startswith("-") and name == "extension":
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            names = (names or []) + [n for n in value.split(",") if n]
    return names


def _global(g, name, parse, default):
    """A runsc global flag gofer acts on, parsed (runsc parsed it so too)."""
    value = g.runsc.get(name, default)
    if not isinstance(value, str):          # a boolean flag, already parsed
        return value
    try:
        return parse(value)
    except ValueError as e:
        raise Usage("invalid value %r for --%s: %s" % (value, name, e)) from None


def _log_streams(g):
    """The FDs runsc hands over for logs (--log-fd, and --debug-log-fd under
    --debug): runsc points the gofer's stderr at /dev/null."""
    streams = []
    for name in ("log-fd", "debug-log-fd"):
        fd = _global(g, name, goflag.parse_int, "-1")
        if fd >= 0 and fd not in (s.fileno() for s in streams):
            try:
                streams.append(os.fdopen(fd, "w", buffering=1))
            except OSError as e:
                raise Fatal("--%s=%d: %s" % (name, fd, e.strerror)) from None
    return streams


def main(g, args):
    """`gofer gofer`: `g` are the global flags (gofer.cli.parse_globals),
    `args` what follows "gofer". An error is one line: on runsc's log FDs
    when it gave some (the gofer's stderr is /dev/null under runsc), else
    on stderr."""
    streams = []
    try:
        streams = _log_streams(g)
        cli.setup_logging(cli.log_level(g, default="info"), streams)
        return run(g, args, streams)
    except Usage as e:
        _report(streams, "error", "%s (see gofer gofer --help)" % e)
        return EXIT_USAGE
    except (Fatal, specmod.SpecError, extension.ExtensionError) as e:
        _report(streams, "fatal", e)
        return EXIT_FATAL
    except Exception:
        log.exception("fatal: unexpected error")
        return EXIT_FATAL


def _report(streams, kind, message):
    if streams:
        log.error("%s: %s", kind, message)
    else:
        print("gofer: %s: %s" % (kind, message), file=sys.stderr)


def run(g, args, log_streams):
    fdlimit = _global(g, "fdlimit", goflag.parse_int, "-1")
    exts = extension.load_entry_points(_named_extensions(args))
    fs = build_flags(exts)
    try:
        opts, rest = fs.parse(args)
    except goflag.FlagError as e:
        raise Usage(e) from None
    except goflag.HelpRequested:
        print(fs.usage(SYNOPSIS), end="")
        return 0
    if opts.version:
        print("gofer " + cli.__version__)
        return 0
    if opts.log_level or opts.debug:
        cli.setup_logging(cli.log_level(g, opts, default="info"), log_streams)
    if len(rest) != 1:
        raise Usage("gofer gofer takes one CONTAINER_ID after its flags, not %d arguments%s" % (
            len(rest), ": " + " ".join(rest) if rest else ""))
    opts.container_id = rest[0]
    if opts.spec_fd < 0 and not opts.bundle:
        raise Usage("--spec-fd or --bundle is required")
    io_fds = [fd for value in opts.io_fds for fd in value]
    if not io_fds and opts.dev_io_fd < 0:
        raise Usage("no --io-fds given")
    # Warnings only once the command line is known good: a bad one is one line.
    ignored = sorted(set(g.runsc) - HONOURED_GLOBALS)
    if ignored:
        log.warning("ignoring runsc flags this gofer does not implement: %s",
                    " ".join("--" + n for n in ignored))
    inert = [f for f in INERT_FLAGS if getattr(opts, f) >= 0]
    if inert:
        log.warning("accepted without effect: %s", " ".join(
            "--" + f.replace("_", "-") for f in inert))

    # The spec, and which socket serves what.
    spec = specmod.load(opts.spec_fd, opts.bundle or None)
    plan = specmod.serving_plan(spec, io_fds, specmod.parse_mount_confs(opts.gofer_mount_confs))
    for c in plan:
        if c.io_fd < 0:
            raise Fatal("--io-fds value %d for %s is not an FD" % (c.io_fd, c.mount_path))

    # Import all that serving needs before any chroot: the modules will not be
    # reachable after it (and the stock backend opens /proc/self/fd at import).
    from gofer._server import ConnectionOpts, Server, Thread
    from gofer import fsgofer
    from gofer.fsgofer import HostConnection
    from gofer.service import Service

    # Everything the filter needs is loaded now, while the host is in reach;
    # the filter itself goes on last, right before serving.
    host_uds = g.runsc.get("host-uds", "none")
    uds_open = host_uds in ("open", "all")
    load_filter = None
    if opts.seccomp != "off":
        from gofer import seccomp
        try:
            load_filter = seccomp.prepare(seccomp.extension_rules(exts),
                                          log=opts.seccomp == "log",
                                          host_uds_open=uds_open,
                                          host_uds_create=host_uds in ("create", "all"))
        except (ValueError, OSError) as e:
            raise Fatal("seccomp: %s" % e) from None

    # Extensions prepare while the host is still in reach (a key file, a
    # credentials file): the root set up below holds only the container's mounts.
    extension.prepare_all(extension.PrepareContext(spec=spec, container_id=opts.container_id,
                                                   bundle_dir=opts.bundle, args=opts), exts)
    if opts.sync_chroot_fd >= 0:
        sandbox.wait_for_eof(opts.sync_chroot_fd)
    if opts.sync_userns_fd >= 0:
        sandbox.wait_for_eof(opts.sync_userns_fd)
        os.setgid(opts.gid)
        os.setuid(opts.uid)
    root = spec["root"]["path"]
    served = [c for c in plan if c.mount is not None]
    if opts.setup_root:
        # Mount points are resolved (and made) one by one, each after the
        # mounts before it are in place, as runsc does.
        # A root not served over LISAFS is not written through us either.
        root_readonly = plan[0].readonly if plan and plan[0].mount is None else True
        try:
            confined = sandbox.setup_root(
                root, [(c.host_path, c.mount_path, c.mount.get("options"), c.readonly)
                       for c in served], root_readonly)
        except (sandbox.SetupError, OSError) as e:
            raise Fatal("setting up the root: %s" % e) from None
        for c, dest in zip(served, confined.destinations):
            c.mount["destination"] = c.mount_path = dest
        for c in plan:
            c.host_path = c.mount_path       # chrooted: the tree is the sandbox's view
        fsgofer.use_fd_directory(confined.fd_dir)
        last_cap = confined.last_cap
    else:
        for c in served:
            c.mount["destination"] = c.mount_path = specmod.resolve_in_root(root, c.mount_path)
        last_cap = sandbox.last_cap()
    if opts.mounts_fd >= 0:
        # A pipe the sentry reads: write it without holding up the start.
        Thread(target=specmod.write_mounts, args=(opts.mounts_fd, spec),
               name="gofer-mounts").start()
    os.umask(0)                               # keep modes exactly as the sandbox sends them

    if opts.apply_caps:
        caps = sandbox.GOFER_CAPS + (("SETUID", "SETGID") if uds_open else ())
        try:
            sandbox.apply_caps(caps, last_cap)
        except OSError as e:
            raise Fatal("applying capabilities: %s" % e) from None
    if fdlimit > -1:
        warning = sandbox.set_fd_limit(fdlimit)
        if warning:
            log.warning("--fdlimit: %s", warning)
    else:
        sandbox.raise_fd_limit()          # the per-connection FD caps derive from it

    # Every connection: an extension's claim, or the stock backend.
    stock_opts = dict(set_attr_on_deleted=True, allocate_on_deleted=True, open_on_deleted=True)
    backend = dict(host_uds=host_uds, host_fifo=g.runsc.get("host-fifo", "none"),
                   character_device_policy=g.runsc.get("character-device-policy",
                                                       "emulated-only"),
                   donate_mount_fd=g.runsc.get("directfs", True))        # runsc's default
    conns = []
    for c in plan:
        claimed = extension.claim(spec, c.mount, c.mount_path, c.readonly, exts)
        if claimed:
            log.info("serving %s with extension %s (ro: %s)", c.mount_path, claimed[0].name,
                     c.readonly)
            conns.append((c.io_fd, claimed[1], claimed[2], c.mount_path))
        else:
            log.info("serving %s from %s (ro: %s)", c.mount_path, c.host_path, c.readonly)
            conns.append((c.io_fd, HostConnection(c.host_path, **backend),
                          ConnectionOpts(readonly=c.readonly, **stock_opts), c.mount_path))
    if opts.dev_io_fd >= 0:
        dev = dict(backend, character_device_policy="passthrough")
        conns.append((opts.dev_io_fd, HostConnection("/dev", **dev), ConnectionOpts(**stock_opts),
                      "/dev"))

    if load_filter is not None:
        try:
            load_filter()
        except OSError as e:
            raise Fatal("seccomp: %s" % e) from None
    service = Service(Server())
    for fd, impl, copts, path in conns:
        try:
            service.start(fd, impl, copts, path)
        except ValueError as e:
            raise Fatal("serving %s: %s" % (path, e)) from None
    service.wait()
    log.info("every connection has closed; exiting")
    return 0
