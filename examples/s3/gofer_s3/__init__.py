"""gofer-s3: a bucket of an S3-compatible object store as a gofer mount.

Objects are files; a `/` in a key is a directory level, and an empty object
named `dir/` marks a directory that has no object under it yet. Reads are
ranged GETs. Writes go to a local spool file (a memfd, or an O_TMPFILE in
GOFER_S3_SPOOL_DIR) and reach the store, whole, on flush, fsync or the last close
(a multipart upload above `multipart_threshold`). A rename is a server-side
copy then a delete, key by key for a directory: it is not atomic, and a
failure half-way leaves both names. Stats are cached for `ttl` seconds.

Every request has a connect and a read timeout and a bounded number of
attempts: an unreachable store answers EIO (and logs one line), never hangs,
and the next request tries again.

Per mount (a later source wins): environment variables GOFER_S3_<NAME>
(what `gofer serve --extension s3` uses), the spec's annotations
dev.gofer.s3.<name>, and the mount's options s3.<name>=value. Names:
endpoint, bucket, prefix, region, ttl, timeout, attempts,
multipart_threshold.

The launcher's (environment only, read when the extension loads, before
`gofer gofer` moves into its confined root, where no host file is in reach):
GOFER_S3_CREDENTIALS, an AWS shared-credentials file (without it requests
are unsigned), and GOFER_S3_SPOOL_DIR, where unsent writes wait (default: in
memory, a memfd). For the same reason botocore (its modules and data files)
is loaded when the extension loads. Both happen only if GOFER_S3_ENDPOINT is
set in the gofer's environment, the launcher's sign that this gofer serves
S3 mounts: without it gofer-s3 costs nothing, adds nothing to the seccomp
allowlist, and refuses to serve.
"""
import os

from gofer.extension import Extension
from gofer.lisafs import ConnectionOpts

DEFAULTS = {"endpoint": None, "bucket": None, "prefix": "", "region": "us-east-1",
            "ttl": "5", "timeout": "5", "attempts": "2", "multipart_threshold": str(8 << 20)}
ANNOTATION = "dev.gofer.s3."


def load_config(spec=None, mount=None, environ=os.environ):
    """The mount's settings: defaults < environment < annotations < mount options."""
    cfg = dict(DEFAULTS)
    for name in DEFAULTS:
        value = environ.get("GOFER_S3_" + name.upper())
        if value is not None:
            cfg[name] = value
    for key, value in ((spec or {}).get("annotations") or {}).items():
        if key.startswith(ANNOTATION) and key[len(ANNOTATION):] in DEFAULTS:
            cfg[key[len(ANNOTATION):]] = value
    for opt in (mount or {}).get("options") or []:
        name, eq, value = opt.partition("=")
        if eq and name.startswith("s3.") and name[3:] in DEFAULTS:
            cfg[name[3:]] = value
    if not cfg["bucket"]:
        raise ValueError("no bucket: set dev.gofer.s3.bucket, the mount option s3.bucket "
                         "or GOFER_S3_BUCKET")
    for name in ("ttl", "timeout"):
        cfg[name] = float(cfg[name])
    for name in ("attempts", "multipart_threshold"):
        cfg[name] = int(cfg[name])
    if cfg["timeout"] <= 0 or cfg["attempts"] < 1:
        raise ValueError("timeout must be > 0 and attempts >= 1")
    prefix = cfg["prefix"].strip("/")
    cfg["prefix"] = prefix + "/" if prefix else ""
    return cfg


def _credentials(path):
    """(access key, secret key) from the [default] section of an AWS
    shared-credentials file."""
    import configparser
    parser = configparser.ConfigParser()
    with open(path) as f:
        parser.read_file(f)
    section = parser["default"] if parser.has_section("default") else parser[parser.sections()[0]]
    return section["aws_access_key_id"], section["aws_secret_access_key"]


def claims(name, spec, mount, mount_path):
    """Whether extension `name` claims this mount: OCI mounts of type `name`
    or whose destination is in the annotation dev.gofer.<name>.mounts; the
    root under `gofer serve` (no spec) or when dev.gofer.<name>.root is "true"."""
    annotations = (spec or {}).get("annotations") or {}
    if mount is None:
        return spec is None or annotations.get("dev.gofer.%s.root" % name) == "true"
    listed = annotations.get("dev.gofer.%s.mounts" % name, "").split(",")
    return mount.get("type") == name or mount_path in listed


class S3Extension(Extension):
    """Serves the claimed mounts (see `claims`) from an S3 bucket."""

    name = "s3"

    def __init__(self, environ=os.environ):
        # GOFER_S3_ENDPOINT in the gofer's environment says it serves S3
        # mounts: only then does gofer-s3 load boto3 (while the host is in
        # reach) and open TCP in the seccomp filter.
        self.enabled = bool(environ.get("GOFER_S3_ENDPOINT"))
        if self.enabled:
            from . import store  # noqa: F401
        creds = environ.get("GOFER_S3_CREDENTIALS")
        self.keys = _credentials(creds) if creds else None
        spool = environ.get("GOFER_S3_SPOOL_DIR")
        self.spool_dir = os.open(spool, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) \
            if spool else -1

    def new_connection(self, spec, mount, mount_path, readonly):
        if not claims(self.name, spec, mount, mount_path):
            return None
        if not self.enabled:
            raise ValueError("gofer-s3 is off in this gofer: set GOFER_S3_ENDPOINT in its "
                             "environment")
        from .store import S3Connection, Store
        store = Store(load_config(spec, mount), self.keys, self.spool_dir)
        return S3Connection(store), ConnectionOpts(readonly=readonly)

    def seccomp_rules(self):
        return network_rules() if self.enabled else []


def network_rules():
    """TCP to the store (any address: the endpoint is configuration), as
    urllib3 and Python's socket timeouts make it."""
    import socket

    import pyseccomp
    return [("socket", [pyseccomp.Arg(0, pyseccomp.EQ, af)])
            for af in (socket.AF_INET, socket.AF_INET6)] + [
        "connect", "poll", "ppoll", "setsockopt", "getsockopt", "sendto", "recvfrom",
        "getsockname", "getpeername", "shutdown"]
