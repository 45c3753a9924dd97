"""Several Go clients (connections to one `gofer serve`), each with several goroutines,
race creates, renames, exchanges, links and unlinks on the same names for a bounded
time. Afterwards the server still serves and a fresh client sees exactly the host
tree (names, types, inode numbers, sizes) — the server's node tree did not drift.
"""

import os
import stat
import sys
import threading
import time

from .conftest import server_bugs
from .goclient import GoClient
from .gofer_env import AT_REMOVEDIR, DT, RENAME_EXCHANGE, RENAME_NOREPLACE, assert_matches_host

DURATION = 3.0       # seconds of churn at most
MAX_ROUNDS = 40      # per client, whatever the speed
N_CLIENTS = 3
NAMES = 6


def churn_requests(gc, top, sub):
    reqs = []
    for k in range(NAMES):
        f, g, d, s, h = f"f{k}", f"g{k}", f"d{k}", f"s{k}", f"h{k}"
        nxt = f"f{(k + 1) % NAMES}"
        reqs += [
            {"op": "open_create_at", "fd": top, "name": f, "flags": os.O_RDWR, "mode": 0o644,
             "autoclose": True},
            {"op": "mkdir_at", "fd": top, "name": d, "mode": 0o755, "autoclose": True},
            {"op": "rename_at", "fd": top, "old_name": f, "new_dir": top, "new_name": nxt},
            {"op": "rename_at", "fd": top, "old_name": nxt, "new_dir": sub, "new_name": g},
            {"op": "symlink_at", "fd": top, "name": s, "target": f, "autoclose": True},
            {"op": "rename_at", "fd": top, "old_name": d, "new_dir": top, "new_name": s,
             "flags": RENAME_EXCHANGE},
            {"op": "walk_stat", "fd": top, "names": [d, "x"]},
            {"op": "rename_at", "fd": sub, "old_name": g, "new_dir": top, "new_name": f,
             "flags": RENAME_NOREPLACE},
            {"op": "mknod_at", "fd": sub, "name": h, "mode": stat.S_IFREG | 0o600,
             "autoclose": True},
            {"op": "rename_at", "fd": sub, "old_name": h, "new_dir": top, "new_name": d},
            {"op": "unlink_at", "fd": top, "name": s},
            {"op": "unlink_at", "fd": top, "name": s, "flags": AT_REMOVEDIR},
            {"op": "unlink_at", "fd": top, "name": d, "flags": AT_REMOVEDIR},
            {"op": "unlink_at", "fd": top, "name": d},
            {"op": "unlink_at", "fd": sub, "name": g},
            {"op": "walk", "fd": top, "name": f, "autoclose": True},
        ]
    return reqs


def fresh_view(gc, fd, host, path=""):
    """Walk the whole tree through the client; compare each entry with the host."""
    ofd = gc.call("open_at", fd=fd, flags=os.O_RDONLY)["open_fd"]
    ents = []
    while batch := gc.call("getdents64", fd=ofd, count=65536)["dirents"]:
        ents += batch
    gc.call("close", fd=ofd)
    ents = [e for e in ents if e["name"] not in (".", "..")]
    assert sorted(e["name"] for e in ents) == sorted(os.listdir(host)), path
    n = 0
    for e in ents:
        st = os.lstat(host / e["name"])
        assert (e["ino"], e["type"]) == (st.st_ino, DT[stat.S_IFMT(st.st_mode)]), (path, e)
        ino = gc.call("walk", fd=fd, name=e["name"])["inode"]
        assert_matches_host(ino["stat"], st, times=False)
        n += 1
        if stat.S_ISDIR(st.st_mode):
            n += fresh_view(gc, ino["fd"], host / e["name"], path + "/" + e["name"])
        gc.call("close", fd=ino["fd"])
    return n


