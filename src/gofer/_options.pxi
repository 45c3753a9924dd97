# Included into _server.pyx. A connection's server-side settings: its
# options, FD cap, and which messages a readonly connection refuses.

# The RPCs a readonly connection refuses with EROFS before decoding them
# (OpenAt decides itself), by MID; Connection.handle is the one place that
# reads it.
cdef bint MUTATING[MAX_MID + 1]
for _mid in (_wire.SETSTAT, _wire.OPEN_CREATE_AT, _wire.PWRITE, _wire.MKDIR_AT, _wire.MKNOD_AT,
             _wire.SYMLINK_AT, _wire.LINK_AT, _wire.FALLOCATE, _wire.UNLINK_AT, _wire.RENAME_AT,
             _wire.RENAME_AT2, _wire.FSETXATTR, _wire.FREMOVEXATTR, _wire.BIND_AT):
    MUTATING[_mid] = True

TRANSPORT_MIDS = frozenset([_wire.CHANNEL])

# FDs the process keeps for itself whatever its clients hold: stdio, the
# listener, the FD directory, logs, a new client's socket and channels, and
# the FDs a request donates while it is being answered.
FD_RESERVE = 64


def default_max_fds():
    """The FD cap of a connection whose options name none: half of what
    RLIMIT_NOFILE's soft limit leaves beyond FD_RESERVE, read now.

    Each FDID of the stock backend holds at most one host FD, so a client
    at its cap leaves the other half, and the reserve, to the rest of the
    process: the server can still accept and serve another client. Half
    rather than less because runsc serves a whole container root through
    one connection. Several clients can still fill the process together;
    `gofer serve` then waits for FDs to come back (Service.serve_listener)."""
    soft = nofile_limits()[0]
    if soft == RLIM_INFINITY:
        soft = 1 << 20                  # the kernel's default nr_open
    return max(16, (soft - FD_RESERVE) // 2)


# RLIMIT_NOFILE through getrlimit(2)/setrlimit(2) themselves: the resource
# module would be one more import on every start.

def nofile_limits():
    """(soft, hard) RLIMIT_NOFILE of this process."""
    cdef rlimit lim
    if getrlimit(RLIMIT_NOFILE, &lim) < 0:
        raise OSError(errno, os.strerror(errno))
    return lim.rlim_cur, lim.rlim_max


def set_nofile_limits(rlim_t soft, rlim_t hard):
    """Sets RLIMIT_NOFILE; OSError as setrlimit(2) fails."""
    cdef rlimit lim
    lim.rlim_cur, lim.rlim_max = soft, hard
    if setrlimit(RLIMIT_NOFILE, &lim) < 0:
        raise OSError(errno, os.strerror(errno))


cdef class ConnectionOpts:
    """Server-side settings of one connection (never sent on the wire).

    `max_fds` caps the FDIDs the connection may hold at once (Walk, OpenAt
    and the rest answer EMFILE beyond it), so that one client cannot take
    every FD of the process from the others; None means default_max_fds().
    """

    def __init__(self, *, max_message_size=DEFAULT_MAX_MESSAGE_SIZE, readonly=False,
                 set_attr_on_deleted=False,
                 allocate_on_deleted=False, open_on_deleted=False,
                 supported_messages=None, max_fds=None):
        if max_message_size < 4096:
            raise ValueError("max_message_size must be at least 4096")
        if max_fds is None:
            max_fds = default_max_fds()
        if max_fds < 1:
            raise ValueError("max_fds must be positive")
        self.max_fds = max_fds
        self.max_message_size = max_message_size
        self.readonly = readonly
        self.set_attr_on_deleted = set_attr_on_deleted
        self.allocate_on_deleted = allocate_on_deleted
        self.open_on_deleted = open_on_deleted
        self.supported_messages = supported_messages
