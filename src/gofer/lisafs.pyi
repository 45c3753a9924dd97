"""The public API of gofer for backend and extension authors (typed).

Every method below states what it receives, what it returns, which errno
means what, and the lock the server holds while it runs, as gVisor documents
its own backend interface:

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
A method not overridden answers EOPNOTSUPP.
"""
import enum
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

class MID(enum.IntEnum):
    """LISAFS message IDs, named as gVisor names them."""
    Error = 0
    Mount = 1
    Channel = 2
    FStat = 3
    SetStat = 4
    Walk = 5
    WalkStat = 6
    OpenAt = 7
    OpenCreateAt = 8
    Close = 9
    FSync = 10
    PWrite = 11
    PRead = 12
    MkdirAt = 13
    MknodAt = 14
    SymlinkAt = 15
    LinkAt = 16
    FStatFS = 17
    FAllocate = 18
    ReadLinkAt = 19
    Flush = 20
    Connect = 21
    UnlinkAt = 22
    RenameAt = 23
    Getdents64 = 24
    FGetXattr = 25
    FSetXattr = 26
    FListXattr = 27
    FRemoveXattr = 28
    BindAt = 29
    Listen = 30
    Accept = 31
    ConnectWithCreds = 32
    RenameAt2 = 33

STATX_TYPE: int
STATX_MODE: int
STATX_NLINK: int
STATX_UID: int
STATX_GID: int
STATX_ATIME: int
STATX_MTIME: int
STATX_CTIME: int
STATX_INO: int
STATX_SIZE: int
STATX_BLOCKS: int
STATX_BASIC_STATS: int
STATX_BTIME: int
UTIME_NOW: int
"""An nsec value of set_stat(): set the time to now."""
UTIME_OMIT: int
"""An nsec value of set_stat(): leave the time as it is."""
NO_UID: int
"""A uid of the create methods: none given (use the backend's default)."""
NO_GID: int
WALK_SUCCESS: int
WALK_COMPONENT_DOES_NOT_EXIST: int
WALK_COMPONENT_SYMLINK: int
RENAME_NOREPLACE: int
RENAME_EXCHANGE: int
AT_REMOVEDIR: int
XATTR_CREATE: int
XATTR_REPLACE: int

class Statx:
    """A file's attributes, as Linux's struct statx (first 144 bytes).
    Keyword-only construction; unset fields are 0. `mask` says which fields
    are valid and must include STATX_TYPE; ``(ino, dev_minor, dev_major)``
    is the file's identity to the sandbox: stable, unique, shared by hard
    links."""
    mask: int
    blksize: int
    attributes: int
    nlink: int
    uid: int
    gid: int
    mode: int
    ino: int
    size: int
    blocks: int
    attributes_mask: int
    atime_sec: int
    atime_nsec: int
    btime_sec: int
    btime_nsec: int
    ctime_sec: int
    ctime_nsec: int
    mtime_sec: int
    mtime_nsec: int
    rdev_major: int
    rdev_minor: int
    dev_major: int
    dev_minor: int
    def __init__(self, *, mask: int = ..., blksize: int = ..., attributes: int = ...,
                 nlink: int = ..., uid: int = ..., gid: int = ..., mode: int = ...,
                 ino: int = ..., size: int = ..., blocks: int = ...,
                 attributes_mask: int = ..., atime_sec: int = ..., atime_nsec: int = ...,
                 btime_sec: int = ..., btime_nsec: int = ..., ctime_sec: int = ...,
                 ctime_nsec: int = ..., mtime_sec: int = ..., mtime_nsec: int = ...,
                 rdev_major: int = ..., rdev_minor: int = ..., dev_major: int = ...,
                 dev_minor: int = ...) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Statx: ...
    def as_dict(self) -> dict[str, int]: ...

class Dirent(NamedTuple):
    """One directory entry. `type` is the DT_* value ((mode & S_IFMT) >> 12);
    `off` is set by the server when it pages readdir()."""
    ino: int
    dev_minor: int
    dev_major: int
    off: int
    type: int
    name: bytes

class StatFS(NamedTuple):
    """A filesystem's statistics, as statfs(2)."""
    type: int
    block_size: int
    blocks: int
    blocks_free: int
    blocks_available: int
    files: int
    files_free: int
    name_length: int

class Child(NamedTuple):
    """A file reached or made: what walk, mkdir, mknod, symlink and link return."""
    impl: ControlFDImpl
    stat: Statx

class OpenResult(NamedTuple):
    """What open() returns: the open file, and optionally a host FD to donate
    (the server owns it from then on, and makes it non-blocking and
    close-on-exec). Its access mode must be the client's."""
    impl: OpenFDImpl
    host_fd: Optional[int] = None

class MountResult(NamedTuple):
    """What mount() returns: the root, and optionally a host FD of it."""
    root: ControlFDImpl
    host_fd: Optional[int] = None

class CreateResult(NamedTuple):
    """What open_create() returns."""
    impl: ControlFDImpl
    stat: Statx
    open: OpenFDImpl
    host_fd: Optional[int] = None

