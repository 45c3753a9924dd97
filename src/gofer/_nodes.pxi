# Included into _server.pyx. The node tree all connections of a Server share.

cdef class Node:
    """One name in the server's tree, shared by every connection. It lives
    while a ControlFD or a child refers to it."""

    def __cinit__(self):
        pthread_rwlock_init(&self.op_lock, NULL)
        self.children = {}

    def __dealloc__(self):
        pthread_rwlock_destroy(&self.op_lock)

    def path(self):
        parts = []
        cdef Node n = self
        while n.parent is not None:
            parts.append(n.name)
            n = n.parent
        return b"/" + b"/".join(reversed(parts))


cdef Node node_child(Node parent, bytes name):
    """The child node `name` of `parent`, made if new, with a reference taken."""
    cdef Node c = parent.children.get(name)
    if c is None:
        c = Node.__new__(Node)
        c.name = name
        c.parent = parent
        parent.children[name] = c
        parent.refs += 1
    c.refs += 1
    return c


cdef void node_decref(Node n) noexcept:
    cdef Node p
    while n is not None:
        n.refs -= 1
        if n.refs > 0 or n.parent is None:
            return
        p = n.parent
        if p.children.get(n.name) is n:
            del p.children[n.name]
        n.parent = None
        n = p


cdef void node_detach(Node n) noexcept:
    """Takes n out of its parent's children (it lives on while referenced)."""
    cdef Node p = n.parent
    if p is None:
        return
    if p.children.get(n.name) is n:
        del p.children[n.name]
    n.parent = None
    node_decref(p)


cdef void node_attach(Node n, Node parent, bytes name) noexcept:
    n.name = name
    n.parent = parent
    parent.children[name] = n
    parent.refs += 1


cdef void node_mark_deleted(Node n) noexcept:
    n.deleted = True
    for c in n.children.values():
        node_mark_deleted(<Node>c)


cdef class Server:
    """State shared by all connections of one gofer: the node tree and the
    rename lock. Every mount of a sandbox is a connection on one Server."""

    def __cinit__(self):
        pthread_rwlock_init(&self.rename_lock, NULL)
        self.root = Node.__new__(Node)
        self.root.name = b""
        self.root.refs = 1          # the server's own reference

    def __dealloc__(self):
        pthread_rwlock_destroy(&self.rename_lock)

    def tree_paths(self):
        """The path of every node in the tree (for tests and debugging)."""
        out, stack = [], [self.root]
        while stack:
            n = <Node>stack.pop()
            out.append(n.path())
            stack.extend(n.children.values())
        return out
