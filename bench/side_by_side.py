#!/usr/bin/env python3
"""Side-by-side benchmark: our gofer vs gVisor's Go gofer, same Go client, same run.

    python bench/side_by_side.py [--quick] [--out DIR]

Builds bench/peers/refgofer (gVisor's runsc/fsgofer behind a socket) and
bench/peers/loadgen (gVisor's pkg/lisafs client as a load driver) once,
prepares one fixture directory, starts `gofer serve DIR`, `refgofer -root DIR`
and `gofer serve --extension memfs` side by side, and runs every workload over
the socket and over flipcall channels. Servers alternate within each round
(A B A B ..., the order rotating every round) so that drift on a shared
2-core machine hits both alike. Start-up time (spawn until a Mount RPC
succeeds) is measured for both servers the same way.

Needs the bench extra and the memfs example (scripts/bench installs them
into .venv and runs this; elsewhere pip install '.[bench]' ./examples/memfs);
says so before building anything if they are missing.
Writes one JSON file to --out (default: results/ in the data directory,
$XDG_DATA_HOME/gofer/bench or ~/.local/share/gofer/bench, outside the
checkout), prints a table and renders the dashboard (bench/dashboard.py) from
those results and the history committed in bench/results/. Ratios are ours/Go
of the per-round median latency (for metadata_4g: Go's throughput over ours),
the median over rounds of the ratio within a round; below 1.0 means we are
faster. See docs/performance.md.
"""
import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dashboard           # bench/dashboard.py: judges and renders; fails fast without numpy

REPO = Path(__file__).resolve().parents[1]
SCHEMA = 1

WORKLOADS = ["fstat", "walk3", "walkstat", "openat_close", "pread_4k", "pread_1m",
             "pwrite_4k", "pwrite_1m", "getdents_10k", "mkdir_unlink",
             "create_close_unlink", "metadata_4g"]
MEMFS_WORKLOADS = ["fstat", "walk3"]           # the pure-Python extension vs Go's stock backend
THROUGHPUT_WORKLOADS = {"metadata_4g"}         # compared by ops/s, not latency
TRANSPORTS = {"socket": 0, "channels": 2, "channels4": 4}   # loadgen -channels value
# 4 channels only for the 4-goroutine mix (each server grants at most
# clamp(CPUs, 2, 4) channels, so on 2 CPUs both serve it over 2).
ONLY_FOR = {"channels4": THROUGHPUT_WORKLOADS}
# After the rounds, each server takes one connection of these (over channels):
# its peak then is the resident cost of a client sending the largest messages.
LARGE_MESSAGES = "pread_2m,pwrite_2m"

# name -> what it is; "go" is the reference every ratio is taken against.
SERVERS = {
    "ours": "gofer serve DIR (stock host backend)",
    "go": "refgofer -root DIR (gVisor runsc/fsgofer, pkg/lisafs server)",
    "memfs": "gofer serve --extension memfs (pure-Python in-memory extension)",
}

PROFILES = {
    # rounds, timed iterations and time cap per run, warm-up ops, start-up trials
    "full": dict(rounds=5, iterations=20000, duration=1.0, warmup=500, startup_trials=10),
    "quick": dict(rounds=3, iterations=5000, duration=0.4, warmup=200, startup_trials=5),
}

RUN_TIMEOUT = 120          # seconds, hard cap for one loadgen process
SERVER_START_TIMEOUT = 15  # seconds until a server's socket accepts


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ machine

def _cmd_out(argv, cwd=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              cwd=cwd).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_gib = round(int(m.group(1)) / 2**20, 1)
    except (OSError, AttributeError):
        pass
    gvisor = ""
    try:
        m = re.search(r"gvisor\.dev/gvisor (\S+)", (REPO / "go.mod").read_text())
        gvisor = m.group(1) if m else ""
    except OSError:
        pass
    try:
        import gofer
        gofer_info = {"version": gofer.__version__, "path": os.path.dirname(gofer.__file__)}
    except Exception as e:          # still describe the machine if gofer is broken
        gofer_info = {"error": repr(e)}
    return {
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "mem_gib": mem_gib,
        "kernel": platform.release(),
        "os": platform.platform(),
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "go": _cmd_out(["go", "version"]),
        "gvisor_module": gvisor,
        "gofer": gofer_info,
    }