class BindResult(NamedTuple):
    """What bind_at() returns; the bound socket's host FD is required."""
    impl: ControlFDImpl
    stat: Statx
    bound: BoundSocketFDImpl
    host_fd: int

class SetStatResult(NamedTuple):
    """A partial set_stat() failure: the mask bits not applied, and why."""
    failed_mask: int
    errno: int

class ConnectionOpts:
    """Server-side settings of one connection (never sent on the wire)."""
    max_message_size: int
    readonly: bool
    set_attr_on_deleted: bool
    allocate_on_deleted: bool
    open_on_deleted: bool
    supported_messages: Optional[Sequence[int]]
    max_fds: int
    def __init__(self, *, max_message_size: int = ..., readonly: bool = ...,
                 set_attr_on_deleted: bool = ..., allocate_on_deleted: bool = ...,
                 open_on_deleted: bool = ..., supported_messages: Optional[Sequence[int]] = ...,
                 max_fds: Optional[int] = ...) -> None: ...

class ControlFDImpl:
    """A file of the backend, reached by a walk (gVisor's ControlFDImpl).
    One instance per client FD; close() is called once when the server drops
    it."""

    def stat(self) -> Statx:
        """FStat. Returns the file's attributes (mask includes STATX_TYPE).
        Lock: read. The default asks the C fast path c_stat (Cython)."""
    def walk(self, name: bytes) -> Optional[Child]:
        """Walk, WalkStat. Returns the child `name` of this directory, or
        raises OSError(ENOENT) when it does not exist (returning None is
        also accepted). Other errnos end the walk with that error
        (EACCES: not searchable). Lock: read, on this directory."""
    def open(self, flags: int) -> Union[OpenFDImpl, OpenResult, Tuple[OpenFDImpl, Optional[int]]]:
        """OpenAt. `flags` is O_RDONLY, O_WRONLY or O_RDWR, maybe with
        O_TRUNC (the server already refused writing a directory: EISDIR).
        Returns an OpenResult (preferred) or the OpenFDImpl alone. Errors:
        EACCES, ENXIO (a socket or FIFO that cannot be opened)... Lock: read."""
    def set_stat(self, mask: int, mode: int, uid: int, gid: int, size: int,
                 atime: Tuple[int, int], mtime: Tuple[int, int]
                 ) -> Optional[Union[SetStatResult, Tuple[int, int]]]:
        """SetStat. Changes the attributes whose STATX_MODE, STATX_UID,
        STATX_GID, STATX_SIZE, STATX_ATIME, STATX_MTIME bits are in `mask`;
        times are (sec, nsec), nsec maybe UTIME_NOW or UTIME_OMIT. Returns
        None when all applied, SetStatResult(failed_mask, errno) when some
        were not; raising OSError fails them all with its errno.
        Errors: EPERM, EISDIR (size of a directory), EINVAL. Lock: write."""
    def open_create(self, mode: int, uid: int, gid: int, name: bytes, flags: int
                    ) -> Union[CreateResult, Tuple[ControlFDImpl, Statx, OpenFDImpl, Optional[int]]]:
        """OpenCreateAt. Creates the regular file `name` in this directory
        (permission bits `mode`, owner uid/gid or NO_UID/NO_GID) and opens
        it with `flags` (access mode and O_TRUNC). Errors: EEXIST, ENOSPC,
        EACCES. Lock: write, on this directory."""
    def mkdir(self, mode: int, uid: int, gid: int, name: bytes) -> Union[Child, Tuple[ControlFDImpl, Statx]]:
        """MkdirAt. Creates the directory `name`. Errors: EEXIST, ENOSPC,
        EMLINK. Lock: write, on this directory."""
    def mknod(self, mode: int, uid: int, gid: int, name: bytes, minor: int, major: int
              ) -> Union[Child, Tuple[ControlFDImpl, Statx]]:
        """MknodAt. Creates a node of type `mode & S_IFMT` (regular, FIFO,
        socket, device). Errors: EEXIST, EPERM (a type not supported).
        Lock: write, on this directory."""
    def symlink(self, name: bytes, target: bytes, uid: int, gid: int
                ) -> Union[Child, Tuple[ControlFDImpl, Statx]]:
        """SymlinkAt. Creates the symlink `name` -> `target` (no NUL in it).
        Errors: EEXIST. Lock: write, on this directory."""
    def link(self, dir: ControlFDImpl, name: bytes) -> Union[Child, Tuple[ControlFDImpl, Statx]]:
        """LinkAt. Makes `dir`/`name` a hard link to this file (never a
        directory: the server answered EPERM). Returns the new name's file,
        which has this file's identity. Errors: EEXIST, EMLINK, EXDEV.
        Lock: write on `dir`, read on this file."""
    def statfs(self) -> StatFS:
        """FStatFS. Lock: read."""
    def readlink(self) -> bytes:
        """ReadLinkAt (this file is a symlink). Lock: read."""
    def connect(self, sock_type: int) -> int:
        """Connect. Returns a host FD connected to this socket file (donated).
        Errors: ECONNREFUSED, EPROTOTYPE. Lock: read."""
    def connect_with_creds(self, sock_type: int, uid: int, gid: int) -> int:
        """ConnectWithCreds; the default calls connect(). Lock: read."""
    def bind_at(self, sock_type: int, name: bytes, mode: int, uid: int, gid: int
                ) -> Union[BindResult, Tuple[ControlFDImpl, Statx, BoundSocketFDImpl, int]]:
        """BindAt. Creates and binds the socket file `name`. Errors:
        EEXIST. Lock: write, on this directory."""
    def unlink(self, name: bytes, flags: int) -> None:
        """UnlinkAt. Removes `name`; with AT_REMOVEDIR in `flags`, an empty
        directory. Errors: ENOENT, ENOTDIR, EISDIR, ENOTEMPTY.
        Lock: write, on this directory and on the child."""
    def rename_at(self, old_name: bytes, new_dir: ControlFDImpl, new_name: bytes,
                  flags: int) -> None:
        """RenameAt, RenameAt2. Renames this directory's `old_name` to
        `new_dir`/`new_name`; `flags` as renameat2(2) (RENAME_NOREPLACE,
        RENAME_EXCHANGE). Errors: ENOENT, EEXIST, ENOTEMPTY, EISDIR,
        ENOTDIR, EXDEV, EINVAL. Lock: global."""
    def get_xattr(self, name: bytes, size: int) -> bytes:
        """FGetXattr. Returns the value (size 0: whatever its length; the
        server answers ERANGE for a value longer than a non-zero size).
        Errors: ENODATA (no such attribute), EOPNOTSUPP. Lock: read."""
    def set_xattr(self, name: bytes, value: bytes, flags: int) -> None:
        """FSetXattr. `flags` XATTR_CREATE (EEXIST if present) or
        XATTR_REPLACE (ENODATA if absent). Lock: write."""
    def list_xattr(self, size: int) -> List[bytes]:
        """FListXattr. Returns the names. Lock: read."""
    def remove_xattr(self, name: bytes) -> None:
        """FRemoveXattr. Errors: ENODATA. Lock: write."""
    def close(self) -> None:
        """Called once, when the server drops its last reference. No lock."""

