"""In-sandbox workloads: what a container feels, runsc's own gofer vs ours.

Each round runs one busybox container per (gofer, directfs mode), the two
gofers alternating, on the same runsc binary (tests/sandbox: runsc from the
pinned gVisor with the GOFER_RUNSC_GOFER switch). The container times each
workload itself (bench/peers/timeit, a static Go binary in the rootfs) over a
bind mount served by the gofer:

    find_cat        find | xargs cat over 4,000 small files in 40 directories
    ls_lr           ls -lR of that tree
    stat_40k        stat of the 4,000 files (one stat command each time), 10 times
    create_unlink   2,000 files created with touch, then removed
    start_true      (timed from the host) runsc run of `true`, start to exit

"go" in the results is runsc's own gofer (gVisor's Go fsgofer); transport
"directfs" is runsc's default, "lisafs" is --directfs=false.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.sandbox import harness                  # noqa: E402
from tests.sandbox.runsc_build import build        # noqa: E402

WORKLOADS = {"find_cat": 4000, "ls_lr": 4040, "stat_40k": 40000, "create_unlink": 4000,
             "start_true": 1}                     # operations per run, for ops/s
MODES = {"directfs": [], "lisafs": ["--directfs=false"]}
SCRIPT = """set -e
cd /
timeit find_cat sh -c 'find /data/tree -type f | xargs -n 200 cat > /dev/null'
timeit ls_lr sh -c 'ls -lR /data/tree > /dev/null'
timeit stat_40k sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do stat -c %s /data/tree/*/* > /dev/null; done'
timeit create_unlink sh -c 'mkdir /data/scratch && cd /data/scratch && seq 2000 | xargs -n 200 touch && seq 2000 | xargs -n 200 rm && cd / && rmdir /data/scratch'
"""


def missing():
    """Why the sandbox workloads cannot run here, or []."""
    return harness.missing_prerequisites()


def _prepare(tmp, log):
    tmp = Path(tmp)
    timeit = tmp / "timeit"
    r = subprocess.run(["go", "build", "-mod=mod", "-buildvcs=false", "-o", str(timeit),
                        "./bench/peers/timeit"], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, CGO_ENABLED="0"))
    if r.returncode:
        raise RuntimeError("building timeit: " + r.stderr)
    log("building runsc (cached after the first time) ...")
    runsc = harness.Runsc(build())
    data = tmp / "data"
    for d in range(40):
        sub = data / "tree" / ("d%02d" % d)
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / ("f%03d" % f)).write_bytes(b"x" * 100)
    bundles = {}
    template = harness.spec_template(runsc.path)
    for name, args in (("script", ["/bin/sh", "-c", SCRIPT]), ("true", ["/bin/true"])):
        b = tmp / ("bundle-" + name)
        harness.make_rootfs(b / "rootfs")
        if name == "script":
            os.link(timeit, b / "rootfs" / "bin" / "timeit")
        harness.write_bundle(b, template, args, mounts=[harness.bind("/data", data)])
        bundles[name] = b
    return runsc, bundles


def _round_entry(ns, ops, rnd):
    return {"median_ns": ns, "p99_ns": ns, "mean_ns": ns, "ops_per_sec": ops * 1e9 / ns,
            "n": 1, "round": rnd}


def run(prof, tmp, log):
    """{(workload, mode): {"ours"|"go": [round results]}} over prof["rounds"]
    rounds, plus prof["startup_trials"] start_true trials per round."""
    runsc, bundles = _prepare(tmp, log)
    gofers = {"ours": harness.gofer_command(), "go": None}
    raw = {}

    def record(w, mode, name, entry):
        raw.setdefault((w, mode), {}).setdefault(name, []).append(entry)

    for rnd in range(prof["rounds"]):
        order = ["ours", "go"] if rnd % 2 == 0 else ["go", "ours"]
        for mode, flags in MODES.items():
            for name in order:
                res = runsc.run(bundles["script"], flags, gofer=gofers[name], debug=False)
                got = {}
                for line in res.stdout.splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[0] in WORKLOADS and parts[2] == "0":
                        got[parts[0]] = int(parts[1])
                for w in WORKLOADS:
                    if w == "start_true":
                        continue
                    if w in got:
                        record(w, mode, name, _round_entry(got[w], WORKLOADS[w], rnd))
                    else:
                        record(w, mode, name, {"error": "rc=%s %s" % (res.rc, res.stderr[-300:]),
                                               "round": rnd})
                times = []
                for _ in range(prof["startup_trials"]):
                    t0 = time.perf_counter_ns()
                    r = runsc.run(bundles["true"], flags, gofer=gofers[name], debug=False)
                    if r.rc == 0:
                        times.append(time.perf_counter_ns() - t0)
                if times:
                    record("start_true", mode, name,
                           _round_entry(sorted(times)[len(times) // 2], 1, rnd))
                else:
                    record("start_true", mode, name, {"error": "runsc run true failed",
                                                      "round": rnd})
        log("sandbox round %d/%d done" % (rnd + 1, prof["rounds"]))
    return raw


if __name__ == "__main__":
    # A quick look without the rest of side_by_side: one round, printed.
    with tempfile.TemporaryDirectory(prefix="gofer-sbx-") as d:
        out = run({"rounds": 1, "startup_trials": 3}, d, lambda m: print(m, file=sys.stderr))
    for (w, mode), by in sorted(out.items()):
        print(w, mode, {k: v[0].get("median_ns", v[0].get("error")) for k, v in by.items()})
