"""Types of gofer.lisafs, for type checkers. The contracts (what each
method receives and returns, which errno means what, the lock the server
holds) are the docstrings of gofer.lisafs itself: help(gofer.lisafs) and
e.g. help(gofer.lisafs.ControlFDImpl.walk)."""
import enum
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

class MID(enum.IntEnum):
    """LISAFS message IDs, named as gVisor names them. (At run time an int
    subclass that behaves as this IntEnum, made without the enum module.)"""
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
    impl: ControlFDImpl
    stat: Statx

class OpenResult(NamedTuple):
    impl: OpenFDImpl
    host_fd: Optional[int] = None

class MountResult(NamedTuple):
    root: ControlFDImpl
    host_fd: Optional[int] = None

class CreateResult(NamedTuple):
    impl: ControlFDImpl
    stat: Statx
    open: OpenFDImpl
    host_fd: Optional[int] = None

class BindResult(NamedTuple):
    impl: ControlFDImpl
    stat: Statx
    bound: BoundSocketFDImpl
    host_fd: int

class SetStatResult(NamedTuple):
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
    def stat(self) -> Statx: ...
    def walk(self, name: bytes) -> Optional[Child]: ...
    def open(self, flags: int) -> Union[OpenFDImpl, OpenResult, Tuple[OpenFDImpl, Optional[int]]]: ...
    def set_stat(self, mask: int, mode: int, uid: int, gid: int, size: int,
                 atime: Tuple[int, int], mtime: Tuple[int, int]
                 ) -> Optional[Union[SetStatResult, Tuple[int, int]]]: ...
    def open_create(self, mode: int, uid: int, gid: int, name: bytes, flags: int
                    ) -> Union[CreateResult, Tuple[ControlFDImpl, Statx, OpenFDImpl, Optional[int]]]: ...
    def mkdir(self, mode: int, uid: int, gid: int, name: bytes) -> Union[Child, Tuple[ControlFDImpl, Statx]]: ...
    def mknod(self, mode: int, uid: int, gid: int, name: bytes, minor: int, major: int
              ) -> Union[Child, Tuple[ControlFDImpl, Statx]]: ...
    def symlink(self, name: bytes, target: bytes, uid: int, gid: int
                ) -> Union[Child, Tuple[ControlFDImpl, Statx]]: ...
    def link(self, dir: ControlFDImpl, name: bytes) -> Union[Child, Tuple[ControlFDImpl, Statx]]: ...
    def statfs(self) -> StatFS: ...
    def readlink(self) -> bytes: ...
    def connect(self, sock_type: int) -> int: ...
    def connect_with_creds(self, sock_type: int, uid: int, gid: int) -> int: ...
    def bind_at(self, sock_type: int, name: bytes, mode: int, uid: int, gid: int
                ) -> Union[BindResult, Tuple[ControlFDImpl, Statx, BoundSocketFDImpl, int]]: ...
    def unlink(self, name: bytes, flags: int) -> None: ...
    def rename_at(self, old_name: bytes, new_dir: ControlFDImpl, new_name: bytes,
                  flags: int) -> None: ...
    def get_xattr(self, name: bytes, size: int) -> bytes: ...
    def set_xattr(self, name: bytes, value: bytes, flags: int) -> None: ...
    def list_xattr(self, size: int) -> List[bytes]: ...
    def remove_xattr(self, name: bytes) -> None: ...
    def close(self) -> None: ...

class OpenFDImpl:
    def stat(self) -> Statx: ...
    def read(self, offset: int, count: int) -> bytes: ...
    def write(self, offset: int, data: bytes) -> int: ...
    def readdir(self) -> Iterable[Dirent]: ...
    def getdents64(self, count: int, seek0: bool) -> List[Dirent]: ...
    def sync(self) -> None: ...
    def allocate(self, mode: int, offset: int, length: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

class BoundSocketFDImpl:
    def listen(self, backlog: int) -> None: ...
    def accept(self) -> Tuple[int, bytes]: ...
    def close(self) -> None: ...

class ConnectionImpl:
    def mount(self) -> Union[ControlFDImpl, MountResult, Tuple[ControlFDImpl, Optional[int]]]: ...
    def supported_messages(self) -> Sequence[int]: ...

def implemented_messages(conn: ConnectionImpl) -> List[int]: ...
def page_dirents(impl: OpenFDImpl, count: int, seek0: bool) -> List[Dirent]: ...
def reopen_fd(fd: int, flags: int) -> int: ...
