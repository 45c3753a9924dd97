# Declarations of the native core in native/ (C): flipcall endpoint,
# packet-window allocator, fdchannel and the spin policy. See the headers for the contracts.
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

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
