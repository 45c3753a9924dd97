"""The OCI runtime spec as the gofer uses it, following runsc.

`load()` reads config.json from an FD or the bundle and checks the fields the
gofer relies on, naming the offending field in any error. `serving_plan()`
matches runsc's connection order: the root first when it is served over
LISAFS, then each bind mount with a LISAFS mount config in spec order.
"""
import _json
import os
from collections import namedtuple


class SpecError(Exception):
    """A spec or mount configuration the gofer cannot serve."""


# ---------------------------------------------------------------- JSON
# json.loads and json.dumps as the json package does them, with its C
# scanner and encoder called directly: the package imports `re` (with `enum`),
# a few ms of every `gofer gofer` start (docs/performance.md).

class _Decoding:
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int, parse_constant = float, int, float    # float("NaN"), ...


_scan = _json.make_scanner(_Decoding())
_JSON_SPACE = " \t\n\r"


def json_loads(data):
    """The value of one JSON document (bytes in UTF-8, or str); ValueError
    (json.JSONDecodeError) if it is not one."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = _scan(text, start)
        if not text[end:].strip(_JSON_SPACE):
            return value
    except (StopIteration, ValueError, SystemError):
        pass        # (the scanner's errors need json.decoder loaded: SystemError without)
    import json
    return json.loads(text)             # json's own error, naming where


def _unencodable(o):
    raise TypeError("%s is not JSON serializable" % type(o).__name__)


_encode = _json.make_encoder(None, _unencodable, _json.encode_basestring_ascii, None,
                             ": ", ", ", False, False, True)


def json_dumps(value):
    """json.dumps(value), byte for byte."""
    return "".join(_encode(value, 0))


# ---------------------------------------------------------------- loading

def load(spec_fd=None, bundle=None):
    """The spec from `spec_fd` (read from offset 0) or `bundle`/config.json,
    validated, with relative paths made absolute against the bundle."""
    if spec_fd is not None and spec_fd >= 0:
        where = "spec FD %d" % spec_fd
        try:
            os.lseek(spec_fd, 0, os.SEEK_SET)
        except OSError:
            pass                        # a pipe: read it as it is
        try:
            with os.fdopen(os.dup(spec_fd), "rb") as f:
                data = f.read()
        except OSError as e:
            raise SpecError("cannot read %s: %s" % (where, e.strerror)) from None
    elif bundle:
        where = os.path.join(bundle, "config.json")
        try:
            with open(where, "rb") as f:
                data = f.read()
        except OSError as e:
            raise SpecError("cannot read %s: %s" % (where, e.strerror)) from None
    else:
        raise SpecError("no spec: give --spec-fd or --bundle")
    try:
        spec = json_loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError("%s is not valid JSON: %s" % (where, e)) from None
    validate(spec)
    return fix_paths(spec, bundle)


def _check(value, kind, path, optional=False):
    if value is None and optional:
        return
    names = {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SpecError("%s: expected %s, got %s" % (path, names[kind], json_dumps(value)))


def validate(spec):
    """Checks the types of every field the gofer reads."""
    _check(spec, dict, "spec")
    _check(spec.get("ociVersion"), str, "ociVersion", optional=True)
    root = spec.get("root")
    _check(root, dict, "root")
    _check(root.get("path"), str, "root.path")
    if not root["path"]:
        raise SpecError("root.path: must not be empty")
    _check(root.get("readonly"), bool, "root.readonly", optional=True)
    mounts = spec.get("mounts")
    _check(mounts, list, "mounts", optional=True)
    for i, m in enumerate(mounts or []):
        p = "mounts[%d]" % i
        _check(m, dict, p)
        _check(m.get("destination"), str, p + ".destination")
        for key in ("type", "source"):
            _check(m.get(key), str, "%s.%s" % (p, key), optional=True)
        _check(m.get("options"), list, p + ".options", optional=True)
        for j, o in enumerate(m.get("options") or []):
            _check(o, str, "%s.options[%d]" % (p, j))
    ann = spec.get("annotations")
    _check(ann, dict, "annotations", optional=True)
    for k, v in (ann or {}).items():
        _check(v, str, "annotations[%s]" % json_dumps(k))


def fix_paths(spec, bundle):
    """Makes root.path and bind sources absolute against the bundle dir."""
    base = bundle or os.getcwd()
    spec["root"]["path"] = os.path.join(base, spec["root"]["path"])
    for m in spec.get("mounts") or []:
        if is_bind_mount(m) and m.get("source"):
            m["source"] = os.path.join(base, m["source"])
    return spec


# ---------------------------------------------------------------- mounts

def is_bind_mount(m):
    """runsc's IsGoferMount: a bind (by type or option) with a source."""
    opts = m.get("options") or []
    is_bind = m.get("type") == "bind" or "bind" in opts or "rbind" in opts
    return is_bind and bool(m.get("source"))


