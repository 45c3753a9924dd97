# Declarations of the native core in native/ (C): flipcall endpoint,
# packet-window allocator, fdchannel, the spin policy, the FD table, the
# node tree and the GIL-free fast path. See the headers for the contracts.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from gofer._posix cimport pthread_rwlock_t

cdef extern from "flipcall.h" nogil:
    struct gofer_pwa:
        int fd
    struct gofer_fc_ep:
        pass
    int gofer_pwa_init(gofer_pwa* a)
    int gofer_pwa_alloc(gofer_pwa* a, uint64_t size, int64_t* offset, uint64_t* length)
    void gofer_pwa_destroy(gofer_pwa* a)
    int gofer_fc_init(gofer_fc_ep* ep, int fd, int64_t offset, uint64_t length)
    int gofer_fc_client_init(gofer_fc_ep* ep, int fd, int64_t offset, uint64_t length)
    uint8_t* gofer_fc_data(const gofer_fc_ep* ep)
    uint32_t gofer_fc_data_cap(const gofer_fc_ep* ep)
    int gofer_fc_recv_first(gofer_fc_ep* ep, uint32_t* n)
    int gofer_fc_send_recv(gofer_fc_ep* ep, uint32_t n, uint32_t* m)
    int gofer_fc_client_connect(gofer_fc_ep* ep)
    int gofer_fc_client_send_recv(gofer_fc_ep* ep, uint32_t n, uint32_t* m)
    void gofer_fc_shutdown(gofer_fc_ep* ep)
    void gofer_fc_destroy(gofer_fc_ep* ep)
    void gofer_fc_set_spin_ns(gofer_fc_ep* ep, uint64_t ns)

cdef extern from "spin.h" nogil:
    struct gofer_spin:
        uint64_t max_ns
    uint64_t gofer_spin_default_ns()
    void gofer_spin_init(gofer_spin* s, uint64_t max_ns)
    int gofer_spin_poll(gofer_spin* s, int (*ready)(void* arg) noexcept nogil, void* arg)
    uint64_t gofer_now_ns()

cdef extern from "fdchannel.h" nogil:
    int gofer_fdchan_pair(int fds[2])
    int gofer_fdchan_send(int sock, int fd)
    int gofer_fdchan_recv(int sock, int* fd, int nonblock)

cdef extern from "sigsys.h" nogil:
    int gofer_sigsys_set_name(int nr, const char* name)
    int gofer_sigsys_install()
    unsigned long gofer_sigsys_count()

cdef extern from "nodes.h" nogil:
    ctypedef struct gofer_node:
        pthread_rwlock_t lock
    ctypedef struct gofer_tree:
        pthread_rwlock_t rename_lock
        gofer_node* root
    gofer_tree* gofer_tree_new()
    char* gofer_tree_paths(gofer_tree* t, size_t* len)
    gofer_node* gofer_node_child(gofer_node* parent, const char* name, size_t len)
    gofer_node* gofer_node_find(gofer_node* parent, const char* name, size_t len)
    void gofer_node_incref(gofer_node* n)
    void gofer_node_decref(gofer_node* n)
    void gofer_node_delete(gofer_node* n)
    int gofer_node_rename(gofer_node* old_parent, const char* old_name, size_t old_len,
                          gofer_node* new_parent, const char* new_name, size_t new_len,
                          int exchange)
    bint gofer_node_deleted(const gofer_node* n)

cdef extern from "fdtable.h" nogil:
    enum:
        GOFER_FD_CONTROL, GOFER_FD_OPEN, GOFER_FD_BOUND
    ctypedef struct gofer_fd:
        uint64_t id
        int host_fd
        uint8_t kind, readable, writable, is_dir
        uint16_t ftype
        gofer_node* node
        const int* reopen_dir
        const int* host_tree
        void* owner
        gofer_fd* control
        gofer_fd* next_deferred
        gofer_fd* next_adoption
    ctypedef struct gofer_fdtable:
        pass
    int gofer_fdtable_init(gofer_fdtable* t)
    void gofer_fdtable_destroy(gofer_fdtable* t)
    size_t gofer_fdtable_count(gofer_fdtable* t)
    int gofer_fdtable_add(gofer_fdtable* t, gofer_fd* f, size_t max)
    gofer_fd* gofer_fdtable_get(gofer_fdtable* t, uint64_t id)
    gofer_fd* gofer_fdtable_remove(gofer_fdtable* t, uint64_t id)
    gofer_fd** gofer_fdtable_take_all(gofer_fdtable* t, size_t* cap)
    bint gofer_fd_unuse(gofer_fd* f)
    gofer_fd* gofer_fdtable_take_deferred(gofer_fdtable* t)
    gofer_fd* gofer_fdtable_take_adoptions(gofer_fdtable* t)
    size_t gofer_fdtable_nadoptions(gofer_fdtable* t)

cdef extern from "fastpath.h" nogil:
    enum:
        GOFER_FAST_DECLINED
    ctypedef struct gofer_fast:
        gofer_fdtable* fds
        pthread_rwlock_t* rename_lock
        uint32_t max_msg
        size_t max_fds
        uint8_t readonly, open_on_deleted
        void (*release)(gofer_fd* f) noexcept nogil
    gofer_fd* gofer_fast_free_unowned(gofer_fd* f)
    int gofer_fast_handle(const gofer_fast* c, uint16_t mid, const char* req, size_t n,
                          char* out, size_t cap, size_t* outlen, int* donated)
