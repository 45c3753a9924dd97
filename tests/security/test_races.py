"""Metadata RPCs racing on one subtree from four clients at once (three
channels and a socket, two connections): walks, makes, removes, renames
(exchanges too, and directories into their own descendants), opens and
closes, which the server answers without the GIL where it can.

Every answer is well-formed and none is stuck; afterwards a fresh client
can use every name the host has (the node tree followed the host: no live
directory marked deleted), and the server's FDs are back where they were.
"""
import os
import random
import stat
import threading

from gofer import _wire as w
from security.test_abuse import back_to

DIRS = [b"a", b"b", b"c"]
FILES = [b"f", b"g"]
OPS_PER_CLIENT = 1500
HELD_MAX = 24
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_REMOVEDIR = 0x200


class Racer:
    """One client's random RPCs; the directories it holds FDs on."""

    def __init__(self, via, top, seed):
        self.via, self.rnd = via, random.Random(seed)
        self.dirs = [top]                  # dirs[0] is never closed
        self.answered = 0

    def rpc(self, mid, **fields):
        a = self.via.rpc(mid, w.encode_request(mid, fields))
        assert a.well_formed(mid), (w.MID_NAMES[mid], fields, a)
        self.answered += 1
        return a

    def close(self, *fds):
        self.rpc(w.CLOSE, fds=list(fds))

    def some_dir(self):
        return self.rnd.choice(self.dirs)

    def walk(self):
        names = [self.rnd.choice(DIRS + FILES) for _ in range(self.rnd.randint(1, 3))]
        a = self.rpc(w.WALK, dir_fd=self.some_dir(), path=names)
        if a.mid != w.WALK:
            return
        for inode in a.fields()["inodes"]:
            if stat.S_ISDIR(inode.stat.mode) and len(self.dirs) < HELD_MAX:
                self.dirs.append(inode.control_fd)
            else:
                self.close(inode.control_fd)

    def step(self):
        r, name = self.rnd, self.rnd.choice(DIRS + FILES)
        k = r.randrange(9)
        if k in (0, 1):
            self.walk()
        elif k == 2:
            a = self.rpc(w.MKDIR_AT, dir_fd=self.some_dir(), uid=0, gid=0, mode=0o755,
                         name=r.choice(DIRS))
            if a.mid == w.MKDIR_AT:
                self.close(a.fields()["child"].control_fd)
        elif k == 3:
            a = self.rpc(w.OPEN_CREATE_AT, dir_fd=self.some_dir(), uid=0, gid=0, mode=0o644,
                         flags=os.O_RDWR, name=r.choice(FILES))
            if a.mid == w.OPEN_CREATE_AT:
                f = a.fields()
                self.close(f["new_fd"], f["child"].control_fd)
        elif k == 4:
            self.rpc(w.UNLINK_AT, dir_fd=self.some_dir(), name=name,
                     flags=AT_REMOVEDIR if name in DIRS else 0)
        elif k == 5:
            self.rpc(w.RENAME_AT, old_dir=self.some_dir(), new_dir=self.some_dir(),
                     old_name=name, new_name=r.choice(DIRS + FILES))
        elif k == 6:
            self.rpc(w.RENAME_AT2, old_dir=self.some_dir(), new_dir=self.some_dir(),
                     old_name=name, new_name=r.choice(DIRS + FILES),
                     flags=r.choice([0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
        elif k == 7:
            a = self.rpc(w.OPEN_AT, fd=self.some_dir(), flags=os.O_RDONLY)
            if a.mid == w.OPEN_AT:
                self.close(a.fields()["open_fd"])
        elif len(self.dirs) > 1:
            fd = self.dirs.pop(r.randrange(1, len(self.dirs)))
            self.rpc(w.FSTAT, fd=fd)
            self.close(fd)

    def run(self, failures):
        try:
            for _ in range(OPS_PER_CLIENT):
                self.step()
        except BaseException as e:         # reported by the test, not lost in the thread
            failures.append(e)


def usable(c, top, rel, host):
    """A fresh walk to `rel` finds the host's file, and it serves."""
    names = [os.fsencode(n) for n in rel.split(os.sep)]
    fd = c.walk(top, *names)[-1]
    assert c.call(w.FSTAT, fd=fd)["stat"].ino == os.lstat(host).st_ino, rel
    if os.path.isdir(host):
        probe = c.call(w.MKDIR_AT, dir_fd=fd, uid=0, gid=0, mode=0o755, name=b"probe")
        c.call(w.CLOSE, fds=[probe["child"].control_fd])
        c.call(w.UNLINK_AT, dir_fd=fd, name=b"probe", flags=AT_REMOVEDIR)
    else:
        c.call(w.CLOSE, fds=[c.open_at(fd, os.O_RDONLY)])
    c.call(w.CLOSE, fds=[fd])


def test_metadata_rpcs_racing_over_channels(world):
    race = world.dir / "race"
    race.mkdir()
    before = world.server.figures()
    one, two = world.connect(), world.connect()
    vias = [one.channel(), one.channel(), two.channel(), two]
    world.conns.extend(v for v in vias if v is not two)
    racers = [Racer(via, c.walk(c.top, "race")[0], seed)
              for seed, (via, c) in enumerate(zip(vias, [one, one, two, two]))]
    failures = []
    threads = [threading.Thread(target=r.run, args=(failures,), daemon=True) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), [r.answered for r in racers]
    assert not failures, failures
    for v in vias + [one]:
        v.close()
    back_to(world.server, before)

    # Every name the host has now is usable through a fresh client.
    c = world.connect()
    top = c.walk(c.top, "race")[0]
    seen = 0
    for dirpath, dirnames, filenames in os.walk(race):
        for n in dirnames + filenames:
            host = os.path.join(dirpath, n)
            usable(c, top, os.path.relpath(host, race), host)
            seen += 1
    assert seen > 0, "the race left nothing to check"


def test_fdids_closed_while_other_channels_use_them(world):
    """One channel opens and closes FDs as fast as it can; another channel
    and the socket read, write, list and stat every FDID near the newest
    (a connection gets two channels here), so requests keep
    landing on FDs being closed (or adopted) on another thread. Each answer
    is the data or an errno, the file holds only what was written, and
    nothing is left open."""
    (world.dir / "race").mkdir()
    (world.dir / "race" / "f").write_bytes(b"x" * 4096)
    before = world.server.figures()
    c = world.connect()
    race = c.walk(c.top, "race")[0]
    f = c.walk(race, "f")[0]
    closer, users = c.channel(), [c.channel(), c]
    newest = [c.open_at(f, os.O_RDWR)]
    c.call(w.CLOSE, fds=newest)
    done = threading.Event()
    failures = []

    def close_loop():
        try:
            for i in range(1500):
                target = race if i % 3 == 0 else f
                a = closer.rpc(w.OPEN_AT, w.encode_request(w.OPEN_AT, dict(
                    fd=target, flags=os.O_RDONLY if target == race else os.O_RDWR)))
                assert a.mid == w.OPEN_AT, a
                newest[0] = a.fields()["open_fd"]
                a = closer.rpc(w.CLOSE, w.encode_request(w.CLOSE, dict(fds=[newest[0]])))
                assert a.mid == w.CLOSE, a
        except BaseException as e:
            failures.append(e)
        finally:
            done.set()

    def use_loop(via, seed):
        rnd = random.Random(seed)
        try:
            while not done.is_set():
                fd = newest[0] + rnd.randint(-2, 2)
                mid, fields = rnd.choice([
                    (w.PREAD, dict(offset=0, fd=fd, count=4096)),
                    (w.PWRITE, dict(offset=0, fd=fd, data=b"x" * 512)),
                    (w.GETDENTS64, dict(dir_fd=fd, count=4096)),
                    (w.FSTAT, dict(fd=fd)),
                    (w.FSYNC, dict(fds=[fd])),
                ])
                a = via.rpc(mid, w.encode_request(mid, fields))
                assert a.well_formed(mid), (w.MID_NAMES[mid], fields, a)
                if a.mid == w.PREAD:
                    assert set(a.fields()["data"]) <= {ord("x")}, a
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=close_loop, daemon=True)] + [
        threading.Thread(target=use_loop, args=(u, i), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures
    assert (world.dir / "race" / "f").read_bytes() == b"x" * 4096
    for v in [closer] + users:
        v.close()
    back_to(world.server, before)
