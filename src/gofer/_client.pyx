# cython: language_level=3, boundscheck=False, wraparound=False
"""The client end of a flipcall channel, for gofer.client (tests, tools,
benchmarks); the server end is the core's Channel (gofer._server)."""
import os
import errno as E

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy
from posix.unistd cimport close

from gofer._native cimport *
from gofer._wire cimport lisafs_ld16, lisafs_st16

cdef enum:
    CHANNEL_HEADER = 4      # MID (u16), numFDs (u8), a pad byte


cdef class ChannelClient:
    """The client end of a channel, for gofer.client (tests, tools, benchmarks)."""
    cdef gofer_fc_ep ep
    cdef bint mapped
    cdef int fdsock

    def __cinit__(self, int memfd, int64_t offset, uint64_t length, int fdsock):
        self.fdsock = -1
        rc = gofer_fc_client_init(&self.ep, memfd, offset, length)
        if rc:
            raise OSError(-rc, "mapping the channel: " + os.strerror(-rc))
        self.mapped = True
        self.fdsock = fdsock

    def __dealloc__(self):
        self.close()

    def connect(self):
        cdef int rc
        with nogil:
            rc = gofer_fc_client_connect(&self.ep)
        if rc:
            raise OSError(-rc, "channel handshake: " + os.strerror(-rc))

    def call(self, uint16_t mid, const unsigned char[:] payload not None):
        """One round trip: returns (response MID, payload bytes, [fds])."""
        cdef uint8_t* data = gofer_fc_data(&self.ep)
        cdef Py_ssize_t n = payload.shape[0]
        cdef uint32_t m
        cdef int rc, fd
        if n + CHANNEL_HEADER > gofer_fc_data_cap(&self.ep):
            raise OSError(E.EIO, "request exceeds the channel")
        lisafs_st16(<char*>data, mid)
        data[2] = 0
        data[3] = 0
        if n:
            memcpy(data + CHANNEL_HEADER, &payload[0], n)
        with nogil:
            rc = gofer_fc_client_send_recv(&self.ep, CHANNEL_HEADER + <uint32_t>n, &m)
        if rc:
            raise OSError(-rc, "channel: " + os.strerror(-rc))
        if m < CHANNEL_HEADER:
            raise OSError(E.EIO, "short channel response")
        rmid = lisafs_ld16(<char*>data)
        nfds = data[2]
        body = PyBytes_FromStringAndSize(<char*>data + CHANNEL_HEADER, m - CHANNEL_HEADER)
        fds = []
        for _ in range(nfds):
            if gofer_fdchan_recv(self.fdsock, &fd, 1) != 0:
                break
            fds.append(fd)
        return rmid, body, fds

    def shutdown(self):
        if self.mapped:
            gofer_fc_shutdown(&self.ep)

    def close(self):
        if self.mapped:
            gofer_fc_destroy(&self.ep)
            self.mapped = False
        if self.fdsock >= 0:
            close(self.fdsock)
            self.fdsock = -1
