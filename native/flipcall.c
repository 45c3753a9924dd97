/* flipcall endpoints and packet window allocator; see flipcall.h and
 * /work/shared/spec/flipcall.md for the protocol this implements. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "flipcall.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* connState and dataLen live in memory shared with another process and are
 * accessed through C11 atomics; that is only sound if an atomic 32-bit int is
 * a plain, lock-free 32-bit int (it is on x86_64 and arm64). */
_Static_assert(sizeof(atomic_uint) == sizeof(uint32_t), "atomic_uint layout");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_uint must be lock-free");

/* Local control bits (gVisor's ctrl.state): a thread is inside a blocking
 * call / gofer_fc_shutdown was called. Never in shared memory. */
#define CTRL_BLOCKED  1
#define CTRL_SHUTDOWN 2

/* ---------------------------------------------------------------------- */
/* Small helpers                                                            */

static uint64_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096;
}

static atomic_uint *conn_state(const struct gofer_fc_ep *ep)
{
    return (atomic_uint *)(void *)ep->packet;
}

static atomic_uint *data_len(const struct gofer_fc_ep *ep)
{
    return (atomic_uint *)(void *)(ep->packet + 4);
}

/* Non-private futex ops only: the peer is another process mapping the same
 * memfd page, and private futexes are keyed by (mm, address). */
static int futex_wait(atomic_uint *word, uint32_t val)
{
    if (syscall(SYS_futex, word, FUTEX_WAIT, val, NULL, NULL, 0) == 0)
        return 0;
    /* EAGAIN: the word changed before we slept; EINTR: a signal. Both just
     * mean "look again". */
    return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
}

static int futex_wake(atomic_uint *word, int n)
{
    return syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0) < 0 ? -errno
                                                                      : 0;
}

/* ---------------------------------------------------------------------- */
/* Packet window allocator                                                  */

int gofer_pwa_init(struct gofer_pwa *a)
{
    a->fd = -1;
    a->next = 0;
    a->file_size = 0;
    a->page = page_size();
    int fd = memfd_create("flipcall_packet_windows",
                          MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* SHRINK: neither side may truncate the file under the other's mapping
     * (that would SIGBUS it). SEAL: nobody may add GROW/WRITE seals later. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    a->fd = fd;
    return 0;
}

int gofer_pwa_alloc(struct gofer_pwa *a, uint64_t size, int64_t *offset,
                    uint64_t *length)
{
    if (a->fd < 0 || size == 0)
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX - a->page)
        return -ENOMEM;
    uint64_t len = (size + a->page - 1) & ~(a->page - 1);
    uint64_t start = a->next;
    if (len > (uint64_t)INT64_MAX - start)
        return -ENOMEM;
    uint64_t end = start + len;
    if (end > a->file_size) {
        /* Grow by doubling, as gVisor does, so that N windows cost
         * O(log N) ftruncates. Fresh memfd pages read as zero, which is the
         * initial state (client active) every window needs. */
        uint64_t want = a->file_size ? 2 * a->file_size : a->page;
        while (want < end)
            want = want > (uint64_t)INT64_MAX / 2 ? end : 2 * want;
        if (ftruncate(a->fd, (off_t)want) < 0)
            return -errno;
        a->file_size = want;
    }
    a->next = end;
    *offset = (int64_t)start;
    *length = len;
    return 0;
}

void gofer_pwa_destroy(struct gofer_pwa *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

uint64_t gofer_fc_window_len(uint64_t data_cap)
{
    uint64_t page = page_size();
    if (data_cap > UINT64_MAX - GOFER_FC_HEADER_BYTES - page)
        return 0;
    return (data_cap + GOFER_FC_HEADER_BYTES + page - 1) & ~(page - 1);
}

/* ---------------------------------------------------------------------- */
/* Endpoint set-up                                                          */

static int ep_init(struct gofer_fc_ep *ep, int role, int fd, int64_t offset,
                   uint64_t length)
{
    ep->packet = NULL;
    ep->data_cap = 0;
    ep->role = role;
    ep->active = role == GOFER_FC_SERVER ? GOFER_FC_SERVER_ACTIVE
                                         : GOFER_FC_CLIENT_ACTIVE;
    ep->inactive = role == GOFER_FC_SERVER ? GOFER_FC_CLIENT_ACTIVE
                                           : GOFER_FC_SERVER_ACTIVE;
    atomic_init(&ep->shutdown, 0);
    atomic_init(&ep->ctrl, 0);
    atomic_init(&ep->spin_max_ns, gofer_spin_default_ns());
    gofer_spin_init(&ep->spin, gofer_spin_default_ns());

    if (offset < 0 || length < page_size() || length > UINT32_MAX)
        return -EINVAL;
    void *p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, (off_t)offset);
    if (p == MAP_FAILED)
        return -errno;
    ep->packet = p;
    ep->data_cap = (uint32_t)length - GOFER_FC_HEADER_BYTES;
    return 0;
}

