# cython: language_level=3, boundscheck=False, wraparound=False
"""The LISAFS server core: the shared node tree, connections and their FD
tables, the protocol rules of every handler, and the socket transport.

Storage is delegated to implementation objects (`ControlFDImpl`,
`OpenFDImpl`, ...). The core calls their `c_*` methods, which a Cython
backend overrides for speed and which by default call the snake_case Python
methods an extension overrides. Handlers return 0 or a positive errno; a
Python exception raised by an implementation becomes an errno at dispatch.

This file holds the imports and protocol constants; the code is in the files
it includes at the end, one per concept (table in docs/design.md).
"""
# logging's names the server uses, without importing logging (see gofer._log)
from gofer import _log as logging
import os
import errno as E

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.errno cimport errno, EINTR, EAGAIN, ENOMEM
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memchr, memset
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED
from posix.resource cimport getrlimit, setrlimit, rlimit, rlim_t, RLIMIT_NOFILE, RLIM_INFINITY
from posix.unistd cimport close, dup

from gofer._wire cimport (
    Reader, Writer, Statx, lisafs_statx, lisafs_inode, statx_from_c,
    r_u16, r_u32, r_u64, r_str, r_bytes, r_need,
    w_reserve, w_u8, w_u16, w_u32, w_u64, w_str, w_statx, w_inode, w_dirent,
    lisafs_ld16, lisafs_ld32, lisafs_ld64, lisafs_st16, lisafs_st32, lisafs_st64)
from gofer._native cimport *
from gofer._posix cimport *
from gofer import _wire
from gofer._wire import MessageTooLarge, ProtocolError

log = logging.getLogger("gofer")

cdef enum:
    SETSTAT_MASK = 0x27a          # MODE|UID|GID|SIZE|ATIME|MTIME
    RENAME_EXCHANGE = 2
    MAX_MID = 33
    STATX_TYPE = 0x1
    STATX_SIZE = 0x200
    OPEN_FLAGS_MASK = 0x203          # O_ACCMODE | O_TRUNC: all OpenAt honours
    DEFAULT_MAX_MESSAGE_SIZE = 2093056   # gVisor's: 2 MiB huge page - 4 KiB

# The MIDs the dispatch compares against on every request, as C constants.
cdef uint16_t MID_MOUNT = _wire.MOUNT
cdef uint16_t MID_CHANNEL = _wire.CHANNEL
cdef uint16_t MID_PWRITE = _wire.PWRITE

include "_threads.pxi"
include "_locks.pxi"
include "_options.pxi"
include "_backend.pxi"
include "_nodes.pxi"
include "_fds.pxi"
include "_connection.pxi"
include "_handlers.pxi"
include "_socket.pxi"
include "_channel.pxi"
