#!/usr/bin/env python3
"""gofer-crypt against the stock backend: 4 KiB and 1 MiB reads and writes.

    python bench/crypt.py [--quick]

Starts `gofer serve DIR` (stock) and `gofer serve --extension crypt` (an
encrypted directory, examples/crypt) on fresh directories and drives both
with loadgen (gVisor's pkg/lisafs client, bench/peers/loadgen), which
creates its files through the client (-prepare) so that both hold the same
data. Servers alternate within each round, over the socket and over flipcall
channels. Prints the median per-operation latency of each and crypt/stock.
Needs pip install '.[bench]' ./examples/crypt. See docs/backends.md.
"""
import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from side_by_side import PROFILES, TRANSPORTS, Server, go_build, run_loadgen

WORKLOADS = ["pread_4k", "pread_1m", "pwrite_4k", "pwrite_1m"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and iterations")
    args = p.parse_args(argv)
    prof = PROFILES["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="gofer-crypt-bench-") as tmp:
        tmp = Path(tmp)
        loadgen = go_build("./bench/peers/loadgen", tmp / "loadgen")
        for d in ("stock", "crypt"):
            (tmp / d).mkdir()
        (tmp / "key").write_bytes(os.urandom(32))
        os.environ.update(GOFER_CRYPT_DIR=str(tmp / "crypt"), GOFER_CRYPT_KEY=str(tmp / "key"))
        gofer = [sys.executable, "-m", "gofer", "serve"]
        servers = [Server("stock", gofer + [tmp / "stock", "--socket", tmp / "stock.sock"],
                          tmp / "stock.sock", tmp),
                   Server("crypt", gofer + ["--extension", "crypt", "--socket",
                                            tmp / "crypt.sock"], tmp / "crypt.sock", tmp)]
        for s in servers:
            s.start()
        try:
            print("%-10s %-9s %12s %12s %8s" % ("workload", "transport", "stock µs", "crypt µs",
                                                "ratio"))
            for workload in WORKLOADS:
                for transport, channels in TRANSPORTS.items():
                    per = {s.name: [] for s in servers}
                    for rnd in range(prof["rounds"]):
                        for s in servers[rnd % 2:] + servers[:rnd % 2]:
                            r = run_loadgen(loadgen, s, workload, channels, prof, prepare=True)
                            if "error" in r:
                                raise SystemExit("%s %s: %s" % (s.name, workload, r["error"]))
                            per[s.name].append(r["median_ns"])
                    stock, crypt = (statistics.median(per[n]) for n in ("stock", "crypt"))
                    print("%-10s %-9s %12.1f %12.1f %8.2f" % (
                        workload, transport, stock / 1e3, crypt / 1e3, crypt / stock), flush=True)
        finally:
            for s in servers:
                s.stop()


if __name__ == "__main__":
    main()
