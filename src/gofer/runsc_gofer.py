"""`gofer gofer`: a drop-in for `runsc gofer`.

A sandbox launcher execs it with runsc's argv unchanged:

    gofer [runsc global flags] gofer --bundle B --spec-fd N --io-fds N ... \
          [--mounts-fd N] [--apply-caps] [--setup-root] ... CONTAINER_ID

The start-up follows runsc's order: read and check the spec, match the
--io-fds to mounts, wait on the sync FDs, set up the root, run the
extensions' prepare hooks, write the resolved mounts, drop capabilities and
limits, install the seccomp filter, then serve every connection on one
server until all have closed.
"""
import argparse
import logging
import os
import sys
import threading

from gofer import extension, sandbox, spec as specmod

log = logging.getLogger("gofer")

# runsc global flags this gofer acts on; any other is accepted and reported once.
HONOURED_GLOBALS = {"log-fd", "debug-log-fd", "debug", "host-uds", "host-fifo",
                    "character-device-policy", "directfs", "fdlimit", "overlay2",
                    "TESTONLY-unsafe-nonroot", "panic-log-fd"}
# runsc gofer flags accepted but without effect here (no urpc, no profiling).
INERT_FLAGS = ("rpc_fd", "pin_ring_fd", "sync_sentry_exit_fd", "proc_mount_sync_fd",
               "profile_block_fd", "profile_cpu_fd", "profile_heap_fd", "profile_mutex_fd",
               "trace_fd")
EXIT_USAGE, EXIT_FATAL = 2, 128


class Fatal(Exception):
    """Stops the gofer with a one-line reason."""


def go_bool(text):
    if text.lower() in ("1", "t", "true"):
        return True
    if text.lower() in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % text)


def _normalize(args):
    """Go's flag package takes -name as well as --name."""
    return ["-" + a if a.startswith("-") and not a.startswith("--") and len(a) > 2 else a
            for a in args]


def parse_globals(args):
    """runsc's global flags (before "gofer"): {name: value}."""
    out = {}
    for a in _normalize(args):
        if not a.startswith("--"):
            raise Fatal("unexpected argument before 'gofer': %r" % a)
        name, eq, value = a[2:].partition("=")
        out[name] = value if eq else "true"
    return out


def build_parser(exts):
    p = argparse.ArgumentParser(prog="gofer gofer", description="Drop-in for `runsc gofer`.")
    flag = p.add_argument
    flag("container_id", metavar="CONTAINER_ID")
    flag("--bundle", default="", help="the bundle directory")
    flag("--spec-fd", type=int, default=-1, help="FD of the OCI spec (config.json)")
    flag("--mounts-fd", type=int, default=-1, help="FD the resolved mounts are written to")
    flag("--io-fds", action="append", default=[],
         help="LISAFS sockets: the root first, then each served mount (repeatable, or comma-separated)")
    flag("--dev-io-fd", type=int, default=-1, help="LISAFS socket for /dev")
    flag("--gofer-mount-confs", action="append", default=[], help="lower:upper[:size=N] per mount")
    for name in ("apply-caps", "setup-root"):
        flag("--" + name, type=go_bool, nargs="?", const=True, default=True)
    for name in ("sync-chroot-fd", "sync-userns-fd", "uid", "gid") + tuple(
            f.replace("_", "-") for f in INERT_FLAGS):
        flag("--" + name, type=int, default=-1 if name not in ("uid", "gid") else 0)
    flag("--extension", action="append", default=None, metavar="NAME",
         help="load only these installed extensions (default: all)")
    flag("--seccomp", type=go_bool, nargs="?", const=True, default=True,
         help="install the seccomp filter (default true; false only to debug)")
    flag("--seccomp-log", action="store_true",
         help="log syscalls outside the allowlist instead of killing the gofer")
    for e in exts:
        e.add_flags(p)
    return p


def _setup_logging(g):
    """Logs to the FDs runsc hands over (--log-fd, and --debug-log-fd under
    --debug; runsc points the gofer's stderr at /dev/null), else stderr."""
    fds = [int(g[k]) for k in ("log-fd", "debug-log-fd") if int(g.get(k) or -1) >= 0]
    streams = [os.fdopen(fd, "w", buffering=1) for fd in dict.fromkeys(fds)] or [sys.stderr]
    level = logging.DEBUG if go_bool(g.get("debug", "false")) else logging.INFO
    logging.basicConfig(level=level, force=True, handlers=[logging.StreamHandler(s) for s in streams],
                        format="gofer[%(process)d]: %(levelname)s: %(message)s")