class OpenFDImpl:
    """An open file of the backend (gVisor's OpenFDImpl)."""

    def stat(self) -> Statx:
        """FStat on the open file. Lock: read."""
    def read(self, offset: int, count: int) -> bytes:
        """PRead. At most `count` bytes at `offset`; b"" at the end.
        Lock: read (reads of one file may run at once)."""
    def write(self, offset: int, data: bytes) -> int:
        """PWrite. Writes `data` at `offset`; returns the count written
        (0..len(data)). Errors: ENOSPC, EFBIG. Lock: write."""
    def readdir(self) -> Iterable[Dirent]:
        """Lists a directory (no "." or ".."), for the default getdents64(),
        which pages it: the preferred way to serve Getdents64. Called when
        the client starts (or restarts) reading. Lock: read."""
    def getdents64(self, count: int, seek0: bool) -> List[Dirent]:
        """Getdents64. The next entries, at most `count` bytes of them on the
        wire (see page_dirents); from the start when `seek0`; [] at the end.
        The default pages readdir(). Lock: read."""
    def sync(self) -> None:
        """FSync. Default: nothing. Lock: read."""
    def allocate(self, mode: int, offset: int, length: int) -> None:
        """FAllocate, as fallocate(2). Errors: EOPNOTSUPP (a mode not
        supported), ENOSPC. Lock: write."""
    def flush(self) -> None:
        """Flush (on the client's close). Default: nothing. Lock: read."""
    def close(self) -> None:
        """Called once, when the server drops its last reference. No lock."""

class BoundSocketFDImpl:
    """A bound host socket (gVisor's BoundSocketFDImpl)."""

    def listen(self, backlog: int) -> None:
        """Listen. Lock: read."""
    def accept(self) -> Tuple[int, bytes]:
        """Accept. Returns (host FD of the new connection, peer address).
        Lock: read."""
    def close(self) -> None: ...

class ConnectionImpl:
    """One mount's backend."""

    def mount(self) -> Union[ControlFDImpl, MountResult, Tuple[ControlFDImpl, Optional[int]]]:
        """Mount. Returns the root. Lock: read."""
    def supported_messages(self) -> Sequence[int]:
        """The MIDs served (the server adds Mount and Channel). Default:
        implemented_messages(self)."""

def implemented_messages(conn: ConnectionImpl) -> List[int]:
    """The MIDs whose methods the ControlFDImpl/OpenFDImpl/BoundSocketFDImpl
    subclasses in the module of `conn`'s class override."""
def page_dirents(impl: OpenFDImpl, count: int, seek0: bool) -> List[Dirent]:
    """getdents64() from readdir(), as the default does."""
def reopen_fd(fd: int, flags: int) -> int:
    """A new file description of host FD `fd` with `flags` (an access mode),
    opened through the gofer's FD directory (works inside its confined
    root). For donating a file with the client's access mode."""
