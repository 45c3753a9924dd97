# Flipcall channels (included into _server.pyx so they reach the connection's
# dispatch). The shared-memory endpoint and fdchannel are in native/.
import threading

cdef enum:
    FLIPCALL_HEADER = 16
    CHANNEL_HEADER = 4

# gVisor allows clamp(GOMAXPROCS, 2, 4) channels per connection.
MAX_CHANNELS = max(2, min(4, os.cpu_count() or 1))


cdef class Channel:
    """The server end of one flipcall channel, served by its own thread."""
    cdef gofer_fc_ep ep
    cdef bint mapped
    cdef int fdsock                 # our end of the fdchannel
    cdef Connection conn
    cdef char* req                  # private copy of each request
    cdef object thread

    def __cinit__(self):
        self.fdsock = -1

    def __dealloc__(self):
        self.release()

    cdef void release(self) noexcept:
        """Unmaps the window and closes the fdchannel; no thread may be
        serving it. Teardown calls it rather than leave that to the garbage
        collector (a reference cycle may keep the object)."""
        if self.mapped:
            gofer_fc_destroy(&self.ep)
            self.mapped = False
        if self.fdsock >= 0:
            close(self.fdsock)
            self.fdsock = -1
        free(self.req)
        self.req = NULL

    def serve(self):
        cdef uint32_t n = 0, plen
        cdef uint16_t mid, rmid
        cdef uint8_t* data = gofer_fc_data(&self.ep)
        cdef uint32_t cap = gofer_fc_data_cap(&self.ep) - CHANNEL_HEADER
        cdef Out o
        cdef int rc, i, sent
        cdef char* req
        o.w.growable = False
        with nogil:
            rc = gofer_fc_recv_first(&self.ep, &n)
        # A datagram shorter than the channel header ends the service, as
        # in gVisor (0 is the client's way of saying goodbye).
        while rc == 0 and n >= CHANNEL_HEADER:
            mid = lisafs_ld16(<char*>data)
            plen = n - CHANNEL_HEADER
            # The client may rewrite the window at any time: act on a copy.
            # PWrite is the exception: its handler reads each header field
            # once, and the data only goes to the kernel, so a client that
            # scribbles on it changes nothing but its own bytes. That saves a
            # copy of up to 2 MiB per write.
            req = self.req
            if mid == _wire.PWRITE:
                req = <char*>data + CHANNEL_HEADER
            elif plen <= self.conn.max_msg:
                memcpy(self.req, data + CHANNEL_HEADER, plen)
            o.w.buf = <char*>data + CHANNEL_HEADER
            o.w.cap = min(cap, self.conn.max_msg)
            rmid = self.conn.dispatch(mid, req, plen, &o)
            # FDs go first, one datagram each, so they are queued before the
            # client is woken; numFDs says how many made it. The send never
            # blocks: a client that does not read its fdchannel gets no more
            # FDs, and stalls nobody.
            sent = 0
            for i in range(o.nfds):
                if sent == i and gofer_fdchan_send(self.fdsock, o.fds[i]) == 0:
                    sent += 1
                close(o.fds[i])
            o.nfds = 0
            lisafs_st16(<char*>data, rmid)
            data[2] = <uint8_t>sent
            data[3] = 0
            with nogil:
                rc = gofer_fc_send_recv(&self.ep, CHANNEL_HEADER + <uint32_t>o.w.len, &n)
        if rc != 0 and rc != -E.ESHUTDOWN:
            log.warning("channel closed: %s", os.strerror(-rc))

    cdef void shutdown(self) noexcept:
        if self.mapped:
            with nogil:
                gofer_fc_shutdown(&self.ep)