def main(global_args, args):
    try:
        return run(global_args, args)
    except (Fatal, specmod.SpecError, extension.ExtensionError) as e:
        # stderr is /dev/null under runsc: the log FD carries the reason.
        print("gofer: fatal: %s" % e, file=sys.stderr)
        log.error("fatal: %s", e)
        return EXIT_FATAL
    except Exception:
        log.exception("fatal: unexpected error")
        return EXIT_FATAL


def run(global_args, args):
    g = parse_globals(global_args)
    _setup_logging(g)
    ignored = sorted(set(g) - HONOURED_GLOBALS)
    if ignored:
        log.warning("ignoring runsc flags this gofer does not implement: %s",
                    " ".join("--" + n for n in ignored))
    args = _normalize(args)
    names = None
    for i, a in enumerate(args):           # --extension picks which flags exist
        if a.startswith("--extension"):
            value = a.partition("=")[2] or (args[i + 1] if i + 1 < len(args) else "")
            names = (names or []) + [n for n in value.split(",") if n]
    exts = extension.load_entry_points(names)
    opts = build_parser(exts).parse_args(args)
    inert = [f for f in INERT_FLAGS if getattr(opts, f) >= 0]
    if inert:
        log.warning("accepted without effect: %s", " ".join(
            "--" + f.replace("_", "-") for f in inert))

    # The spec, and which socket serves what.
    if opts.spec_fd < 0 and not opts.bundle:
        raise Fatal("--spec-fd or --bundle is required")
    io_fds = [int(v) for value in opts.io_fds for v in value.split(",") if v]
    if not io_fds and opts.dev_io_fd < 0:
        raise Fatal("no --io-fds given")
    spec = specmod.load(opts.spec_fd, opts.bundle or None)
    plan = specmod.serving_plan(spec, io_fds, specmod.parse_mount_confs(opts.gofer_mount_confs))
    for c in plan:
        if c.io_fd < 0:
            raise Fatal("--io-fds value %d for %s is not an FD" % (c.io_fd, c.mount_path))

    # Import all that serving needs before any chroot: the modules will not be
    # reachable after it (and the stock backend opens /proc/self/fd at import).
    from gofer._server import ConnectionOpts, Server
    from gofer import fsgofer
    from gofer.fsgofer import HostConnection
    from gofer.service import Service

    # Everything the filter needs is loaded now, while the host is in reach;
    # the filter itself goes on last, right before serving.
    host_uds = g.get("host-uds", "none")
    uds_open = host_uds in ("open", "all")
    load_filter = None
    if opts.seccomp or opts.seccomp_log:
        from gofer import seccomp
        try:
            load_filter = seccomp.prepare(seccomp.extension_rules(exts), log=opts.seccomp_log,
                                          host_uds_open=uds_open,
                                          host_uds_create=host_uds in ("create", "all"))
        except (ValueError, OSError) as e:
            raise Fatal("seccomp: %s" % e) from None

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
    extension.prepare_all(extension.PrepareContext(spec=spec, container_id=opts.container_id,
                                                   bundle_dir=opts.bundle, args=opts), exts)
    if opts.mounts_fd >= 0:
        # A pipe the sentry reads: write it without holding up the start.
        threading.Thread(target=specmod.write_mounts, args=(opts.mounts_fd, spec),
                         daemon=True, name="gofer-mounts").start()
    os.umask(0)                               # keep modes exactly as the sandbox sends them

    if opts.apply_caps:
        caps = sandbox.GOFER_CAPS + (("SETUID", "SETGID") if uds_open else ())
        try:
            sandbox.apply_caps(caps, last_cap)
        except OSError as e:
            raise Fatal("applying capabilities: %s" % e) from None
    if g.get("fdlimit", "-1") not in ("", "-1"):
        warning = sandbox.set_fd_limit(int(g["fdlimit"]))
        if warning:
            log.warning("--fdlimit: %s", warning)
    else:
        sandbox.raise_fd_limit()          # the per-connection FD caps derive from it

    # Every connection: an extension's claim, or the stock backend.
    stock_opts = dict(set_attr_on_deleted=True, allocate_on_deleted=True, open_on_deleted=True)
    backend = dict(host_uds=host_uds, host_fifo=g.get("host-fifo", "none"),
                   character_device_policy=g.get("character-device-policy", "emulated-only"),
                   donate_mount_fd=go_bool(g.get("directfs", "true")))   # runsc's default
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
