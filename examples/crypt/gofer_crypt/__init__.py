"""gofer-crypt: a host directory whose file contents are stored encrypted.

Each file is sealed block by block with authenticated encryption (see
`gofer_crypt.cipher`), so random reads and writes touch only their blocks
and a changed byte on the host answers EIO. Names, directory structure,
sizes, owners, modes, times and symlink targets stay in the clear.

Configuration (the key file is read before the gofer confines itself to the
container's mounts, and never reaches the sandbox):

- under `gofer gofer`: the mounts whose destinations are listed in the
  annotation ``dev.gofer.crypt.mounts`` (comma-separated); the key file is
  the mount option ``gofer-crypt-key=PATH`` or else the annotation
  ``dev.gofer.crypt.key``;
- under `gofer serve --extension crypt`: the directory in the environment
  variable GOFER_CRYPT_DIR and the key file in GOFER_CRYPT_KEY.
"""
import os

from gofer.extension import Extension
from gofer.lisafs import ConnectionOpts


MOUNTS_ANNOTATION = "dev.gofer.crypt.mounts"
KEY_ANNOTATION = "dev.gofer.crypt.key"
KEY_OPTION = "gofer-crypt-key="


def _claimed_mounts(spec):
    """The spec's mounts this extension serves."""
    listed = ((spec.get("annotations") or {}).get(MOUNTS_ANNOTATION) or "").split(",")
    return [m for m in spec.get("mounts") or () if m.get("destination") in listed]


def _key_path(spec, mount):
    for option in mount.get("options") or ():
        if option.startswith(KEY_OPTION):
            return option[len(KEY_OPTION):]
    path = (spec.get("annotations") or {}).get(KEY_ANNOTATION)
    if not path:
        raise ValueError("no key file: give the mount option %sPATH or the annotation %s"
                         % (KEY_OPTION, KEY_ANNOTATION))
    return path


def _load_key(path):
    # The implementation (and `cryptography`, ~12 ms) loads with the first
    # key: only in a gofer that serves a crypt mount, and before it is
    # confined to the container's mounts, where no module can be found.
    from gofer_crypt import fs  # noqa: F401
    from gofer_crypt.cipher import load_key
    return load_key(path)


class CryptExtension(Extension):
    name = "crypt"

    def __init__(self):
        self.keys = {}             # key file path -> key, read while the host is in reach
        self.claimed = None        # ids of the spec mounts claimed in prepare (destinations change after)
        self.confined = False      # --setup-root: mounts are served at their destinations

    def prepare(self, ctx):
        if ctx.spec is None:
            return
        mounts = _claimed_mounts(ctx.spec)
        self.claimed = {id(m) for m in mounts}
        for m in mounts:
            path = _key_path(ctx.spec, m)
            self.keys[path] = _load_key(path)
        self.confined = bool(getattr(ctx.args, "setup_root", False))

    def _key(self, path):
        return self.keys.get(path) or _load_key(path)

    def new_connection(self, spec, mount, mount_path, readonly):
        if spec is None:                             # gofer serve --extension crypt
            try:
                root, key_path = os.environ["GOFER_CRYPT_DIR"], os.environ["GOFER_CRYPT_KEY"]
            except KeyError as e:
                raise ValueError("gofer serve --extension crypt needs %s in the environment"
                                 % e) from None
        elif mount is None:
            return None
        else:
            if self.claimed is not None:             # destinations were resolved since prepare
                if id(mount) not in self.claimed:
                    return None
            elif mount not in _claimed_mounts(spec):
                return None
            key_path = _key_path(spec, mount)
            root = mount_path if self.confined else mount["source"]
        key = self._key(key_path)
        os.close(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))
        from gofer_crypt.fs import CryptConnection      # loaded by _load_key
        return CryptConnection(root, key), ConnectionOpts(readonly=readonly)

    def seccomp_rules(self):
        # Mode, owner and times are set through a reopened FD of the file.
        return ["fchmod", "fchown"]
