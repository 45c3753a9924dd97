# Included into _server.pyx. gVisor's concurrency levels (safelyRead/Write/
# Global in pkg/lisafs/fd.go), the one way a handler takes its locks:
#
#     lock(conn.server, fd.node, WRITE)
#     try:
#         ...
#     finally:
#         unlock(conn.server, fd.node, WRITE)
#
# Node and rename locks are pthread rwlocks. They are never waited for while
# holding the GIL: a holder may have released the GIL for host I/O.

cdef enum LockLevel:
    READ = 1        # rename lock shared + node lock shared
    WRITE = 2       # rename lock shared + node lock exclusive
    GLOBAL = 3      # rename lock exclusive


cdef inline void _rdlock(pthread_rwlock_t* l) noexcept:
    if pthread_rwlock_tryrdlock(l) != 0:
        with nogil:
            pthread_rwlock_rdlock(l)

cdef inline void _wrlock(pthread_rwlock_t* l) noexcept:
    if pthread_rwlock_trywrlock(l) != 0:
        with nogil:
            pthread_rwlock_wrlock(l)


cdef inline void lock(Server server, gofer_node* node, LockLevel level) noexcept:
    """Takes `level`: the server's rename lock (exclusive for GLOBAL) unless
    `server` is None (the caller already holds it), then `node`'s lock
    (exclusive for WRITE) unless `node` is NULL or the level is GLOBAL."""
    if server is not None:
        if level == GLOBAL:
            _wrlock(&server.tree.rename_lock)
        else:
            _rdlock(&server.tree.rename_lock)
    if node != NULL and level != GLOBAL:
        if level == WRITE:
            _wrlock(&node.lock)
        else:
            _rdlock(&node.lock)


cdef inline void unlock(Server server, gofer_node* node, LockLevel level) noexcept:
    """Releases what lock() took with the same arguments."""
    if node != NULL and level != GLOBAL:
        pthread_rwlock_unlock(&node.lock)
    if server is not None:
        pthread_rwlock_unlock(&server.tree.rename_lock)