def test_concurrent_clients_churn_then_tree_matches_host(start_server, sock_dir, go_client,
                                                         transport):
    root = sock_dir / "root"
    (root / "w" / "sub").mkdir(parents=True)
    (root / "keep").write_bytes(b"keep")
    sock = sock_dir / "g.sock"
    srv = start_server([sys.executable, "-m", "gofer", "serve", root, "--socket", sock], sock)
    clients = []
    for i in range(N_CLIENTS):
        # Mix transports: the parametrized one, plus the other for one client.
        gc = go_client(sock, channels=transport if i else not transport, timeout=60)
        top = gc.call("walk", fd=gc.root_fd, name="w")["inode"]["fd"]
        sub = gc.call("walk", fd=top, name="sub")["inode"]["fd"]
        clients.append((gc, churn_requests(gc, top, sub)))
    totals = [{"ok": 0, "err": 0, "errnos": {}, "rounds": 0} for _ in clients]
    failures = []
    deadline = time.monotonic() + DURATION

    def run(i, gc, reqs):
        try:
            while totals[i]["rounds"] < MAX_ROUNDS and time.monotonic() < deadline:
                r = gc.call("parallel", goroutines=3, repeat=2, requests=reqs, summary=True,
                            timeout=60)
                totals[i]["ok"] += r["ok_count"]
                totals[i]["err"] += r["err_count"]
                for k, v in r["errnos"].items():
                    totals[i]["errnos"][k] = totals[i]["errnos"].get(k, 0) + v
                totals[i]["rounds"] += 1
        except BaseException as e:  # reported below, with the driver's stderr
            failures.append((i, e))

    threads = [threading.Thread(target=run, args=(i, gc, reqs))
               for i, (gc, reqs) in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [t for t in threads if t.is_alive()], "a client hung"
    assert not failures, failures
    for t in totals:
        assert t["rounds"] >= 1 and t["ok"] > 0, totals
        # Only the errnos a racing filesystem gives: no EIO, EBADF, EREMOTEIO, ...
        allowed = {"2", "17", "20", "21", "22", "39"}  # ENOENT EEXIST ENOTDIR EISDIR EINVAL ENOTEMPTY
        assert set(t["errnos"]) <= allowed, t["errnos"]
    assert srv.proc.poll() is None, "the server died"
    assert not server_bugs(srv.stderr()), srv.stderr()

    # Every client still works, and a fresh one sees exactly the host tree.
    for gc, _ in clients:
        assert gc.call("fstat", fd=gc.root_fd)["stat"]["ino"] == os.stat(root).st_ino
    fresh = go_client(sock, channels=transport)
    n = fresh_view(fresh, fresh.root_fd, root)
    assert n >= 3
    # And it can still mutate.
    w = fresh.call("walk", fd=fresh.root_fd, name="w")["inode"]["fd"]
    fresh.call("mkdir_at", fd=w, name="after", mode=0o755)
    assert (root / "w" / "after").is_dir()


def test_clients_killed_mid_flight_do_not_hurt_the_server(start_server, sock_dir, go_client,
                                                         lisafs_driver, transport):
    """Drivers killed (SIGKILL) while their goroutines have RPCs in flight, over the
    socket and channels: the server cleans up and keeps serving everyone else."""
    root = sock_dir / "root"
    root.mkdir()
    (root / "f").write_bytes(b"x" * 100_000)
    sock = sock_dir / "g.sock"
    srv = start_server([sys.executable, "-m", "gofer", "serve", root, "--socket", sock], sock)
    survivor = go_client(sock, channels=transport)
    for i in range(3):
        gc = GoClient(lisafs_driver, socket=sock, channels=(i % 2 == 0) == transport)
        try:
            f = gc.call("walk", fd=gc.root_fd, name="f")["inode"]["fd"]
            ofd = gc.call("open_at", fd=f, flags=os.O_RDWR)["open_fd"]
            reqs = [{"op": "pread", "fd": ofd, "count": 65536},
                    {"op": "pwrite", "fd": ofd, "data": "y" * 1000, "offset": 50},
                    {"op": "mkdir_at", "fd": gc.root_fd, "name": f"d{i}", "mode": 0o755,
                     "autoclose": True},
                    {"op": "unlink_at", "fd": gc.root_fd, "name": f"d{i}", "flags": AT_REMOVEDIR}]
            line = ('{"op": "parallel", "goroutines": 4, "repeat": 100000, "summary": true, '
                    '"requests": %s}\n' % __import__("json").dumps(reqs))
            gc.proc.stdin.write(line.encode())
            gc.proc.stdin.flush()
            time.sleep(0.3)
        finally:
            gc.proc.kill()
            gc.close(check=False)
        assert survivor.call("fstat", fd=survivor.root_fd)["ok"]
    assert srv.proc.poll() is None
    assert not server_bugs(srv.stderr()), srv.stderr()
    fresh = go_client(sock, channels=transport)
    f = fresh.call("walk", fd=fresh.root_fd, name="f")["inode"]["fd"]
    ofd = fresh.call("open_at", fd=f, flags=os.O_RDONLY)["open_fd"]
    data = fresh.call("pread", fd=ofd, count=200_000)["data"]
    assert data == (root / "f").read_bytes() and len(data) == 100_000
    assert fresh_view(fresh, fresh.root_fd, root) >= 1
