"""Load from gVisor's own client: one connection asking for 4 flipcall
channels (GOMAXPROCS=4; the server grants up to 4 on 4 CPUs) and 16 goroutines racing
creates, renames, exchanges, links and unlinks for a bounded time, beside a
socket-only client. Afterwards the server still serves, its log has no
handler bug, and a fresh client sees exactly the host tree."""
import os
import sys
import threading
import time

from .conftest import server_bugs
from .test_gofer_concurrency import churn_requests, fresh_view

DURATION = 4.0            # seconds of load at most
GOROUTINES = 16


def test_four_channels_many_goroutines_leave_the_tree_as_the_host_has_it(
        start_server, sock_dir, go_client):
    root = sock_dir / "root"
    (root / "w" / "sub").mkdir(parents=True)
    sock = sock_dir / "g.sock"
    srv = start_server([sys.executable, "-m", "gofer", "serve", root, "--socket", sock,
                        "--seccomp=kill"], sock)
    env = dict(os.environ, GOMAXPROCS="4")
    loaded = go_client(sock, channels=True, timeout=120, env=env)
    # The client asks for 4; the server grants clamp(its CPUs, 2, 4), as gVisor's does.
    assert loaded.mount["channels"] == max(2, min(4, os.cpu_count()))
    plain = go_client(sock, channels=False, timeout=120)
    totals, failures = [], []
    deadline = time.monotonic() + DURATION

    def run(gc, goroutines):
        top = gc.call("walk", fd=gc.root_fd, name="w")["inode"]["fd"]
        sub = gc.call("walk", fd=top, name="sub")["inode"]["fd"]
        reqs = churn_requests(gc, top, sub)
        try:
            while time.monotonic() < deadline:
                r = gc.call("parallel", goroutines=goroutines, repeat=1, requests=reqs,
                            summary=True, timeout=120)
                totals.append(r)
        except BaseException as e:             # reported below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(loaded, GOROUTINES)),
               threading.Thread(target=run, args=(plain, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not failures, failures
    ok = sum(t["ok_count"] for t in totals)
    errnos = {}
    for t in totals:
        for k, v in t["errnos"].items():
            errnos[k] = errnos.get(k, 0) + v
    # Only what a racing filesystem answers: ENOENT EEXIST ENOTDIR EISDIR EINVAL ENOTEMPTY.
    assert set(errnos) <= {"2", "17", "20", "21", "22", "39"}, errnos
    print("Go client load: %d RPCs answered, %d refused (%s)" % (ok, sum(errnos.values()), errnos))
    assert ok > 0
    assert srv.proc.poll() is None, "the server died"
    assert not server_bugs(srv.stderr()), srv.stderr()
    fresh = go_client(sock, channels=True)
    assert fresh_view(fresh, fresh.root_fd, root) >= 2
