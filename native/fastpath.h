/* fastpath: the RPCs a connection serves from request to response without
 * the GIL, on FDs whose backend declared a host FD for them (the stock
 * backend; see ControlFDImpl.c_host_fd): FStat, WalkStat, PRead, PWrite,
 * FSync, Getdents64 and Close; OpenAt where the backend lets the core
 * reopen the host FD itself (ControlFDImpl.c_reopen_dir), and Walk,
 * MkdirAt, OpenCreateAt, UnlinkAt and RenameAt where it lets the core walk
 * and change the
 * host directory (ControlFDImpl.c_host_tree): the new FDs
 * (and nodes, nodes.h) are made here, and the core adopts the FDs (gives
 * them their FD objects) later, with the GIL (fdtable.h).
 *
 * It serves only the ordinary case and declines everything else (an FDID
 * not in the table, an FD of another backend or kind, a short request, an
 * argument the protocol refuses), which the core then handles with the GIL
 * exactly as before, so that both paths answer alike. The core checks the
 * connection-wide rules (mounted, supported MIDs, readonly, sizes) first.
 * Locks are the core's (_locks.pxi): the rename lock shared, then the
 * node's lock, shared to read and exclusive to write. */
#ifndef GOFER_FASTPATH_H
#define GOFER_FASTPATH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "fdtable.h"

#define GOFER_FAST_DECLINED (-1)
/* FDs the fast path may leave queued per connection (fdtable.h), for
 * release after a Close and for adoption after an OpenAt, Walk, MkdirAt or
 * OpenCreateAt: the next request that holds the GIL takes both queues
 * first; past this, those RPCs are declined, and so served with the GIL, which empties
 * them. */
#define GOFER_FAST_MAX_QUEUED 128

typedef struct gofer_fast {
    gofer_fdtable *fds;
    pthread_rwlock_t *rename_lock;
    uint32_t max_msg;
    size_t max_fds;                 /* FDs the connection may hold */
    uint8_t readonly, open_on_deleted;      /* its ConnectionOpts */
    /* Releases an FD whose last use a request dropped after it left the
     * table (a Close raced the request); takes the GIL itself. */
    void (*release)(gofer_fd *f);
} gofer_fast;

/* Releases f, an FD the fast path made and no FD object owns, after its
 * last use: its host FD and its node (a control FD's). Returns the FD it
 * was made from, of which the caller drops f's use. */
gofer_fd *gofer_fast_free_unowned(gofer_fd *f);

/* Serves request `mid` (payload req[0, n)) into out[0, cap): returns the
 * response MID (0: an errno as the payload) with its length in *outlen, or
 * GOFER_FAST_DECLINED. *donated is a host FD the response donates, or -1;
 * the caller sends and closes it, already non-blocking and close-on-exec. */
int gofer_fast_handle(const gofer_fast *c, uint16_t mid, const char *req, size_t n,
                      char *out, size_t cap, size_t *outlen, int *donated);

#endif /* GOFER_FASTPATH_H */
