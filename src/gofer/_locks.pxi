# Included into _server.pyx. Node and rename locks and the concurrency
# levels of gVisor's handlers.

# Node and rename locks are pthread rwlocks. They are never waited for while
# holding the GIL: a holder may have released the GIL for host I/O.

cdef inline void rlock(pthread_rwlock_t* l) noexcept:
    if pthread_rwlock_tryrdlock(l) != 0:
        with nogil:
            pthread_rwlock_rdlock(l)

cdef inline void wlock(pthread_rwlock_t* l) noexcept:
    if pthread_rwlock_trywrlock(l) != 0:
        with nogil:
            pthread_rwlock_wrlock(l)

cdef inline void unlock(pthread_rwlock_t* l) noexcept:
    pthread_rwlock_unlock(l)


cdef enum LockLevel:
    READ = 1        # rename lock shared + node lock shared
    WRITE = 2       # rename lock shared + node lock exclusive
    GLOBAL = 3      # rename lock exclusive


cdef class Guard:
    """`with Guard(server, node, level):` holds gVisor's concurrency level for
    a cold handler. `server` None skips the rename lock (already held)."""
    cdef Server server
    cdef Node node
    cdef int level

    def __cinit__(self, Server server, Node node, int level):
        self.server = server
        self.node = node
        self.level = level

    def __enter__(self):
        if self.server is not None:
            if self.level == GLOBAL:
                wlock(&self.server.rename_lock)
            else:
                rlock(&self.server.rename_lock)
        if self.node is not None and self.level != GLOBAL:
            if self.level == WRITE:
                wlock(&self.node.op_lock)
            else:
                rlock(&self.node.op_lock)

    def __exit__(self, *exc):
        if self.node is not None and self.level != GLOBAL:
            unlock(&self.node.op_lock)
        if self.server is not None:
            unlock(&self.server.rename_lock)
        return False