def has_mount_config(m):
    return is_bind_mount(m) or m.get("type") == "erofs"


def is_readonly_mount(options):
    return "ro" in (options or [])


class MountConf(namedtuple("MountConf", "lower upper size", defaults=("",))):
    """One --gofer-mount-confs entry: lower:upper[:size=N]."""
    __slots__ = ()

    LOWERS = ("none", "lisafs", "erofs")
    UPPERS = ("none", "memory", "self", "anon")

    @classmethod
    def parse(cls, text):
        parts = text.split(":")
        if not 2 <= len(parts) <= 3:
            raise SpecError("invalid gofer mount config %r: want lower:upper[:size=N]" % text)
        size = ""
        if len(parts) == 3:
            if not parts[2].startswith("size="):
                raise SpecError("invalid gofer mount config %r: third part must be size=N" % text)
            size = parts[2][5:]
        conf = cls(parts[0], parts[1], size)
        if conf.lower not in cls.LOWERS or conf.upper not in cls.UPPERS or (
                conf.lower == "none" and conf.upper == "none"):
            raise SpecError("invalid gofer mount config %r" % text)
        return conf

    @property
    def lisafs(self):
        return self.lower == "lisafs"

    @property
    def overlay(self):
        return self.lower != "none" and self.upper != "none"


def parse_mount_confs(values):
    """--gofer-mount-confs, repeated and/or comma-separated."""
    return [MountConf.parse(v) for value in values for v in value.split(",") if v]


def resolve_in_root(root, dst, max_links=255):
    """`dst` with symlinks evaluated inside `root` (".." stops at root), as
    runsc's ResolveSymlinks; returns the absolute in-sandbox path."""
    parts = [p for p in dst.split("/") if p]
    resolved = []
    links = 0
    while parts:
        p = parts.pop(0)
        if p == ".":
            continue
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, p)
        try:
            target = os.readlink(host)
        except OSError:
            resolved.append(p)          # not a symlink (or not there yet)
            continue
        links += 1
        if links > max_links:
            raise SpecError("%s: too many symlinks under %s" % (dst, root))
        if target.startswith("/"):
            resolved = []
        parts = [t for t in target.split("/") if t] + parts
    return "/" + "/".join(resolved)


class Connection:
    """One LISAFS connection the gofer serves."""

    def __init__(self, mount, mount_path, host_path, readonly, io_fd):
        self.mount = mount              # the spec mount, or None for the root
        self.mount_path = mount_path    # absolute path in the sandbox
        self.host_path = host_path      # what it serves on the host
        self.readonly = readonly
        self.io_fd = io_fd

    def __repr__(self):
        return "Connection(%r, %r, %r, %r, %r)" % (
            self.mount_path, self.host_path, self.readonly, self.io_fd, self.mount)


def serving_plan(spec, io_fds, mount_confs):
    """Pairs the --io-fds with what they serve, in runsc's order. The
    destinations are resolved later, as the root is set up."""
    if not mount_confs:
        mount_confs = [MountConf("lisafs", "none")] * (1 + len(spec.get("mounts") or []))
    fds = list(io_fds)
    plan = []
    root = spec["root"]["path"]
    if mount_confs[0].lisafs:
        if not fds:
            raise SpecError("no --io-fds for the root")
        plan.append(Connection(None, "/", root, bool(spec["root"].get("readonly")) or
                               mount_confs[0].overlay, fds.pop(0)))
    idx = 1
    for i, m in enumerate(spec.get("mounts") or []):
        if not has_mount_config(m):
            continue
        if idx >= len(mount_confs):
            raise SpecError("mounts[%d] (%s) has no --gofer-mount-confs entry (%d given)" % (
                i, m["destination"], len(mount_confs)))
        conf = mount_confs[idx]
        idx += 1
        if not conf.lisafs:
            continue
        if not m["destination"].startswith("/"):
            raise SpecError("mounts[%d].destination: must be absolute, got %r" % (
                i, m["destination"]))
        if not fds:
            raise SpecError("no --io-fds left for mounts[%d] (%s)" % (i, m["destination"]))
        plan.append(Connection(m, m["destination"], m["source"],
                               is_readonly_mount(m.get("options")) or conf.overlay, fds.pop(0)))
    if fds:
        raise SpecError("%d more --io-fds than mounts to serve" % len(fds))
    return plan


def write_mounts(fd, spec):
    """Writes the (resolved) mount list as JSON to --mounts-fd, as the sentry
    expects, and closes it."""
    data = json_dumps(spec.get("mounts") or []).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(data)
