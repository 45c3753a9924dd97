# cython: language_level=3
"""The backend: a directory of blobs. BlobFile and BlobReader override the C
fast paths (c_stat, c_read) the server calls with no Python in between;
the Python-level stat() of BlobFile answers from c_stat, so Python code
(BlobDir.walk) can use it."""
import errno

from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from gofer.lisafs cimport ControlFDImpl, OpenFDImpl, lisafs_statx

from gofer.lisafs import (MID, STATX_BASIC_STATS, Child, ConnectionImpl, Dirent, OpenResult,
                          Statx, implemented_messages)


cdef class BlobFile(ControlFDImpl):
    cdef readonly bytes data
    cdef readonly unsigned long long ino

    def __init__(self, bytes data not None, unsigned long long ino):
        self.data = data
        self.ino = ino

    cdef int c_stat(self, lisafs_statx* out) except -1:
        memset(out, 0, sizeof(lisafs_statx))
        out.mask = STATX_BASIC_STATS
        out.mode = 0o100444
        out.nlink = 1
        out.ino = self.ino
        out.size = len(self.data)
        out.blocks = (len(self.data) + 511) // 512
        out.blksize = 4096
        return 0

    def open(self, flags):
        return OpenResult(BlobReader(self.data))


cdef class BlobReader(OpenFDImpl):
    cdef bytes data

    def __init__(self, bytes data not None):
        self.data = data

    cdef Py_ssize_t c_read(self, char* buf, Py_ssize_t count, int64_t offset) except -1:
        cdef Py_ssize_t n = len(self.data)
        if offset >= n:
            return 0
        if count > n - offset:
            count = n - offset
        memcpy(buf, <const char*>self.data + offset, count)
        return count


class BlobDir(ControlFDImpl):
    def __init__(self, blobs):
        self.blobs = blobs
        self.inos = {name: i + 2 for i, name in enumerate(sorted(blobs))}

    def stat(self):
        return Statx(mask=STATX_BASIC_STATS, mode=0o40555, nlink=2, ino=1, blksize=4096)

    def walk(self, name):
        if name not in self.blobs:
            raise OSError(errno.ENOENT)
        f = BlobFile(self.blobs[name], self.inos[name])
        return Child(f, f.stat())                   # stat() answers from c_stat

    def open(self, flags):
        return OpenResult(BlobListing(self))


class BlobListing(OpenFDImpl):
    def __init__(self, d):
        self.d = d

    def stat(self):
        return self.d.stat()

    def readdir(self):
        return [Dirent(ino=self.d.inos[n], dev_minor=0, dev_major=0, off=0, type=8, name=n)
                for n in sorted(self.d.blobs)]


class BlobConnection(ConnectionImpl):
    def __init__(self, blobs):
        self.blobs = blobs

    def mount(self):
        return BlobDir(self.blobs)

    def supported_messages(self):
        # c_read overrides are invisible to the default: name PRead.
        return implemented_messages(self) + [MID.PRead]
