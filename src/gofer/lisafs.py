"""The public API of gofer for backend and extension authors.

Everything an extension needs is here: the base classes to subclass, the
value types that cross the API, the message IDs (`MID`) and the constants.
Nothing an author imports starts with an underscore. Each method's
docstring is its contract (help(gofer.lisafs.ControlFDImpl.walk)): the
message it serves, what it receives and returns, which errno means what,
and the lock the server holds while it runs, gVisor's concurrency
guarantee for the same method (pkg/lisafs/fd.go):

- read: other read-locked operations on the same file may run at once;
  nothing that modifies it does.
- write: nothing else runs on that file (or directory) at the same time.
- global: nothing else runs anywhere in the server tree.

Before a method runs the server has checked what no backend should: names
are single components (never "", ".", "..", nor containing "/" or NUL), FD
kinds and access modes match, a read-only mount refused mutations (EROFS),
offsets and lengths are at most 2**63 - 1.

Raise ``OSError(errno.X)`` (one or two arguments) to answer errno X. Any
other exception answers EREMOTEIO and logs one line: it is a backend bug.
A method not overridden answers EOPNOTSUPP. The types are in lisafs.pyi
beside this module (checked by mypy).

Return shapes: each method has one preferred result type below (`Child`,
`OpenResult`, `CreateResult`, ...). They are named tuples, so the older
plain-tuple shapes are still accepted.
"""
import sys
from collections import namedtuple

from gofer import _wire
from gofer._server import (  # noqa: F401
    BoundSocketFDImpl, ConnectionImpl, ConnectionOpts, ControlFDImpl, OpenFDImpl)
from gofer._wire import Dirent, StatFS, Statx  # noqa: F401
from gofer.fsgofer import reopen as _reopen

__all__ = [
    "ControlFDImpl", "OpenFDImpl", "BoundSocketFDImpl", "ConnectionImpl", "ConnectionOpts",
    "Statx", "Dirent", "StatFS", "Child", "OpenResult", "MountResult", "CreateResult",
    "BindResult", "SetStatResult", "MID", "reopen_fd", "implemented_messages", "page_dirents",
    "STATX_TYPE", "STATX_MODE", "STATX_NLINK", "STATX_UID", "STATX_GID", "STATX_ATIME",
    "STATX_MTIME", "STATX_CTIME", "STATX_INO", "STATX_SIZE", "STATX_BLOCKS",
    "STATX_BASIC_STATS", "STATX_BTIME", "UTIME_NOW", "UTIME_OMIT", "NO_UID", "NO_GID",
    "WALK_SUCCESS", "WALK_COMPONENT_DOES_NOT_EXIST", "WALK_COMPONENT_SYMLINK",
    "RENAME_NOREPLACE", "RENAME_EXCHANGE", "AT_REMOVEDIR", "XATTR_CREATE", "XATTR_REPLACE",
]


class _MIDClass(type):
    """What makes the class MID iterable and indexable as an IntEnum is."""

    def __iter__(cls):
        return iter(cls.__members__.values())

    def __len__(cls):
        return len(cls.__members__)

    def __getitem__(cls, name):
        return cls.__members__[name]

    def __call__(cls, value):
        if isinstance(value, int) and 0 <= value < len(_MIDS):
            return _MIDS[value]
        raise ValueError("%r is not a valid MID" % (value,))


class MID(int, metaclass=_MIDClass):
    """LISAFS message IDs, named as gVisor names them (MID.FStat, MID.Walk,
    ...). They behave as the members of an IntEnum (ints with a name and a
    value; MID(3), MID["FStat"], iteration, len) without the enum module,
    which would cost every start of `gofer gofer` a few milliseconds."""
    __slots__ = ()
    __str__, __format__ = int.__repr__, int.__format__        # as IntEnum's: the number

    @property
    def name(self):
        return _wire.MID_NAMES[self]

    @property
    def value(self):
        return int(self)

    def __repr__(self):
        return "<MID.%s: %d>" % (self.name, self)

    def __reduce__(self):
        return MID, (int(self),)


_MIDS = tuple(int.__new__(MID, i) for i in range(len(_wire.MID_NAMES)))
MID.__members__ = dict(zip(_wire.MID_NAMES, _MIDS))
for _mid in _MIDS:
    setattr(MID, _mid.name, _mid)
del _mid

STATX_TYPE, STATX_MODE, STATX_NLINK = _wire.STATX_TYPE, _wire.STATX_MODE, _wire.STATX_NLINK
STATX_UID, STATX_GID, STATX_ATIME = _wire.STATX_UID, _wire.STATX_GID, _wire.STATX_ATIME
STATX_MTIME, STATX_CTIME, STATX_INO = _wire.STATX_MTIME, _wire.STATX_CTIME, _wire.STATX_INO
STATX_SIZE, STATX_BLOCKS, STATX_BTIME = _wire.STATX_SIZE, _wire.STATX_BLOCKS, _wire.STATX_BTIME
STATX_BASIC_STATS = _wire.STATX_BASIC_STATS
UTIME_NOW, UTIME_OMIT = _wire.UTIME_NOW, _wire.UTIME_OMIT
NO_UID, NO_GID = _wire.NO_UID, _wire.NO_GID
WALK_SUCCESS = _wire.WALK_SUCCESS
WALK_COMPONENT_DOES_NOT_EXIST = _wire.WALK_COMPONENT_DOES_NOT_EXIST
WALK_COMPONENT_SYMLINK = _wire.WALK_COMPONENT_SYMLINK
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2          # rename_at() flags (renameat2(2))
AT_REMOVEDIR = 0x200                              # unlink() flag (unlinkat(2))
XATTR_CREATE, XATTR_REPLACE = 1, 2                # set_xattr() flags (setxattr(2))



def reopen_fd(fd, flags):
    """A new file description of host FD `fd` with `flags` (an access mode),
    opened through the gofer's FD directory (so it works inside the gofer's
    confined root): how a backend donates a file whose access mode is the
    client's (OpenResult's host_fd). The caller keeps `fd`."""
    return _reopen(fd, flags)


# The result types: named tuples (typed in lisafs.pyi), so that the plain
# tuples of earlier versions keep working; collections' rather than typing's
# to keep typing off the gofer's start-up path.
Child = namedtuple("Child", "impl stat")
Child.__doc__ = "A file reached or made: what walk, mkdir, mknod, symlink and link return."
OpenResult = namedtuple("OpenResult", "impl host_fd", defaults=(None,))
OpenResult.__doc__ = """What open() returns: the open file, and optionally a host FD to
donate (the server owns it from then on and prepares it: non-blocking,
close-on-exec)."""
MountResult = namedtuple("MountResult", "root host_fd", defaults=(None,))
MountResult.__doc__ = "What mount() returns: the root, and optionally a host FD of it."
CreateResult = namedtuple("CreateResult", "impl stat open host_fd", defaults=(None,))
CreateResult.__doc__ = "What open_create() returns: the new file, its Statx, the open file, a host FD."
BindResult = namedtuple("BindResult", "impl stat bound host_fd")
BindResult.__doc__ = "What bind_at() returns; the bound socket's host FD is required."
SetStatResult = namedtuple("SetStatResult", "failed_mask errno")
SetStatResult.__doc__ = "A partial set_stat() failure: the mask bits not applied, and why."


# Which base-class methods serve which messages (for implemented_messages).
_CONTROL_METHODS = {
    "open": [MID.OpenAt], "set_stat": [MID.SetStat], "open_create": [MID.OpenCreateAt],
    "mkdir": [MID.MkdirAt], "mknod": [MID.MknodAt], "symlink": [MID.SymlinkAt],
    "link": [MID.LinkAt], "statfs": [MID.FStatFS], "readlink": [MID.ReadLinkAt],
    "connect": [MID.Connect, MID.ConnectWithCreds],
    "connect_with_creds": [MID.ConnectWithCreds], "bind_at": [MID.BindAt],
    "unlink": [MID.UnlinkAt], "rename_at": [MID.RenameAt, MID.RenameAt2],
    "get_xattr": [MID.FGetXattr], "set_xattr": [MID.FSetXattr],
    "list_xattr": [MID.FListXattr], "remove_xattr": [MID.FRemoveXattr],
}
_OPEN_METHODS = {
    "read": [MID.PRead], "write": [MID.PWrite], "getdents64": [MID.Getdents64],
    "readdir": [MID.Getdents64], "allocate": [MID.FAllocate], "sync": [MID.FSync],
    "flush": [MID.Flush],
}
_SOCKET_METHODS = {"listen": [MID.Listen], "accept": [MID.Accept]}
# Always served: the core's own (Close), what every backend must give, and
# FSync (whose default, nothing to do, is right for a backend with no cache).
_ALWAYS = [MID.FStat, MID.Walk, MID.WalkStat, MID.Close, MID.FSync]
# What supported_messages() answered before it was inferred, kept for a
# backend whose classes live outside its ConnectionImpl's module.
_LEGACY_DEFAULT = _ALWAYS + [MID.OpenAt, MID.PRead, MID.PWrite, MID.Getdents64]


def implemented_messages(conn):
    """The MIDs whose methods the backend overrides: what
    ConnectionImpl.supported_messages() answers unless overridden. The
    backend's classes are the ControlFDImpl, OpenFDImpl and BoundSocketFDImpl
    subclasses defined in the module of `conn`'s class; a backend defined
    elsewhere, or whose Cython classes override only the c_* fast paths,
    lists its MIDs itself."""
    module = sys.modules.get(type(conn).__module__)
    found = False
    mids = set(_ALWAYS)
    for obj in list(vars(module).values()) if module is not None else []:
        for base, table in ((ControlFDImpl, _CONTROL_METHODS), (OpenFDImpl, _OPEN_METHODS),
                            (BoundSocketFDImpl, _SOCKET_METHODS)):
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
                found = True
                for name, served in table.items():
                    if getattr(obj, name) is not getattr(base, name):
                        mids.update(served)
    return sorted(mids if found else _LEGACY_DEFAULT)


# A Dirent on the wire: ino, dev_minor, dev_major, off (u64, u32, u32, u64),
# type (u8), name (u16 length + bytes).
_DIRENT_WIRE = 8 + 4 + 4 + 8 + 1 + 2


def page_dirents(impl, count, seek0):
    """OpenFDImpl.getdents64() from readdir(): lists the directory on the
    first call (and after `seek0`), then hands out as many entries as fit
    `count` bytes on the wire (at least one, at most 65535), with `off` set to each
    entry's position. The listing is kept on `impl` between calls."""
    state = getattr(impl, "_gofer_dirents", None)
    if seek0 or state is None:
        state = [list(impl.readdir()), 0]
        impl._gofer_dirents = state
    entries, pos = state
    out, used = [], 2
    while pos < len(entries):
        d = entries[pos]
        size = _DIRENT_WIRE + len(d.name)
        if out and (used + size > count or len(out) == 0xFFFF):    # the count is a u16
            break
        used += size
        pos += 1
        out.append(d._replace(off=pos))
    state[1] = pos
    return out
