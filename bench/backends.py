#!/usr/bin/env python3
"""The storage backends of issue 15 against the stock one, same client, same run.

    python bench/backends.py [--rounds N] [--size MIB]

Starts SeaweedFS (built and cached by tests/backends/seaweedfs_build.py) on
loopback, then side by side: `gofer serve DIR` (stock), `gofer serve
--extension s3` (the bucket; stat TTL 5 s) and `gofer serve --extension
tiered` (gofer-tiered in front of gofer-s3, a fresh cache directory), all
holding the same files, and times with gofer's Python client, per round
(servers alternating):

- write: create a --size MiB file, write it in 1 MiB PWrites, close (s3:
  the upload; tiered: the write-back);
- read_cold: open and read a file never read before through this server
  (tiered: a miss, the whole file fetched);
- read_warm: read that file again (tiered: a hit, from the local copy);
- stat_100: Walk+FStat of 100 small files (s3: a HEAD each unless cached);
- list_200: Getdents64 of a directory of 200 files.

Prints one line per (workload, server): the median and the ratio to stock.
Needs the gofer-s3 and gofer-tiered examples installed and Go (for weed).
"""
import argparse
import os
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gofer import _wire as wire                                     # noqa: E402
from gofer.client import Client                                     # noqa: E402
from tests.backends import seaweedfs_build                        # noqa: E402
from tests.backends import weed as _weed                              # noqa: E402

MIB = 1 << 20
SERVERS = ("stock", "s3", "tiered")


def serve(argv, sock, env):
    proc = subprocess.Popen(argv + ["--socket", str(sock)], env=env,
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return proc, Client.connect(sock)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("%s did not start" % argv)


def read_all(c, dir_fd, name):
    _, inodes = c.walk(dir_fd, [name.encode()])
    ofd, host = c.open_at(inodes[0].control_fd, os.O_RDONLY)
    if host is not None:
        os.close(host)
    off = 0
    while data := c.pread(ofd, off, MIB):
        off += len(data)
    c.close_fds(ofd, inodes[0].control_fd)
    return off


def write(c, dir_fd, name, size):
    r = c.call(wire.OPEN_CREATE_AT, dir_fd=dir_fd, uid=0, gid=0, mode=0o644,
               flags=os.O_RDWR, name=name.encode())
    chunk = os.urandom(MIB)
    for off in range(0, size, MIB):
        c.pwrite(r["new_fd"], off, chunk)
    c.close_fds(r["new_fd"], r["child"].control_fd)


def stat_many(c, dir_fd, names):
    for n in names:
        _, inodes = c.walk(dir_fd, [n.encode()])
        c.fstat(inodes[0].control_fd)
        c.close_fds(inodes[0].control_fd)


def list_dir(c, dir_fd):
    ofd, _ = c.open_at(dir_fd, os.O_RDONLY)
    n = 0
    while batch := c.getdents64(ofd, 65536):
        n += len(batch)
    c.close_fds(ofd)
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=8, help="MiB per file (default 8)")
    args = p.parse_args()
    size = args.size * MIB
    tmp = Path(tempfile.mkdtemp(prefix="gofer-bench-backends-"))
    weed = _weed.WeedServer(seaweedfs_build.build(quiet=False), tmp / "weed").start()
    procs = []
    try:
        client = weed.client()
        client.create_bucket(Bucket="bench")
        host = tmp / "host"
        (host / "small").mkdir(parents=True)
        small = ["f%03d" % i for i in range(200)]
        for n in small:
            (host / "small" / n).write_bytes(b"x" * 100)
            client.put_object(Bucket="bench", Key="small/" + n, Body=b"x" * 100)
        blob = os.urandom(size)
        env = dict(os.environ, GOFER_S3_ENDPOINT=weed.endpoint, GOFER_S3_BUCKET="bench",
                   GOFER_TIERED_CACHE_DIR=str(tmp / "cache"))
        gofer = [sys.executable, "-m", "gofer", "serve"]
        clients = {}
        for name, argv in (("stock", gofer + [str(host)]),
                           ("s3", gofer + ["--extension", "s3"]),
                           ("tiered", gofer + ["--extension", "tiered"])):
            proc, c = serve(argv, tmp / (name + ".sock"), env)
            procs.append(proc)
            clients[name] = c
        times = {}
        for rnd in range(args.rounds):
            order = SERVERS[rnd % 3:] + SERVERS[:rnd % 3]
            for name in order:
                c = clients[name]
                # A file new to every server this round, for the cold read.
                cold = "cold-%d-%s" % (rnd, name)
                (host / cold).write_bytes(blob)
                client.put_object(Bucket="bench", Key=cold, Body=blob)
                _, inodes = c.walk(c.root.control_fd, [b"small"])
                sdir = inodes[0].control_fd
                steps = [
                    ("write", lambda: write(c, c.root.control_fd, "w-%d-%s" % (rnd, name), size)),
                    ("read_cold", lambda: read_all(c, c.root.control_fd, cold)),
                    ("read_warm", lambda: read_all(c, c.root.control_fd, cold)),
                    ("stat_100", lambda: stat_many(c, sdir, small[:100])),
                    ("list_200", lambda: list_dir(c, sdir)),
                ]
                for wl, fn in steps:
                    t0 = time.perf_counter()
                    fn()
                    times.setdefault(wl, {}).setdefault(name, []).append(
                        time.perf_counter() - t0)
                c.close_fds(sdir)
        print("%-10s %-7s %12s %9s" % ("workload", "server", "median ms", "vs stock"))
        for wl, by in times.items():
            base = statistics.median(by["stock"])
            for name in SERVERS:
                med = statistics.median(by[name])
                print("%-10s %-7s %12.2f %8.1fx" % (wl, name, med * 1e3, med / base))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        weed.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
