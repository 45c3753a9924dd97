/* flipcall: gVisor's shared-memory RPC channel, wire-compatible with
 * gvisor.dev/gvisor/pkg/flipcall (byte-level spec: shared/spec/flipcall.md).
 *
 * A packet window is a page-aligned region of a sealed memfd, mapped
 * MAP_SHARED by both processes:
 *
 *   offset 0   u32 connState   the futex word: 0 client active, 1 server
 *                              active, 2 shut down (terminal)
 *   offset 4   u32 dataLen     datagram length, native endian
 *   offset 8   8 reserved bytes
 *   offset 16  datagram        dataCap = window length - 16 bytes
 *
 * The side whose value is in connState owns the datagram; it hands control
 * over with CAS(mine -> peer's) followed by a non-private FUTEX_WAKE(1).
 *
 * Return codes (every int-returning function): 0 on success or a negative
 * errno; errno itself is never part of the result.
 *   -ESHUTDOWN  the channel was shut down, by gofer_fc_shutdown() on this
 *               endpoint or by the peer (connState == 2). Normal teardown.
 *   -EPROTO     the peer broke the protocol: connState outside {0,1,2} or not
 *               the expected value, dataLen > dataCap, bad JSON handshake.
 *               The channel is unusable; the caller should shut it down.
 *   -EINVAL     bad argument (window too small/large, n > dataCap, ...).
 *   -EBUSY      a second blocking call on an endpoint that is already in one
 *               (gVisor panics here; only gofer_fc_shutdown may be concurrent).
 *   other       a failed system call (mmap, futex, memfd_create, ...).
 *
 * Threading: one thread at a time may call the blocking functions of an
 * endpoint; gofer_fc_shutdown and gofer_fc_set_spin_ns may be called from any
 * thread at any time between init and destroy. The blocking functions never
 * time out: a dead peer is only noticed when someone calls gofer_fc_shutdown.
 *
 * The window is shared with an untrusted peer: a returned length is always
 * <= gofer_fc_data_cap(), but the datagram bytes may change under the reader,
 * so read each byte at most once and validate copies, not the window.
 */
#ifndef GOFER_FLIPCALL_H
#define GOFER_FLIPCALL_H

#include <stdatomic.h>
#include <stdint.h>

#include "spin.h"

#define GOFER_FC_HEADER_BYTES 16u

/* Values of connState. */
#define GOFER_FC_CLIENT_ACTIVE 0u
#define GOFER_FC_SERVER_ACTIVE 1u
#define GOFER_FC_SHUTDOWN      2u

enum gofer_fc_role { GOFER_FC_SERVER = 0, GOFER_FC_CLIENT = 1 };

/* Packet window allocator: one sealed memfd, bump-allocated, never freed. */
struct gofer_pwa {
    int fd;             /* the memfd; -1 when not initialised */
    uint64_t next;      /* offset of the next allocation */
    uint64_t file_size; /* current memfd size */
    uint64_t page;      /* page size */
};

/* Creates the memfd and seals it against shrinking and further sealing. */
int gofer_pwa_init(struct gofer_pwa *a);
/* Reserves a window of at least size bytes (rounded up to a page) and grows
 * the memfd (doubling, like gVisor). The new window is zero-filled. */
int gofer_pwa_alloc(struct gofer_pwa *a, uint64_t size, int64_t *offset,
                    uint64_t *length);
/* Closes the memfd (mappings stay valid). Idempotent. */
void gofer_pwa_destroy(struct gofer_pwa *a);

/* Window length needed for a datagram capacity of data_cap bytes, rounded up
 * to the page size (gVisor's PacketWindowLengthForDataCap); 0 on overflow. */
uint64_t gofer_fc_window_len(uint64_t data_cap);

/* One end of a flipcall channel. Treat the fields as private; the struct is
 * public only so that it can be embedded (e.g. in a Cython cdef class). */
struct gofer_fc_ep {
    uint8_t *packet;         /* mapping base; NULL when not initialised */
    uint32_t data_cap;
    uint32_t active;         /* connState value meaning "this side has control" */
    uint32_t inactive;       /* ... meaning "the peer has control" */
    int role;                /* enum gofer_fc_role */
    atomic_uint shutdown;    /* local shutdown requested */
    atomic_int ctrl;         /* GOFER_FC_CTRL_* bits, see flipcall.c */
    _Atomic uint64_t spin_max_ns; /* configured spin limit */
    struct gofer_spin spin;  /* the waits' policy (owner thread only) */
};

/* Maps the window [offset, offset+length) of fd as the server side. The fd is
 * not consumed; the caller may close it afterwards. Requires
 * pagesize <= length <= UINT32_MAX. The window must be zero-filled (fresh
 * from gofer_pwa_alloc). Spinning defaults to gofer_spin_default_ns()
 * (spin.h). */
int gofer_fc_init(struct gofer_fc_ep *ep, int fd, int64_t offset,
                  uint64_t length);
/* The same for the client side (the peer of a gofer, e.g. a test client). */
int gofer_fc_client_init(struct gofer_fc_ep *ep, int fd, int64_t offset,
                         uint64_t length);

static inline uint8_t *gofer_fc_data(const struct gofer_fc_ep *ep)
{
    return ep->packet + GOFER_FC_HEADER_BYTES;
}

static inline uint32_t gofer_fc_data_cap(const struct gofer_fc_ep *ep)
{
    return ep->data_cap;
}

/* Server: waits for the client's JSON handshake (any JSON object or null),
 * answers "{}\n", then waits for the first request and stores its datagram
 * length in *n. */
int gofer_fc_recv_first(struct gofer_fc_ep *ep, uint32_t *n);

/* Either side: sends the n-byte datagram already written at gofer_fc_data(),
 * waits for the peer's answer and stores its length in *m. */
int gofer_fc_send_recv(struct gofer_fc_ep *ep, uint32_t n, uint32_t *m);

/* Client: sends the "{}\n" handshake and waits for the server's reply. */
int gofer_fc_client_connect(struct gofer_fc_ep *ep);
/* Client: same as gofer_fc_send_recv. */
int gofer_fc_client_send_recv(struct gofer_fc_ep *ep, uint32_t n, uint32_t *m);

/* Shuts the channel down (gVisor's Endpoint.Shutdown). Safe from any thread:
 * a thread of this process blocked in this endpoint returns -ESHUTDOWN
 * (unless the peer handed control over at that moment) and, on its way out,
 * sets connState to 2 and wakes the peer; otherwise that happens here at
 * once. Returns once no thread is waiting in ep any more, which may be just
 * before that thread's last write to the window: join it before
 * gofer_fc_destroy. Later blocking calls return -ESHUTDOWN. Idempotent. */
void gofer_fc_shutdown(struct gofer_fc_ep *ep);

/* Unmaps the window. No thread may be inside a call on ep. Idempotent. */
void gofer_fc_destroy(struct gofer_fc_ep *ep);

/* Maximum time a waiter polls connState before sleeping in FUTEX_WAIT (the
 * adaptive policy of spin.h); 0 disables spinning. Takes effect from the
 * next wait; callable from any thread. */
void gofer_fc_set_spin_ns(struct gofer_fc_ep *ep, uint64_t ns);

#endif /* GOFER_FLIPCALL_H */