int gofer_fc_init(struct gofer_fc_ep *ep, int fd, int64_t offset,
                  uint64_t length)
{
    return ep_init(ep, GOFER_FC_SERVER, fd, offset, length);
}

int gofer_fc_client_init(struct gofer_fc_ep *ep, int fd, int64_t offset,
                         uint64_t length)
{
    return ep_init(ep, GOFER_FC_CLIENT, fd, offset, length);
}

void gofer_fc_destroy(struct gofer_fc_ep *ep)
{
    if (ep->packet)
        munmap(ep->packet, (size_t)ep->data_cap + GOFER_FC_HEADER_BYTES);
    ep->packet = NULL;
}

void gofer_fc_set_spin_ns(struct gofer_fc_ep *ep, uint64_t ns)
{
    atomic_store_explicit(&ep->spin_max_ns, ns, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- */
/* The state machine. All connState accesses are seq_cst, like Go's
 * sync/atomic: loads are acquire (we read the datagram only after seeing
 * "active") and the hand-off CAS is release (the datagram and dataLen are
 * written before the peer can see "active"). On arm64 this is what makes the
 * datagram visible; on x86_64 it costs nothing extra. */

/* Gives control to the peer: CAS(active -> inactive). */
static int set_peer_active(struct gofer_fc_ep *ep)
{
    unsigned expected = ep->active;
    if (atomic_compare_exchange_strong(conn_state(ep), &expected,
                                       ep->inactive))
        return 0;
    return expected == GOFER_FC_SHUTDOWN ? -ESHUTDOWN : -EPROTO;
}

/* Marks the shared state shut down and wakes the peer if it was waiting. */
static void shutdown_conn(struct gofer_fc_ep *ep)
{
    unsigned old = atomic_exchange(conn_state(ep), GOFER_FC_SHUTDOWN);
    /* If we held control the peer is (or will be) waiting for it. If the peer
     * held control it is not waiting; its next CAS fails and it sees 2. */
    if (old == ep->active)
        futex_wake(conn_state(ep), 1);
}

/* Start of a blocking call: fails if one is already running or if the
 * endpoint was shut down. The CAS makes the check and the BLOCKED mark one
 * step with respect to gofer_fc_shutdown's fetch_or. */
static int enter_wait(struct gofer_fc_ep *ep)
{
    int s = atomic_load(&ep->ctrl);
    do {
        if (s & CTRL_SHUTDOWN)
            return -ESHUTDOWN;
        if (s & CTRL_BLOCKED)
            return -EBUSY;
    } while (!atomic_compare_exchange_weak(&ep->ctrl, &s, s | CTRL_BLOCKED));
    return 0;
}

/* End of a blocking call. If gofer_fc_shutdown ran meanwhile it saw BLOCKED
 * and left the shared-state update to us: exactly one of the two RMWs on ctrl
 * comes second, and that one calls shutdown_conn. */
static void exit_wait(struct gofer_fc_ep *ep)
{
    int s = atomic_fetch_and(&ep->ctrl, ~CTRL_BLOCKED);
    if (s & CTRL_SHUTDOWN)
        shutdown_conn(ep);
}

/* spin.h's ready(): the peer handed over control, or a local shutdown is
 * requested. */
static int handed_over(void *arg)
{
    const struct gofer_fc_ep *ep = arg;
    return atomic_load(conn_state(ep)) != ep->inactive ||
           atomic_load_explicit(&ep->shutdown, memory_order_relaxed);
}

/* gVisor's waitUntilActive: sleep in FUTEX_WAIT while the peer has control. */
static int wait_blocking(const struct gofer_fc_ep *ep)
{
    for (;;) {
        unsigned cs = atomic_load(conn_state(ep));
        if (cs == ep->active)
            return 0;
        if (cs == GOFER_FC_SHUTDOWN)
            return -ESHUTDOWN;
        if (cs != ep->inactive)
            return -EPROTO;
        /* Checked after seeing "inactive" and before sleeping: a local
         * shutdown that set the flag earlier is seen here; one that sets it
         * later finds CTRL_BLOCKED and keeps waking us until we leave. */
        if (atomic_load(&ep->shutdown))
            return -ESHUTDOWN;
        int rc = futex_wait(conn_state(ep), ep->inactive);
        if (rc)
            return rc;
    }
}

/* Waits until this side has control: polls first (spin.h), then sleeps. */
static int wait_active(struct gofer_fc_ep *ep)
{
    unsigned cs = atomic_load(conn_state(ep));
    if (cs == ep->active)
        return 0;
    ep->spin.max_ns = atomic_load_explicit(&ep->spin_max_ns, memory_order_relaxed);
    if (cs == ep->inactive && gofer_spin_poll(&ep->spin, handed_over, ep) &&
        atomic_load(conn_state(ep)) == ep->active)
        return 0;
    return wait_blocking(ep);
}

/* Reads the peer's dataLen; it must fit in the window. */
static int read_len(const struct gofer_fc_ep *ep, uint32_t *n)
{
    uint32_t len = atomic_load(data_len(ep));
    if (len > ep->data_cap)
        return -EPROTO;
    *n = len;
    return 0;
}

static void write_len(const struct gofer_fc_ep *ep, uint32_t n)
{
    /* Ordered before the peer's view by the release CAS that follows. */
    atomic_store_explicit(data_len(ep), n, memory_order_relaxed);
}

/* Hands control to the peer and waits until it hands it back. */
static int flip(struct gofer_fc_ep *ep)
{
    int rc = set_peer_active(ep);
    if (rc == 0)
        rc = futex_wake(conn_state(ep), 1);
    if (rc == 0)
        rc = wait_active(ep);
    return rc;
}

/* True if the n bytes at p start with a JSON object or null, which is what
 * Go's json.Decoder accepts when decoding the handshake into struct{}. The
 * check is structural (balanced brackets outside strings); we never look at
 * the content. Each byte is read once: the peer may be changing them. */
static int handshake_ok(const volatile uint8_t *p, uint32_t n)
{
    static const char null_lit[] = "null";
    unsigned depth = 0, lit = 0;
    int in_str = 0, esc = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (lit) {                            /* inside "null" */
            if (c != (uint8_t)null_lit[lit])
                return 0;
            if (++lit == 4)
                return 1;
        } else if (depth == 0) {              /* before the value */
            if (c == '{')
                depth = 1;
            else if (c == 'n')
                lit = 1;
            else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                return 0;
        } else if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return 1;
        }
    }
    return 0;                                 /* empty or incomplete */
}

