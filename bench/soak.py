"""Soak: `gofer serve` (or gVisor's fsgofer, --refgofer PATH) on a scratch
directory under the leak test's RPC mix (tests/security/load.py), from
several client threads, connecting and disconnecting, for as long as
asked. Prints the server's FDs, threads and RSS every --every seconds and
at the end, and fails if FDs or threads did not come back to baseline.

    python bench/soak.py --duration 3600 [--clients 4] [--every 60]
"""
import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.security.load import Mix                          # noqa: E402
from tests.security.rawclient import GoferServer, proc_figures  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60, help="seconds to run (default 60)")
    ap.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--rpcs", type=int, default=1000, help="RPCs per connection (default 1000)")
    ap.add_argument("--every", type=float, default=10, help="seconds between reports")
    ap.add_argument("--refgofer", metavar="PATH", help="soak gVisor's fsgofer (bench/peers/refgofer)")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    (base / "root").mkdir()
    server = GoferServer(base / "root", base / "s", base / "log", refgofer=args.refgofer)
    stop = threading.Event()
    totals = [0] * args.clients
    errors = []

    def client(k):
        (base / "root" / ("w%d" % k)).mkdir()
        mix = Mix(server.socket, "w%d" % k)
        i = 0
        try:
            while not stop.is_set():
                totals[k] += mix.cycle(args.rpcs, channels=2 if i % 2 else 0)
                i += 1
        except Exception as e:              # reported at the end
            errors.append(e)

    try:
        fresh = proc_figures(server.pid)
        (base / "root" / "warm").mkdir()
        Mix(server.socket, "warm").cycle(1000, channels=2)     # first-use allocations
        before = Mix.settle(server.pid, fresh)
        print("baseline: FDs %d, threads %d, RSS %d KiB" % before, flush=True)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() - start < args.duration and not errors:
            time.sleep(min(args.every, max(0.1, args.duration - (time.monotonic() - start))))
            el = time.monotonic() - start
            print("%7.0f s  %10d RPCs  %8.0f RPC/s  FDs %d, threads %d, RSS %d KiB"
                  % ((el, sum(totals), sum(totals) / el) + proc_figures(server.pid)), flush=True)
        stop.set()
        for t in threads:
            t.join()
        after = Mix.settle(server.pid, before)
        print("after: FDs %d, threads %d, RSS %d KiB (%d RPCs)" % (after + (sum(totals),)))
        alive = server.alive()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    if errors or not alive or after[:2] > before[:2]:
        print("FAILED: %s" % (errors or ("server died" if not alive else "FDs/threads leaked")))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
