"""The RPC mix of the leak test and of bench/soak.py: connections that
walk, open, read, write, list, create and remove in their own subtree,
over the socket or over channels, then go away without closing anything."""
import os
import struct
import time

from gofer import _wire as w
from .rawclient import Raw, proc_figures, sstr, u64

CREATE = struct.Struct("<QIIHHI")
DATA = bytes(range(256)) * 16


class Mix:
    """RPCs against `top` (a directory of the served root, made here)."""

    def __init__(self, socket_path, top):
        self.socket, self.top = socket_path, os.fsencode(top)
        self.n = 0

    def expected_names(self):
        return ["c%d" % k for k in range(min(self.n, 4))]

    def cycle(self, rpcs, channels=0):
        """One connection making at least `rpcs` RPCs; returns how many."""
        c = Raw(self.socket)
        c.mount()
        via = [c.channel() for _ in range(channels)] or [c]
        done = 2 + channels
        try:
            top = c.walk(c.root, self.top)[0]
            mine = b"c%d" % (self.n % 4)
            self.n += 1
            a = c.rpc(w.OPEN_CREATE_AT, CREATE.pack(top, 0, 0, 0o100644, 0, 0)
                      + struct.pack("<I", os.O_RDWR) + sstr(mine))
            if a.mid == w.ERROR:               # left by an earlier cycle
                f = c.walk(top, mine)[0]
                o = c.open_at(f, os.O_RDWR)
            else:
                o = a.fields()["new_fd"]
            d = c.open_at(top, os.O_RDONLY)
            done += 3
            i = 0
            while done < rpcs:
                r = via[i % len(via)].rpc
                i += 1
                k = i % 8
                if k == 0:
                    r(w.PWRITE, struct.pack("<QQI", 0, o, len(DATA)) + DATA)
                elif k == 1:
                    a = r(w.PREAD, struct.pack("<QQII", 0, o, 4096, 0))
                    assert a.mid == w.PREAD, a
                elif k == 2:
                    a = r(w.WALK, u64(top) + struct.pack("<H", 1) + sstr(mine))
                    r(w.CLOSE, struct.pack("<HQ", 1, a.fields()["inodes"][0].control_fd))
                    done += 1
                elif k == 3:
                    a = r(w.MKDIR_AT, CREATE.pack(top, 0, 0, 0o755, 0, 0) + sstr(b"tmp" + mine))
                    assert a.mid == w.MKDIR_AT, a
                elif k == 4:
                    a = r(w.UNLINK_AT, u64(top) + struct.pack("<I", 0x200) + sstr(b"tmp" + mine))
                    assert a.mid == w.UNLINK_AT, a
                elif k == 5:
                    assert r(w.FSTAT, u64(o)).mid == w.FSTAT
                elif k == 6:
                    r(w.GETDENTS64, struct.pack("<QiI", d, -65536, 0))
                else:
                    r(w.WALK_STAT, u64(top) + struct.pack("<H", 2) + sstr(mine) + sstr(b"x"))
                done += 1
        finally:
            # Gone without closing anything: the server must release it all.
            for ch in via:
                if ch is not c:
                    ch.close()
            c.close()
        return done

    @staticmethod
    def settle(pid, before, timeout=10):
        """The server's figures once its FD and thread counts are back at
        `before` (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            now = proc_figures(pid)
            if now[:2] <= before[:2] or time.monotonic() > deadline:
                return now
            time.sleep(0.02)
