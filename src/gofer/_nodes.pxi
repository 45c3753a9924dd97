# Included into _server.pyx. The node tree all connections of a Server
# share lives in C (native/nodes.h), so that the GIL-free path can walk it.

cdef class Server:
    """State shared by all connections of one gofer: the node tree and the
    rename lock. Every mount of a sandbox is a connection on one Server."""

    def __cinit__(self):
        self.tree = gofer_tree_new()
        if self.tree == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.tree != NULL:
            gofer_node_decref(self.tree.root)   # the tree goes with its last node

    def tree_paths(self):
        """The path of every node in the tree (for tests and debugging)."""
        cdef size_t n
        cdef char* buf = gofer_tree_paths(self.tree, &n)
        if buf == NULL:
            raise MemoryError()
        try:
            return buf[:n - 1].split(b"\0")    # the root's "/" at least
        finally:
            free(buf)


cdef gofer_node* node_child(gofer_node* parent, bytes name) except NULL:
    """The child node `name` of `parent`, made if new, with a reference taken."""
    cdef gofer_node* c = gofer_node_child(parent, name, len(name))
    if c == NULL:
        raise MemoryError()
    return c
