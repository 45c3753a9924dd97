"""Extensions: custom backends that claim mounts of the stock gofer.

    from gofer.extension import Extension, register
    from gofer.lisafs import ConnectionOpts

    class BlobStore(Extension):
        name = "blobstore"

        def new_connection(self, spec, mount, mount_path, readonly):
            if mount is None or mount.get("type") != "blobstore":
                return None                                  # decline
            return BlobConnection(mount["source"]), ConnectionOpts(readonly=readonly)

    register(BlobStore())

The semantics are gVisor's (runsc/fsgofer/extension): for each mount,
extensions are asked in registration order and the first that returns an
implementation serves it; an exception means "claimed but failed" and stops
the gofer; the root is offered with ``mount=None`` and ``mount_path="/"``;
``/dev`` is never offered; unclaimed mounts go to the stock backend. All
connections share one server tree.

Installed packages declare extensions in the entry-point group
``gofer.extensions``; the value is an `Extension` subclass or instance (or a
callable returning one).

Extensions log through ``gofer.extension.log`` (``log.warning(...)``, as a
`logging.Logger`): its lines go where the gofer's go, and unlike `logging`
it adds nothing to the start of every gofer that has the extension
installed. Likewise, import what only serving needs (a crypto or HTTP
library) when a mount is claimed, not with the module: every installed
extension is loaded at every start of `gofer gofer`.
"""
import os
import sys

from gofer._log import log
# From the core, not gofer.lisafs (the same classes): `gofer gofer` imports this
# on every start, and gofer.lisafs costs a millisecond more.
from gofer._server import ConnectionImpl, ConnectionOpts

ENTRY_POINT_GROUP = "gofer.extensions"


class ExtensionError(Exception):
    """An extension failed to load, prepare or claim a mount."""


class Extension:
    """Base class of gofer extensions. Override `name` and `new_connection`."""

    name: "str | None" = None

    def new_connection(self, spec, mount, mount_path, readonly):
        """Claims a mount: returns ``(ConnectionImpl, ConnectionOpts)``, or None
        to decline. `spec` is the sandbox's OCI spec (a dict; None under
        ``gofer serve``), `mount` the spec's mount dict (None for the root),
        `mount_path` its absolute path in the sandbox, `readonly` what gVisor
        computes for it. The returned options are used as they are, so set
        ``readonly`` there yourself."""
        return None

    def seccomp_rules(self):
        """Extra syscalls this extension needs under the gofer's seccomp
        filter: a list of syscall names, or ``(name, [pyseccomp.Arg, ...])``.
        They can only widen the stock allowlist."""
        return []

    def add_flags(self, parser):
        """Adds flags to `gofer gofer` with ``parser.add_argument(...)``:
        argparse's call (the subset `gofer.goflag.FlagSet` takes), parsed as
        runsc parses its flags, Go's way. The values reach `prepare` in
        ``ctx.args``."""

    def prepare(self, ctx):
        """Runs before the gofer confines itself to the container's mounts,
        drops privileges and puts its seccomp filter on, with a
        `PrepareContext`: the place to read host files (keys, credentials)."""


class PrepareContext:
    """What `Extension.prepare` gets: the sandbox's spec, container ID and
    bundle directory, the parsed command line (extension flags included) and
    a dict extensions may share."""

    def __init__(self, spec, container_id, bundle_dir, args=None, extra=None):
        self.spec = spec
        self.container_id = container_id
        self.bundle_dir = bundle_dir
        self.args = args
        self.extra = {} if extra is None else extra


_registered = []


def register(ext):
    """Adds an extension; it is asked after those registered before it."""
    if not isinstance(ext, Extension):
        raise TypeError("register() takes an Extension instance, not %r" % (ext,))
    if not ext.name or not isinstance(ext.name, str):
        raise ValueError("%s has no name" % type(ext).__name__)
    if any(e.name == ext.name for e in _registered):
        raise ValueError("an extension named %r is already registered" % ext.name)
    _registered.append(ext)
    return ext


def registered():
    """The registered extensions, in registration order."""
    return list(_registered)


def unregister_all():
    """Forgets every registration (for tests and embedding)."""
    _registered.clear()


