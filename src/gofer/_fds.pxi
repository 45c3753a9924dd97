# Included into _server.pyx. The FDIDs' objects, their reference counts, and
# the references a request holds until its response is out.

cdef class FD:
    cdef Py_ssize_t refs
    # Its entry in the connection's table (native/fdtable.h): its FDID, what
    # the GIL-free fast path reads, and that path's count of uses. Its own,
    # or one the fast path made and the connection adopted (Connection.adopt).
    cdef gofer_fd* c

    def __cinit__(self):
        self.c = <gofer_fd*>calloc(1, sizeof(gofer_fd))
        if self.c == NULL:
            raise MemoryError()
        self.c.owner = <void*>self
        self.c.host_fd = -1

    def __dealloc__(self):
        free(self.c)


cdef class ControlFD(FD):
    cdef gofer_node* node            # with a reference (native/nodes.h)
    cdef ControlFDImpl impl
    cdef uint16_t ftype              # S_IFMT bits, fixed at creation

    cdef inline bint is_dir(self):
        return self.ftype == S_IFDIR


cdef class OpenFD(FD):
    cdef ControlFD control
    cdef OpenFDImpl impl


cdef class BoundSocketFD(FD):
    cdef ControlFD control
    cdef BoundSocketFDImpl impl


cdef void fd_decref(FD fd) noexcept:
    """Drops one reference; the last one closes the implementation."""
    fd.refs -= 1
    if fd.refs > 0:
        return
    try:
        if isinstance(fd, ControlFD):
            (<ControlFD>fd).impl.c_close()
            gofer_node_decref((<ControlFD>fd).node)
        elif isinstance(fd, OpenFD):
            (<OpenFD>fd).impl.c_close()
            fd_decref((<OpenFD>fd).control)
        else:
            (<BoundSocketFD>fd).impl.close()
            fd_decref((<BoundSocketFD>fd).control)
    except Exception:
        log.exception("closing FD %d", fd.c.id)


cdef void fd_release(gofer_fd* c) noexcept:
    """Releases an FD after the last use of its table entry: the table's
    reference and the Python object the table kept; or, for an entry the
    fast path made that was never adopted, its host FD, its node (a control
    FD's) and its use of the FD it was made from."""
    cdef FD fd
    cdef gofer_fd* control
    if c.owner == NULL:
        control = gofer_fast_free_unowned(c)
        if gofer_fd_unuse(control):
            fd_release(control)
        return
    fd = <FD>c.owner
    fd_decref(fd)
    Py_DECREF(fd)


cdef void fd_release_nogil(gofer_fd* c) noexcept nogil:
    # A fast-path request outlived its FD's Close: rare, and worth the GIL.
    with gil:
        fd_release(c)


cdef int hold(Out* o, FD fd) except -1:
    if o.nheld == 4:
        raise AssertionError("a request holds at most 4 FDs")
    fd.refs += 1
    Py_INCREF(fd)
    o.held[o.nheld] = <PyObject*>fd
    o.nheld += 1
    return 0


cdef void release_held(Out* o) noexcept:
    cdef FD fd
    while o.nheld > 0:
        o.nheld -= 1
        fd = <FD>o.held[o.nheld]
        fd_decref(fd)
        Py_DECREF(fd)
