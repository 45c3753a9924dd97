"""Random and mutated requests for every MID: the server answers each one
with a well-formed response or error, keeps serving, and leaks nothing."""
import logging
import os
import random
import struct

from gofer import _wire as w
from conftest import open_fds
from test_server import same_file, wait_until
from test_wire import CASES

ROUNDS = 400
# FAllocate of a random length on a real file would really reserve that much
# disk (legitimately: quotas are the host's business), so it only ever sees
# FDIDs that do not exist.
NO_VALID_FD = {w.FALLOCATE}
UNKNOWN_FD = struct.pack("<Q", 1 << 60)


def responses_are_well_formed(c, mid, payload):
    rmid, body, fds = c.raw(mid, payload)
    for fd in fds:
        os.close(fd)
    if rmid == 0:
        assert len(body) == 4 and struct.unpack("<I", body)[0] > 0, (mid, payload)
    else:
        assert rmid == mid, (mid, rmid)
        w.decode_response(mid, body)           # it parses as that MID's layout


def test_random_and_mutated_requests(tree, service, connect, caplog):
    caplog.set_level(logging.WARNING, logger="gofer")
    before = open_fds()
    rng = random.Random(1234)
    for mid in range(1, 34):
        # A connection per MID, so the FDs aimed at still exist (fuzzed Close
        # requests would leave the later MIDs nothing but EBADF).
        c = connect(tree, max_fds=1024)
        c.start_channels(2)
        valid = [c.root.control_fd] + [i.control_fd for i in c.walk(c.root.control_fd,
                                                                     [b"sub", b"inner.bin"])[1]]
        fd, h = c.open_at(valid[-1], os.O_RDWR)
        os.close(h)
        valid.append(fd)
        sample = next(case[2] for case in CASES if case[0] == mid)
        for i in range(ROUNDS):
            kind = i % 3
            if kind == 0:                       # random bytes
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48)))
            else:                               # a valid request, mutated
                payload = bytearray(sample)
                for _ in range(rng.randrange(1, 4)):
                    if payload:
                        payload[rng.randrange(len(payload))] = rng.getrandbits(8)
                if kind == 2 and len(payload) >= 8 and mid not in NO_VALID_FD:
                    payload[0:8] = struct.pack("<Q", rng.choice(valid))
                if rng.random() < 0.3:
                    payload = payload[:rng.randrange(len(payload) + 1)]
                payload = bytes(payload)
            if mid in NO_VALID_FD and len(payload) >= 8:
                payload = UNKNOWN_FD + payload[8:]
            responses_are_well_formed(c, mid, payload)
        # Still serving (the fuzz may have closed the first root: mount again).
        root = c.call(w.MOUNT)["root"]
        same_file(c.fstat(root.control_fd), os.stat(tree))
        c.sock.close()
        for ch in c._channels:
            ch.close()
    assert wait_until(lambda: service.active() == 0, 10)
    assert open_fds() == before
    # Every answer was a designed errno: no handler raised what it did not expect.
    assert [r.getMessage() for r in caplog.records if "EREMOTEIO" in r.getMessage()] == []
