"""What backend and extension authors build on: the server core's base
classes and the LISAFS value types."""
from gofer._server import (  # noqa: F401
    BoundSocketFDImpl, Connection, ConnectionImpl, ConnectionOpts, ControlFDImpl,
    OpenFDImpl, Server)
from gofer._wire import Dirent, Inode, ProtocolError, StatFS, Statx  # noqa: F401
from gofer.fsgofer import reopen as reopen_fd  # noqa: F401