def missing_dependencies(memfs):
    """What this run needs that is not installed, checked before anything is built."""
    missing = []
    if importlib.util.find_spec("gofer") is None:
        missing.append("gofer is not installed in this interpreter (%s)" % sys.executable)
    elif memfs and "memfs" not in {ep.name for ep in importlib.metadata.entry_points(
            group="gofer.extensions")}:
        missing.append("the memfs extension is not installed (or pass --no-memfs)")
    if shutil.which("go") is None:
        missing.append("the `go` toolchain is not on PATH")
    return missing


def git_commit():
    return _cmd_out(["git", "rev-parse", "HEAD"], cwd=REPO) or None


# ------------------------------------------------------------------ build & fixture

def go_build(pkg, out):
    go = shutil.which("go")
    if go is None:
        raise SystemExit("side_by_side: the `go` toolchain is not on PATH")
    r = subprocess.run([go, "build", "-mod=mod", "-buildvcs=false", "-o", str(out), pkg],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit("side_by_side: go build %s failed:\n%s%s" % (pkg, r.stdout, r.stderr))
    return str(out)


def make_fixture(root):
    """The layout loadgen expects (see bench/peers/loadgen/main.go)."""
    root = Path(root)
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c").write_bytes(os.urandom(4096))
    with open(root / "data", "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(8):
            f.write(chunk)
    d = root / "dir10k"
    d.mkdir()
    for i in range(10000):
        os.close(os.open(d / ("f%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "scratch").mkdir()


# ------------------------------------------------------------------ servers

class Server:
    def __init__(self, name, argv, sock, logdir):
        self.name, self.argv, self.sock = name, [str(a) for a in argv], str(sock)
        self.log_path = Path(logdir) / ("%s.log" % name)
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("side_by_side: %s exited (rc=%s):\n%s" % (
                    self.name, self.proc.returncode, self.log()))
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(self.sock)
                    return self
                except OSError:
                    time.sleep(0.02)
        self.stop()
        raise SystemExit("side_by_side: %s did not listen on %s:\n%s" % (
            self.name, self.sock, self.log()))

    def cpu_seconds(self):
        """utime + stime of the server process so far (all threads)."""
        try:
            fields = Path("/proc/%d/stat" % self.proc.pid).read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def rss_kib(self, field="VmRSS"):
        """Resident size now (VmRSS) or at its peak so far (VmHWM)."""
        try:
            m = re.search(r"%s:\s+(\d+)" % field,
                          Path("/proc/%d/status" % self.proc.pid).read_text())
            return int(m.group(1))
        except (OSError, AttributeError):
            return None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# Placement -> (server taskset, driver taskset). "same": driver on the
# servers' CPU; "split": on the other one, so every wake-up crosses vCPUs.
PIN = {"none": ([], []), "same": (["taskset", "-c", "0"], ["taskset", "-c", "0"]),
       "split": (["taskset", "-c", "0"], ["taskset", "-c", "1"])}
PLACEMENTS = {"none": ["none"], "same": ["same"], "split": ["split"], "both": ["same", "split"]}


def run_loadgen(loadgen, server, workload, channels, prof, prepare=False, pin="none"):
    argv = PIN[pin][1] + [
        loadgen, "-socket", server.sock, "-workload", workload, "-channels", str(channels),
        "-iterations", str(prof["iterations"]), "-duration", "%gs" % prof["duration"],
        "-warmup", str(prof["warmup"])]
    if prepare:
        argv.append("-prepare")
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": "loadgen timed out after %ds" % RUN_TIMEOUT}
    cpu1, wall = server.cpu_seconds(), time.monotonic() - t0
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()[-2000:] or "rc=%d" % r.returncode}
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "bad loadgen output: %r" % r.stdout[-500:]}
    if cpu0 is not None and cpu1 is not None:
        # Over the whole connection (setup and warm-up included), at the kernel's
        # tick resolution: how many CPUs the server kept busy while driven.
        res["server_cpu_s"] = round(cpu1 - cpu0, 3)
        res["server_cpu_per_sec"] = round((cpu1 - cpu0) / wall, 3)
        # Per operation, warm-up (at most prof["warmup"] ops) and connection
        # set-up included: a slight overestimate, the same for both servers.
        res["server_cpu_us_per_op"] = round((cpu1 - cpu0) * 1e6 / (res["n"] + prof["warmup"]), 2)
    return res


# ------------------------------------------------------------------ start-up

def _mount_once(path_or_sock, deadline):
    """Connects (retrying every ms until `deadline`) and mounts with our Python client."""
    from gofer.client import Client
    while True:
        if isinstance(path_or_sock, socket.socket):
            s = path_or_sock
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path_or_sock)
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise TimeoutError("no server on %s" % path_or_sock)
                time.sleep(0.001)
                continue
        c = Client(s)               # the Mount RPC
        c.close()
        return


def _has_seccomp():
    """Whether this gofer build can install its seccomp filter (part of a real start)."""
    import importlib.util
    try:
        return importlib.util.find_spec("gofer.seccomp") is not None
    except ImportError:
        return False


def gofer_command():
    """How start-up runs gofer: the `gofer` console script beside this
    interpreter, as an operator or runsc runs it (`python -m gofer` would add
    runpy's imports, a few ms), else `python -m gofer`."""
    script = Path(sys.executable).with_name("gofer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gofer"]


def startup_trial(kind, refgofer, fixture, tmp):
    """Seconds from spawn to the first successful Mount, for one server kind."""
    sock = os.path.join(tmp, "startup-%s.sock" % kind)
    if os.path.exists(sock):
        os.unlink(sock)
    pass_fds, theirs, ours = (), None, None
    if kind == "go":
        argv = [refgofer, "-root", fixture, "-socket", sock]
    elif kind == "ours":
        argv = gofer_command() + ["serve", fixture, "--socket", sock]
    elif kind == "ours_gofer_cmd":
        # Started the way runsc starts its gofer: a spec FD and a socketpair per mount.
        bundle = os.path.join(tmp, "bundle")
        os.makedirs(bundle, exist_ok=True)
        spec = {"ociVersion": "1.0.2", "root": {"path": fixture, "readonly": False},
                "mounts": []}
        Path(bundle, "config.json").write_text(json.dumps(spec))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec_fd = os.open(os.path.join(bundle, "config.json"), os.O_RDONLY)
        pass_fds = (theirs.fileno(), spec_fd)
        argv = gofer_command() + [
            "--log-fd=2", "gofer", "--bundle", bundle, "--spec-fd=%d" % spec_fd,
            "--io-fds=%d" % theirs.fileno(), "--gofer-mount-confs=lisafs:none",
            "--setup-root=false", "--apply-caps=false",
            "--seccomp=%s" % ("kill" if _has_seccomp() else "off"), "bench-container"]
    else:
        raise ValueError(kind)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, pass_fds=pass_fds, cwd="/",
                            start_new_session=True)
    err = None
    try:
        if kind == "ours_gofer_cmd":
            theirs.close()
            os.close(pass_fds[1])
        _mount_once(ours if ours is not None else sock, time.monotonic() + SERVER_START_TIMEOUT)
        elapsed = time.perf_counter() - t0
    except Exception as e:
        elapsed, err = None, repr(e)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if err:
            err += " / stderr: " + stderr.decode(errors="replace")[-1000:]
    return elapsed, err


def measure_startup(refgofer, fixture, tmp, trials):
    kinds = ["ours", "go", "ours_gofer_cmd"]
    times = {k: [] for k in kinds}
    errors = {k: [] for k in kinds}
    for t in range(trials):
        order = kinds if t % 2 == 0 else kinds[::-1]
        for k in order:
            s, err = startup_trial(k, refgofer, fixture, tmp)
            if err:
                errors[k].append(err)
            else:
                times[k].append(s * 1e3)
    out = {}
    for k, v in times.items():
        # Failed trials are counted (the dashboard counts them as a missed target).
        out[k] = {"trials": trials, "failed": len(errors[k])}
        if v:
            out[k].update(median_ms=statistics.median(v), min_ms=min(v), max_ms=max(v),
                          trials_ms=v)
        if errors[k]:
            out[k]["error"] = errors[k][0]
    if "ours_gofer_cmd" in out:
        out["ours_gofer_cmd"]["seccomp"] = _has_seccomp()
    for k in ("ours", "ours_gofer_cmd"):
        if "median_ms" in out.get(k, {}) and "median_ms" in out.get("go", {}):
            out[k]["ratio"] = out[k]["median_ms"] / out["go"]["median_ms"]
    return out


# ------------------------------------------------------------------ statistics

def rel_spread(values):
    """(max - min) / median over rounds: how far apart the rounds were."""
    v = [x for x in values if x]
    if len(v) < 2:
        return 0.0
    m = statistics.median(v)
    return (max(v) - min(v)) / m if m else 0.0


def summarize(workload, rounds_by_server):
    out = {}
    for name, rounds in rounds_by_server.items():
        good = [r for r in rounds if "error" not in r]
        s = {"rounds": rounds}
        if good:
            s.update({
                "median_ns": statistics.median(r["median_ns"] for r in good),
                "p99_ns": statistics.median(r["p99_ns"] for r in good),
                "mean_ns": statistics.median(r["mean_ns"] for r in good),
                "ops_per_sec": statistics.median(r["ops_per_sec"] for r in good),
                "n": sum(r["n"] for r in good),
                # best round: the least disturbed by other load on the machine
                "best_median_ns": min(r["median_ns"] for r in good),
                "best_ops_per_sec": max(r["ops_per_sec"] for r in good),
                "spread": rel_spread([r["ops_per_sec"] if workload in THROUGHPUT_WORKLOADS
                                      else r["median_ns"] for r in good]),
            })
            cpu = [r["server_cpu_per_sec"] for r in good if "server_cpu_per_sec" in r]
            if cpu:
                # CPUs the server kept busy while driven (spinning shows up here).
                s["server_cpus"] = statistics.median(cpu)
                s["cpu_us_per_op"] = statistics.median(
                    r["server_cpu_us_per_op"] for r in good if "server_cpu_us_per_op" in r)
        errs = [r["error"] for r in rounds if "error" in r]
        if errs:
            s["errors"] = errs[:3]
        out[name] = s
    return out


def ratios(workload, rounds_by_server):
    """Per-round ratio vs "go" (time ours / time Go), then the median over rounds;
    the same for server CPU per operation ("cpu_ratio")."""
    go = rounds_by_server.get("go", [])
    res = {}
    for name, rounds in rounds_by_server.items():
        if name == "go":
            continue
        per = []
        for a, b in zip(rounds, go):
            if "error" in a or "error" in b:
                continue
            if workload in THROUGHPUT_WORKLOADS:
                if a["ops_per_sec"]:
                    per.append(b["ops_per_sec"] / a["ops_per_sec"])
            elif b["median_ns"]:
                per.append(a["median_ns"] / b["median_ns"])
        cpu = [a["server_cpu_us_per_op"] / b["server_cpu_us_per_op"] for a, b in zip(rounds, go)
               if b.get("server_cpu_us_per_op") and "server_cpu_us_per_op" in a]
        if per:
            res[name] = {"ratio": statistics.median(per), "per_round": per,
                         "spread": rel_spread(per)}
            if cpu:
                res[name]["cpu_ratio"] = statistics.median(cpu)
            # Best round against best round: a noise-robust second opinion.
            ga = [r for r in rounds if "error" not in r]
            gb = [r for r in go if "error" not in r]
            if ga and gb:
                if workload in THROUGHPUT_WORKLOADS:
                    res[name]["ratio_best"] = max(r["ops_per_sec"] for r in gb) / max(
                        r["ops_per_sec"] for r in ga)
                else:
                    res[name]["ratio_best"] = min(r["median_ns"] for r in ga) / min(
                        r["median_ns"] for r in gb)
    return res


# ------------------------------------------------------------------ table

def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    return "%.1f µs" % (ns / 1e3)


def fmt_ops(x):
    if x is None:
        return "-"
    return "%.0f" % x if x < 1e4 else "%.1fk" % (x / 1e3)


def table(result):
    rows = [("workload", "transport", "ours med", "ours p99", "ours ops/s", "Go med", "Go p99",
             "Go ops/s", "ours/Go", "(best)", "memfs/Go", "(best)", "CPU µs/op ours", "Go",
             "ours/Go")]
    for w in result["workloads"]:
        s = w["servers"]
        o, g = s.get("ours", {}), s.get("go", {})
        r = w["ratio"]
        rows.append((w["workload"], w["transport"] + (
                     "/" + w["placement"] if w.get("placement", "none") != "none" else ""),
                     fmt_ns(o.get("median_ns")),
                     fmt_ns(o.get("p99_ns")), fmt_ops(o.get("ops_per_sec")),
                     fmt_ns(g.get("median_ns")), fmt_ns(g.get("p99_ns")),
                     fmt_ops(g.get("ops_per_sec")),
                     "%.2f" % r["ours"]["ratio"] if "ours" in r else "-",
                     "%.2f" % r["ours"]["ratio_best"] if "ratio_best" in r.get("ours", {}) else "",
                     "%.2f" % r["memfs"]["ratio"] if "memfs" in r else "",
                     "%.2f" % r["memfs"]["ratio_best"] if "ratio_best" in r.get("memfs", {})
                     else "",
                     "%.1f" % o["cpu_us_per_op"] if "cpu_us_per_op" in o else "",
                     "%.1f" % g["cpu_us_per_op"] if "cpu_us_per_op" in g else "",
                     "%.2f" % r["ours"]["cpu_ratio"] if "cpu_ratio" in r.get("ours", {}) else ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    mem = result.get("server_memory_kib") or {}
    if mem:
        lines.append("")
        for k, v in mem.items():
            lines.append("memory %-6s after start %6s KiB, peak %6s KiB, per connection %6s KiB"
                         ", with 2 MiB messages %6s KiB"
                         % (k, v.get("start"), v.get("peak"), v.get("per_connection"),
                            v.get("per_connection_large")))
    st = result.get("startup", {})
    if st:
        lines.append("")
        for k in ("ours", "ours_gofer_cmd", "go"):
            v = st.get(k, {})
            if "median_ms" in v:
                lines.append("start-up %-15s median %7.1f ms (min %.1f)%s" % (
                    k, v["median_ms"], v["min_ms"],
                    "  ratio %.2f" % v["ratio"] if "ratio" in v else ""))
            if v.get("failed"):
                lines.append("start-up %-15s %d of %d trials failed: %s" % (
                    k, v["failed"], v["trials"], v["error"][:200]))
    tg = dashboard.targets(result)
    missed = [t for t in tg if not t["met"]]
    lines.append("")
    lines.append("targets: %d of %d met%s" % (len(tg) - len(missed), len(tg),
                                              "; missed: " + ", ".join(
                                                  "%s %s>%.1f%s" % (
                                                      t["what"], dashboard.fmt_ratio(t["ratio"]),
                                                      t["target"],
                                                      " (%s)" % t["why"] if t["why"] else "")
                                                  for t in missed) if missed else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------ main

def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and shorter runs (~2 min)")
    p.add_argument("--out", default=str(dashboard.data_dir() / "results"),
                   help="directory for the JSON result (default: %(default)s; "
                        "bench/results is the history kept in git)")
    p.add_argument("--workloads", help="comma-separated subset (default: all)")
    p.add_argument("--transports", default="socket,channels,channels4",
                   help="socket,channels,channels4 (channels4: metadata_4g only)")
    p.add_argument("--rounds", type=int, help="override the profile's rounds")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement")
    p.add_argument("--no-memfs", action="store_true", help="skip the memfs extension runs")
    p.add_argument("--no-sandbox", action="store_true",
                   help="skip the in-sandbox workloads (bench/sandbox.py: runsc containers "
                        "with runsc's gofer and ours; they need root, busybox-static and Go)")
    p.add_argument("--pin", choices=sorted(PLACEMENTS), default="none",
                   help="CPU placement (taskset): same = servers and driver on CPU 0, split = "
                        "servers on CPU 0 and the driver on CPU 1, both = every workload in "
                        "each of the two; default: the scheduler's")
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)

    prof = dict(PROFILES["quick" if args.quick else "full"])
    if args.rounds:
        prof["rounds"] = args.rounds
    workloads = args.workloads.split(",") if args.workloads else WORKLOADS
    bad = set(workloads) - set(WORKLOADS)
    if bad:
        p.error("unknown workloads: %s" % ", ".join(sorted(bad)))
    transports = args.transports.split(",")
    missing = missing_dependencies(memfs=not args.no_memfs)
    if missing:
        raise SystemExit("side_by_side: %s.\nInstall what the benchmark needs: %s" % (
            "; ".join(missing), dashboard.INSTALL_HINT))

    started = time.time()
    tmp = tempfile.mkdtemp(prefix="gofer-bench-", dir="/tmp")   # short: sun_path is 108 bytes
    servers = []
    try:
        log("building refgofer and loadgen ...")
        refgofer = go_build("./bench/peers/refgofer", Path(tmp) / "refgofer")
        loadgen = go_build("./bench/peers/loadgen", Path(tmp) / "loadgen")
        fixture = os.path.join(tmp, "fixture")
        os.mkdir(fixture)
        make_fixture(fixture)
        fixture = os.path.realpath(fixture)

        placements = PLACEMENTS[args.pin]
        pin = PIN[placements[0]][0]           # the servers' CPU is the same in every placement
        srv = {
            "ours": Server("ours", pin + [sys.executable, "-m", "gofer", "serve", fixture,
                                          "--socket", Path(tmp) / "ours.sock"],
                           Path(tmp) / "ours.sock", tmp),
            "go": Server("go", pin + [refgofer, "-root", fixture, "-socket", Path(tmp) / "go.sock"],
                         Path(tmp) / "go.sock", tmp),
        }
        if not args.no_memfs:
            srv["memfs"] = Server("memfs", pin + [sys.executable, "-m", "gofer", "serve",
                                                  "--extension", "memfs",
                                                  "--socket", Path(tmp) / "memfs.sock"],
                                  Path(tmp) / "memfs.sock", tmp)
        for s in srv.values():
            servers.append(s.start())
        rss_start = {name: s.rss_kib() for name, s in srv.items()}

        raw = {}    # (workload, transport) -> server -> [round results]
        plan = []
        for w in workloads:
            for t in transports:
                if w not in ONLY_FOR.get(t, WORKLOADS):
                    continue
                names = ["ours", "go"] + (["memfs"] if w in MEMFS_WORKLOADS and "memfs" in srv
                                          else [])
                for placement in placements:
                    plan.append((w, t, placement, names))
        total = prof["rounds"] * sum(len(p[-1]) for p in plan)
        done = 0
        for rnd in range(prof["rounds"]):
            for w, t, placement, names in plan:
                # A B A B ...: rotate who goes first every round.
                k = rnd % len(names)
                for name in names[k:] + names[:k]:
                    r = run_loadgen(loadgen, srv[name], w, TRANSPORTS[t], prof,
                                    prepare=(name == "memfs"), pin=placement)
                    r["round"] = rnd
                    raw.setdefault((w, t, placement), {}).setdefault(name, []).append(r)
                    done += 1
                    if "error" in r:
                        log("  %s %s %s round %d: ERROR %s" % (name, w, t, rnd, r["error"][:300]))
            log("round %d/%d done (%d/%d runs, %.0fs)" % (rnd + 1, prof["rounds"], done, total,
                                                         time.time() - started))
        # One connection at a time ran (with up to TRANSPORTS["channels"]
        # channels and 1 MiB messages): the peak over the start is what the
        # costliest connection took.
        memory = {}
        for name, s in srv.items():
            start, peak = rss_start[name], s.rss_kib("VmHWM")
            memory[name] = {"start": start, "peak": peak, "end": s.rss_kib(),
                            "per_connection": peak - start if start and peak else None}
        log("memory under %s ..." % LARGE_MESSAGES)
        for name, s in srv.items():
            r = run_loadgen(loadgen, s, LARGE_MESSAGES, TRANSPORTS["channels"], prof,
                            prepare=(name == "memfs"))
            peak = s.rss_kib("VmHWM")
            m = memory[name]
            m["peak_large"] = peak
            m["per_connection_large"] = peak - m["start"] if m["start"] and peak else None
            if "error" in r:
                m["large_error"] = r["error"][:300]
        load_end = list(os.getloadavg())
        for s in servers:
            s.stop()
        servers = []

        sandbox_raw, sandbox_skipped = {}, "--no-sandbox"
        if not args.no_sandbox:
            import sandbox                  # bench/sandbox.py
            sandbox_skipped = "; ".join(sandbox.missing()) or None
            if sandbox_skipped:
                log("in-sandbox workloads skipped, this machine lacks: " + sandbox_skipped)
            else:
                log("in-sandbox workloads (runsc containers) ...")
                sandbox_raw = sandbox.run(prof, tmp, log)

        startup = {}
        if not args.no_startup:
            log("start-up trials ...")
            startup = measure_startup(refgofer, fixture, tmp, prof["startup_trials"])

        result = {
            "schema": SCHEMA,
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "profile": "quick" if args.quick else "full",
            "config": dict(prof, transports=transports, channels=TRANSPORTS["channels"],
                           pin=args.pin),
            "machine": machine_info(),
            "servers": {k: SERVERS[k] for k in srv},
            "server_memory_kib": memory,
            "loadavg_end": load_end,
            "workloads": [],
            "startup": startup,
            "elapsed_s": None,
        }
        for w, t, placement, names in plan:
            rb = raw[(w, t, placement)]
            result["workloads"].append({
                "workload": w, "transport": t, "placement": placement,
                "key": "%s/%s" % (w, t) + ("" if placement == "none" else "/" + placement),
                "metric": "ops_per_sec" if w in THROUGHPUT_WORKLOADS else "median_ns",
                "servers": summarize(w, rb),
                "ratio": ratios(w, rb),
            })
        for (w, mode), rb in sorted(sandbox_raw.items()):
            name = "sandbox_" + w
            result["workloads"].append({
                "workload": name, "transport": mode, "key": "%s/%s" % (name, mode),
                "metric": "median_ns", "servers": summarize(name, rb), "ratio": ratios(name, rb),
            })
        result["sandbox_skipped"] = sandbox_skipped
        result["targets"] = dashboard.targets(result)
        result["elapsed_s"] = round(time.time() - started, 1)

        os.makedirs(args.out, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        commit = (result["commit"] or "nocommit")[:10]
        suffix = ("-quick" if args.quick else "") + (
            "" if args.pin == "none" else "-pin" + args.pin)
        path = Path(args.out) / ("%s-%s%s.json" % (stamp, commit, suffix))
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(table(result))
        print("\nwrote %s (%.0fs)" % (path, result["elapsed_s"]))
        dashboard.main(["--results", args.out, "--results", str(dashboard.HISTORY)])
        return 0
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