static void write_handshake(const struct gofer_fc_ep *ep)
{
    uint8_t *d = gofer_fc_data(ep);
    d[0] = '{';
    d[1] = '}';
    d[2] = '\n';
    write_len(ep, 3);
}

/* ---------------------------------------------------------------------- */
/* Public operations                                                        */

int gofer_fc_recv_first(struct gofer_fc_ep *ep, uint32_t *n)
{
    if (!ep->packet || ep->role != GOFER_FC_SERVER)
        return -EINVAL;
    int rc = enter_wait(ep);
    if (rc)
        return rc;
    uint32_t len = 0;
    rc = wait_active(ep);
    if (rc == 0)
        rc = read_len(ep, &len);
    if (rc == 0 && !handshake_ok(gofer_fc_data(ep), len))
        rc = -EPROTO;
    if (rc == 0) {
        write_handshake(ep);
        rc = flip(ep);            /* ...and wait for the first request */
    }
    exit_wait(ep);
    return rc ? rc : read_len(ep, n);
}

int gofer_fc_send_recv(struct gofer_fc_ep *ep, uint32_t n, uint32_t *m)
{
    if (!ep->packet || n > ep->data_cap)
        return -EINVAL;
    int rc = enter_wait(ep);
    if (rc)
        return rc;
    write_len(ep, n);
    rc = flip(ep);
    exit_wait(ep);
    return rc ? rc : read_len(ep, m);
}

int gofer_fc_client_connect(struct gofer_fc_ep *ep)
{
    if (!ep->packet || ep->role != GOFER_FC_CLIENT)
        return -EINVAL;
    int rc = enter_wait(ep);
    if (rc)
        return rc;
    uint32_t len = 0;
    write_handshake(ep);
    rc = flip(ep);
    if (rc == 0)
        rc = read_len(ep, &len);
    if (rc == 0 && !handshake_ok(gofer_fc_data(ep), len))
        rc = -EPROTO;
    exit_wait(ep);
    return rc;
}

int gofer_fc_client_send_recv(struct gofer_fc_ep *ep, uint32_t n, uint32_t *m)
{
    return gofer_fc_send_recv(ep, n, m);
}

void gofer_fc_shutdown(struct gofer_fc_ep *ep)
{
    if (atomic_exchange(&ep->shutdown, 1))
        return;
    int s = atomic_fetch_or(&ep->ctrl, CTRL_SHUTDOWN);
    if (!ep->packet)
        return;
    if (!(s & CTRL_BLOCKED)) {
        shutdown_conn(ep);
        return;
    }
    /* A thread of ours is inside a blocking call. It may be spinning, about
     * to sleep, or asleep in FUTEX_WAIT; a single wake can be missed (it had
     * not slept yet) or absorbed by a hostile peer waiting on the same word
     * from many threads. So wake everybody and yield until it has left;
     * its exit_wait then does shutdown_conn. Peer waiters woken here just
     * re-check connState and sleep again. */
    do {
        if (futex_wake(conn_state(ep), INT_MAX))
            break;
        sched_yield();
    } while (atomic_load(&ep->ctrl) & CTRL_BLOCKED);
}
