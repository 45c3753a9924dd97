# The server core's classes, declared for cimport by backends written in
# Cython (the stock host backend, and extensions that want C-speed paths).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from cpython.object cimport PyObject
from gofer._wire cimport Writer, Reader, lisafs_statx, Statx
from gofer._native cimport gofer_tree


# What a handler hands back besides its payload: host FDs to donate.
cdef struct Out:
    Writer w
    int fds[2]
    int nfds
    # FDs the request uses, referenced until the response is out: a Close on
    # another thread cannot close their host FDs mid-operation.
    PyObject* held[4]
    int nheld


cdef class ConnectionOpts:
    cdef public uint32_t max_message_size
    cdef public bint readonly
    cdef public bint set_attr_on_deleted
    cdef public bint allocate_on_deleted
    cdef public bint open_on_deleted
    cdef public object supported_messages
    cdef public Py_ssize_t max_fds


cdef class ControlFDImpl:
    # Fast paths the core calls; the defaults call the snake_case Python
    # methods, so a Python subclass only overrides those.
    cdef int c_stat(self, lisafs_statx* out) except -1
    cdef object c_walk(self, bytes name, lisafs_statx* out)
    cdef object c_open(self, uint32_t flags, int* host_fd)
    cdef int c_close(self) except -1
    cdef int c_host_fd(self) noexcept
    cdef const int* c_reopen_dir(self) noexcept
    cdef object c_adopt_open(self, int host_fd)
    cdef const int* c_host_tree(self) noexcept
    cdef object c_adopt_walk(self, int host_fd, uint16_t ftype)


cdef class OpenFDImpl:
    cdef int c_stat(self, lisafs_statx* out) except -1
    cdef Py_ssize_t c_read(self, char* buf, Py_ssize_t count, int64_t offset) except -1
    cdef Py_ssize_t c_write(self, const char* buf, Py_ssize_t count, int64_t offset) except -1
    cdef int c_getdents64(self, Writer* w, int32_t count, bint seek0) except -1
    cdef int c_close(self) except -1
    cdef int c_host_fd(self) noexcept


cdef class BoundSocketFDImpl:
    pass


cdef class ConnectionImpl:
    pass


cdef class Server:
    cdef gofer_tree* tree           # native/nodes.h, with the rename lock
    cdef object __weakref__
