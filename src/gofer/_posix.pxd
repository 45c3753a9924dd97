# The host (POSIX/Linux) declarations the server core uses, declared once:
# pthread rwlocks, sockets with SCM_RIGHTS, fcntl, file types, errno.
cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_rwlock_t:
        pass
    int pthread_rwlock_init(pthread_rwlock_t*, void*)
    int pthread_rwlock_destroy(pthread_rwlock_t*)
    int pthread_rwlock_rdlock(pthread_rwlock_t*)
    int pthread_rwlock_wrlock(pthread_rwlock_t*)
    int pthread_rwlock_tryrdlock(pthread_rwlock_t*)
    int pthread_rwlock_trywrlock(pthread_rwlock_t*)
    int pthread_rwlock_unlock(pthread_rwlock_t*)

cdef extern from "<sys/socket.h>" nogil:
    struct iovec:
        void* iov_base
        size_t iov_len
    struct msghdr:
        void* msg_name
        unsigned msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    ssize_t recvmsg(int, msghdr*, int)
    ssize_t sendmsg(int, const msghdr*, int)
    cmsghdr* CMSG_FIRSTHDR(msghdr*)
    cmsghdr* CMSG_NXTHDR(msghdr*, cmsghdr*)
    unsigned char* CMSG_DATA(cmsghdr*)
    size_t CMSG_LEN(size_t)
    size_t CMSG_SPACE(size_t)
    int SOL_SOCKET, SCM_RIGHTS, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC, MSG_DONTWAIT
    int shutdown(int, int)
    int SHUT_RDWR
    ctypedef unsigned socklen_t
    struct ucred:
        int pid
        unsigned uid
        unsigned gid
    int accept4(int, void*, socklen_t*, int)
    int getsockopt(int, int, int, void*, socklen_t*)
    int setsockopt(int, int, int, const void*, socklen_t)
    int SO_PEERCRED, SO_SNDBUF, SOCK_CLOEXEC

cdef extern from "<fcntl.h>" nogil:
    int fcntl(int, int, ...)
    int F_GETFL, F_SETFL, O_NONBLOCK, O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC
    int F_GETFD, F_SETFD, FD_CLOEXEC

cdef extern from "<sys/stat.h>" nogil:
    int S_IFMT, S_IFDIR, S_IFLNK, S_IFSOCK, S_IFREG

cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK
