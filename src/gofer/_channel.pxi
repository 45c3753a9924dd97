# Included into _server.pyx. Flipcall channels: the Channel RPC, one service
# thread per channel into the connection's dispatch, and their teardown. The
# shared-memory endpoint and fdchannel are in native/.

cdef enum:
    FLIPCALL_HEADER = 16
    CHANNEL_HEADER = 4
    # Requests up to this size are copied into the Channel itself; a larger
    # one (rare: a long Walk, a big xattr) into pages of its own, unmapped
    # after it (not malloc: glibc would keep a freed 2 MiB block resident),
    # so an idle channel holds no max_msg-sized copy.
    SMALL_REQUEST = 4096

# gVisor allows clamp(GOMAXPROCS, 2, 4) channels per connection.
MAX_CHANNELS = max(2, min(4, os.cpu_count() or 1))


cdef class Channel:
    """The server end of one flipcall channel, served by its own thread."""
    cdef gofer_fc_ep ep
    cdef bint mapped
    cdef int fdsock                 # our end of the fdchannel
    cdef Connection conn
    cdef char small[SMALL_REQUEST]  # the private copy of a small request
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

    def serve(self):
        cdef uint32_t n = 0, plen
        cdef uint16_t mid
        cdef uint8_t* data = gofer_fc_data(&self.ep)
        cdef uint32_t cap = gofer_fc_data_cap(&self.ep) - CHANNEL_HEADER
        cdef Connection conn = self.conn
        cdef Out o
        cdef int rc, i, sent, rmid
        cdef char* req
        cdef void* big
        o.w.growable = False
        # Without the GIL but for what the fast path declines.
        with nogil:
            rc = gofer_fc_recv_first(&self.ep, &n)
            # A datagram shorter than the channel header ends the service, as
            # in gVisor (0 is the client's way of saying goodbye).
            while rc == 0 and n >= CHANNEL_HEADER:
                mid = lisafs_ld16(<char*>data)
                plen = n - CHANNEL_HEADER
                # The client may rewrite the window at any time: act on a
                # copy, so that what a handler checked (a name without "..")
                # is what it uses. PWrite is the exception: its handlers read
                # each header field once, and the data is not checked, only
                # handed to the kernel, so a client that scribbles on it
                # changes nothing but its own bytes. That saves a copy of up
                # to 2 MiB per write.
                req = self.small
                big = NULL
                o.w.buf = <char*>data + CHANNEL_HEADER
                o.w.cap = min(cap, conn.max_msg)
                if mid == MID_PWRITE:
                    req = <char*>data + CHANNEL_HEADER
                elif plen > conn.max_msg:
                    pass                    # dispatch refuses it unread
                elif plen > SMALL_REQUEST:
                    big = mmap(NULL, plen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                    if big == MAP_FAILED:
                        big = req = NULL
                    else:
                        req = <char*>big
                        memcpy(req, data + CHANNEL_HEADER, plen)
                else:
                    memcpy(req, data + CHANNEL_HEADER, plen)
                o.nfds = 0
                if req == NULL:
                    lisafs_st32(o.w.buf, ENOMEM)        # no memory for the copy
                    o.w.len = 4
                    rmid = 0
                else:
                    rmid = conn.serve_fast(mid, req, plen, &o)
                    if rmid < 0:
                        with gil:
                            rmid = conn.dispatch(mid, req, plen, &o)
                if big != NULL:
                    munmap(big, plen)
                # FDs go first, one datagram each, so they are queued before
                # the client is woken; numFDs says how many made it. The send
                # never blocks: a client that does not read its fdchannel gets
                # no more FDs, and stalls nobody.
                sent = 0
                for i in range(o.nfds):
                    if sent == i and gofer_fdchan_send(self.fdsock, o.fds[i]) == 0:
                        sent += 1
                    close(o.fds[i])
                o.nfds = 0
                lisafs_st16(<char*>data, <uint16_t>rmid)
                data[2] = <uint8_t>sent
                data[3] = 0
                rc = gofer_fc_send_recv(&self.ep, CHANNEL_HEADER + <uint32_t>o.w.len, &n)
        if rc != 0 and rc != -E.ESHUTDOWN:
            log.warning("channel closed: %s", os.strerror(-rc))

    cdef void shutdown(self) noexcept:
        if self.mapped:
            with nogil:
                gofer_fc_shutdown(&self.ep)


cdef int h_channel(Connection conn, Reader* r, Out* o) except -1:
    # Under the lock teardown takes to set `closed` and collect the
    # channels (a Channel RPC may come over a channel, racing it): a
    # channel is either refused or recorded, its thread started, before
    # teardown looks, so none outlives the connection.
    with conn.channels_lock:
        if conn.closed:
            return E.ENOSYS
        return new_channel(conn, o)

cdef int new_channel(Connection conn, Out* o) except -1:
    cdef int64_t offset
    cdef uint64_t length
    cdef int pair[2]
    cdef int rc
    cdef Channel ch
    if len(conn.channels) >= MAX_CHANNELS:
        return E.ENOMEM
    if conn.pwa.fd < 0:
        rc = gofer_pwa_init(&conn.pwa)
        if rc:
            return -rc
    rc = gofer_pwa_alloc(&conn.pwa, FLIPCALL_HEADER + CHANNEL_HEADER + conn.max_msg,
                         &offset, &length)
    if rc:
        return -rc
    ch = Channel.__new__(Channel)
    ch.conn = conn
    rc = gofer_fc_init(&ch.ep, conn.pwa.fd, offset, length)
    if rc:
        return -rc
    ch.mapped = True
    gofer_fc_set_spin_ns(&ch.ep, SPIN_NS)
    rc = gofer_fdchan_pair(pair)
    if rc:
        return -rc
    ch.fdsock = pair[0]
    o.fds[1] = pair[1]
    o.fds[0] = dup(conn.pwa.fd)
    o.nfds = 2
    if o.fds[0] < 0:
        o.fds[0] = pair[1]
        o.nfds = 1
        return E.EMFILE
    # The service thread waits for the client's handshake before the
    # response (with the FDs) is even sent.
    ch.thread = Thread(target=ch.serve, name="gofer-channel")
    try:
        ch.thread.start()
    except RuntimeError:            # "can't start new thread": out of a resource
        ch.thread = None            # (it refers to ch: let ch go now, FDs and all)
        return E.ENOMEM
    conn.channels.append(ch)
    w_u64(&o.w, <uint64_t>offset)
    w_u64(&o.w, length)
    return 0

cdef void close_channels(Connection conn) noexcept:
    """Closes the connection to channels: no new one starts, and every
    one it has is woken, waited for and unmapped."""
    cdef Channel ch
    with conn.channels_lock:
        conn.closed = True
        chans, conn.channels = conn.channels, []
    for c in chans:
        (<Channel>c).shutdown()
    for c in chans:
        try:
            (<Channel>c).thread.join()
        except BaseException:
            continue
        (<Channel>c).release()
    if conn.pwa.fd >= 0:
        gofer_pwa_destroy(&conn.pwa)
