/* spin: the one adaptive poll-before-sleep policy of the gofer's wait loops
 * (the flipcall endpoint and the socket transport).
 *
 * Before sleeping until the peer's next message, a loop polls for it for up
 * to a window (GOFER_SPIN_DEFAULT_NS): waking a sleeping thread costs tens
 * of microseconds on a VM, and a peer that answers within the window is
 * served without that. The window adapts: a poll that catches the message
 * restores it in full; the second and every further miss in a row halve it
 * (down to 0), so a quiet peer soon stops costing CPU; every
 * GOFER_SPIN_PROBE_EVERY-th wait with a reduced window polls the full one
 * again, to notice when the peer is quick again (time spent asleep cannot
 * tell: it includes our own wake-up latency).
 *
 * A policy belongs to one waiting thread. */
#ifndef GOFER_SPIN_H
#define GOFER_SPIN_H

#include <stdint.h>

/* 50 us covers the wake-up latency of a peer that slept on another vCPU
 * (~35-45 us measured on a 2-vCPU VM) plus some think time, which keeps a
 * blocking client (gVisor's) and a spinning gofer in step; with 20 us a
 * client that pauses ~10 us between requests already drops both sides back
 * to sleeping. native/tests/run.sh bench measures it. */
#define GOFER_SPIN_DEFAULT_NS 50000u
#define GOFER_SPIN_PROBE_EVERY 8

struct gofer_spin {
    uint64_t max_ns;  /* configured window; 0 never polls */
    uint64_t cur_ns;  /* the window now */
    uint32_t probe;   /* waits with a reduced window, for probing */
    uint32_t misses;  /* windows missed in a row */
};

/* The window to configure: GOFER_SPIN_DEFAULT_NS, or 0 when this process
 * may run on one CPU only (the peer could not run while we poll). */
uint64_t gofer_spin_default_ns(void);

void gofer_spin_init(struct gofer_spin *s, uint64_t max_ns);

/* Calls ready(arg) until it returns non-zero or this wait's window has
 * passed; returns ready's last result (0: missed, the caller sleeps). The
 * first microsecond busy-polls; after that each poll yields the CPU first,
 * since the peer we just woke may have been placed on our CPU. */
int gofer_spin_poll(struct gofer_spin *s, int (*ready)(void *arg), void *arg);

/* Monotonic clock in nanoseconds. */
uint64_t gofer_now_ns(void);

#endif /* GOFER_SPIN_H */