def _instantiate(obj, label):
    if isinstance(obj, Extension):
        return obj
    if callable(obj):
        ext = obj()
        if isinstance(ext, Extension):
            return ext
    raise ExtensionError("%s does not give a gofer.extension.Extension" % label)


class EntryPoint:
    """``name = module:attr`` from a distribution's entry_points.txt."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def load(self):
        module, _, attrs = self.value.partition("[")[0].strip().partition(":")
        # __import__ rather than importlib.import_module: the importlib
        # package brings warnings, a millisecond of every start.
        module = module.strip()
        __import__(module)
        obj = sys.modules[module]
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return obj


def installed_entry_points(group):
    """{name: EntryPoint} of the installed distributions' entry points in
    `group`, found where importlib.metadata finds them (each sys.path
    directory's *.dist-info and *.egg-info; the first distribution of a name
    wins) without importing it: importlib.metadata costs ~15 ms, and this
    runs on every sandbox's start."""
    found, dists = {}, set()
    for directory in sys.path:
        try:
            entries = sorted(os.listdir(directory or "."))
        except OSError:
            continue
        for entry in entries:
            stem, _, kind = entry.rpartition(".")
            if kind not in ("dist-info", "egg-info"):
                continue
            dist = stem.split("-")[0].lower().replace("_", "-").replace(".", "-")
            if dist in dists:
                continue
            dists.add(dist)
            try:
                with open(os.path.join(directory or ".", entry, "entry_points.txt")) as f:
                    text = f.read()
            except OSError:
                continue
            section = None
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip()
                elif section == group and "=" in line and not line.startswith(("#", ";")):
                    name, _, value = line.partition("=")
                    found.setdefault(name.strip(), EntryPoint(name.strip(), value.strip()))
    return found


def load_entry_points(names=None):
    """Registers the installed extensions of the entry-point group (all, or
    those named); returns them. A broken one raises ExtensionError naming it."""
    found = installed_entry_points(ENTRY_POINT_GROUP)
    if names is not None:
        missing = [n for n in names if n not in found]
        if missing:
            raise ExtensionError("no installed extension named %s (installed: %s)" % (
                ", ".join(missing), ", ".join(sorted(found)) or "none"))
        chosen = [found[n] for n in names]
    else:
        chosen = [found[n] for n in sorted(found)]
    loaded = []
    for ep in chosen:
        label = "extension %r (%s)" % (ep.name, ep.value)
        try:
            ext = _instantiate(ep.load(), label)
        except ExtensionError:
            raise
        except Exception as e:
            raise ExtensionError("%s failed to load: %s: %s" % (label, type(e).__name__, e)) from e
        if any(r is ext or r.name == ext.name for r in _registered):
            continue
        loaded.append(register(ext))
    log.follow()            # an extension that uses `logging` logs where gofer does
    return loaded


def claim(spec, mount, mount_path, readonly, extensions=None):
    """Asks the extensions for one mount, as gVisor's gofer does.

    Returns ``(extension, impl, opts)`` for the first claim, or None when every
    extension declines or the mount is /dev. An extension that raises, or
    returns something that is not a claim, raises ExtensionError naming it
    and the mount."""
    if mount_path == "/dev":
        return None
    for ext in registered() if extensions is None else extensions:
        try:
            res = ext.new_connection(spec, mount, mount_path, readonly)
        except Exception as e:
            raise ExtensionError("extension %s for %r: %s: %s" % (
                ext.name, mount_path, type(e).__name__, e)) from e
        if res is None:
            continue
        try:
            impl, opts = res
        except (TypeError, ValueError):
            impl = opts = None
        if not isinstance(impl, ConnectionImpl) or not isinstance(opts, ConnectionOpts):
            raise ExtensionError(
                "extension %s for %r: new_connection() must return None or "
                "(ConnectionImpl, ConnectionOpts), not %r" % (ext.name, mount_path, res))
        return ext, impl, opts
    return None


def prepare_all(ctx, extensions=None):
    """Runs every extension's prepare hook in order; the first failure stops."""
    for ext in registered() if extensions is None else extensions:
        try:
            ext.prepare(ctx)
        except Exception as e:
            raise ExtensionError("preparing extension %s: %s: %s" % (
                ext.name, type(e).__name__, e)) from e
