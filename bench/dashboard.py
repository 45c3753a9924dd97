#!/usr/bin/env python3
"""Renders the benchmark history as one static, self-contained HTML page.

    python bench/dashboard.py [--results DIR ...] [--out FILE]

Reads every side_by_side.py result (*.json, schema 1) in the --results
directories, by default the local results (results/ under the data directory,
$XDG_DATA_HOME/gofer/bench or ~/.local/share/gofer/bench) and the history
committed in bench/results/, and writes dashboard.html into the data directory.
The page has no external resources (inline SVG, inline CSS, no script): the
runs with their version, machine and profile; the newest run's table with
ratios to gVisor's Go gofer and the start-up times; the changes since the
newest comparable run; and for each workload a chart of median latency and
one of the ratio to Go with its target.

This module is also where results are judged (side_by_side.py uses it):

- A target whose measurement failed (a loadgen error in any round, a failed
  start-up trial, no ratio at all) is missed, never left out of the count.
- Runs are compared only with runs from the same machine (CPU model, CPU
  count, kernel) and profile (quick or full, pinning); the newest run is
  compared with the newest earlier such run, which the page names.
- Ours and memfs are judged on their ratio to Go: a move that Go made too is
  the machine, not us. Go's own moves are listed as the baseline moving, never
  as a regression. A change counts only beyond max(10%, 3 x the relative
  spread between the rounds of either run): smaller moves are noise on a
  shared 2-core machine.
"""
import argparse
import html
import json
import math
import os
import sys
from pathlib import Path

INSTALL_HINT = ("scripts/bench installs them into .venv "
                "(or pip install '.[bench]' ./examples/memfs)")
try:
    import numpy as np
except ImportError as e:
    raise SystemExit("bench: %s; the benchmark's dependencies come with the bench extra: %s"
                     % (e, INSTALL_HINT))

REPO = Path(__file__).resolve().parents[1]
HISTORY = REPO / "bench" / "results"     # committed runs of the project's reference machine
MIN_CHANGE = 0.10          # never flag less than 10%
SPREAD_FACTOR = 3.0        # ... nor less than 3x the spread between rounds
# Targets, ours / Go in the same run (issue 13; docs/performance.md).
SMALL_RPCS = {"fstat", "walk3", "walkstat", "openat_close", "pread_4k", "pwrite_4k",
              "mkdir_unlink", "create_close_unlink"}
STARTUP_TARGET = 6.0
CPU_TARGET = 1.0           # server CPU per operation
MEMORY_TARGET = 1.0        # resident memory per connection
# (server_memory_kib field, target name): the workloads' traffic, then 2 MiB messages
MEMORY_FIGURES = (("per_connection", "memory per connection ours"),
                  ("per_connection_large", "memory per connection with 2 MiB messages ours"))


def latency_target(server, workload):
    """The latency target of a workload (for metadata_4g: Go's ops/s over ours)."""
    if server == "memfs":
        return 2.0             # the pure-Python extension
    if workload in SMALL_RPCS:
        return 0.8
    if workload in ("pread_1m", "pwrite_1m"):
        return 0.9
    if workload == "metadata_4g":
        return 0.77            # at least 1.3x Go's throughput
    return 1.0

# One meaning per colour: series colours are never status colours.
SERIES = {"ours": "#0072b2", "go": "#6a3d9a", "memfs": "#e69f00"}   # blue, purple, orange
STATUS = {"good": "#1a7f37",        # target met, got better
          "bad": "#c62828",         # target missed, got worse, failed
          "neutral": "#6e6e6e"}     # not compared (other machine/profile), Go's baseline moved
GUIDE = "#222222"                   # target lines in the ratio charts
LABELS = {"ours": "gofer (stock)", "go": "Go fsgofer", "memfs": "gofer memfs"}


def data_dir():
    """Where runs are kept unless asked otherwise: outside any checkout."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "gofer" / "bench"


# ------------------------------------------------------------------ loading

def load_results(folders):
    """Valid result dicts from `folders`, oldest first; bad files are reported and
    skipped, and a file name seen in an earlier folder is not read again."""
    runs, seen, done = [], set(), set()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir() or folder.resolve() in done:
            continue
        done.add(folder.resolve())
        source = "committed" if folder.resolve() == HISTORY.resolve() else str(folder)
        for p in sorted(folder.glob("*.json")):
            if p.name in seen:
                continue
            try:
                r = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                print("dashboard: skipping %s: %s" % (p, e), file=sys.stderr)
                continue
            if not isinstance(r, dict) or r.get("schema") != 1 \
                    or not isinstance(r.get("workloads"), list):
                print("dashboard: skipping %s: not a schema-1 side_by_side result" % p,
                      file=sys.stderr)
                continue
            seen.add(p.name)
            r["_file"], r["_source"] = p.name, source
            runs.append(r)
    runs.sort(key=lambda r: (r.get("timestamp") or "", r["_file"]))
    return runs


def version(r):
    return (r.get("machine", {}).get("gofer") or {}).get("version") or "?"


def run_label(r):
    commit = (r.get("commit") or "?")[:7]
    ts = (r.get("timestamp") or "")[:16].replace("T", " ")
    return "%s %s, gofer %s, %s" % (commit, ts, version(r), profile(r))


def by_key(run):
    return {w["key"]: w for w in run["workloads"] if "key" in w}


def metric_value(w, server):
    """The number compared over time: median latency, or ops/s for throughput workloads."""
    s = w.get("servers", {}).get(server, {})
    return s.get(w.get("metric", "median_ns"))


# ------------------------------------------------------------------ which runs compare

def machine(r):
    m = r.get("machine") or {}
    return (m.get("cpu_model") or "?", m.get("nproc"), m.get("kernel") or "?")


def describe_machine(r):
    return "%s, %s CPUs, kernel %s" % machine(r)


def profile(r):
    p = r.get("profile") or "?"
    pin = (r.get("config") or {}).get("pin") or "none"
    return p if pin == "none" else "%s, pinned %s" % (p, pin)


def differences(r, ref):
    """Why run `r` is not comparable with `ref`: [] when it is."""
    out = []
    if machine(r) != machine(ref):
        out.append("another machine")
    if profile(r) != profile(ref):
        out.append("%s profile" % profile(r))
    return out


def baseline(runs):
    """The newest earlier run comparable with the newest one, or None."""
    for r in reversed(runs[:-1]):
        if not differences(r, runs[-1]):
            return r
    return None


# ------------------------------------------------------------------ targets

def met(ratio, target):
    """Judged as printed, to two decimals: 1.004 meets a 1.0 target."""
    return ratio is not None and round(ratio, 2) <= target


def _failed_trials(v):
    """Failed start-up trials; results before the count was kept recorded the
    first error only (so: at least one)."""
    return v.get("failed", 1 if "error" in v else 0)


def targets(run):
    """Every target of a run: {what, ratio, target, met, why}. A failed measurement
    is a miss with its reason, never dropped."""
    out = []
    for w in run.get("workloads", []):
        for name in ("ours", "memfs"):
            s = w.get("servers", {}).get(name)
            if s is None:
                continue
            ratio = ((w.get("ratio") or {}).get(name) or {}).get("ratio")
            rounds = s.get("rounds") or []
            failed = sum(1 for x in rounds if "error" in x) or len(s.get("errors") or [])
            why = ("%d of %d rounds failed" % (failed, max(len(rounds), failed)) if failed
                   else "no ratio to Go" if ratio is None else "")
            target = latency_target(name, w.get("workload"))
            out.append({"what": "%s %s" % (name, w.get("key")), "ratio": ratio,
                        "target": target, "met": not why and met(ratio, target), "why": why})
            cpu = ((w.get("ratio") or {}).get(name) or {}).get("cpu_ratio")
            if name == "ours" and cpu is not None:
                out.append({"what": "cpu %s %s" % (name, w.get("key")), "ratio": cpu,
                            "target": CPU_TARGET, "met": not why and met(cpu, CPU_TARGET),
                            "why": why})
    mem = run.get("server_memory_kib") or {}
    for field, what in MEMORY_FIGURES:
        ours, go = (mem.get(k, {}).get(field) for k in ("ours", "go"))
        if ours is not None and go:
            out.append({"what": what, "ratio": ours / go, "target": MEMORY_TARGET,
                        "met": met(ours / go, MEMORY_TARGET), "why": ""})
    st = run.get("startup") or {}
    if st:                                     # measured (not --no-startup)
        go_failed = _failed_trials(st.get("go") or {})
        for k in ("ours", "ours_gofer_cmd"):
            v = st.get(k) or {}
            failed, ratio = _failed_trials(v), v.get("ratio")
            why = []
            if failed:
                why.append("%d start-up trial%s failed" % (failed, "" if failed == 1 else "s"))
            if go_failed:
                why.append("Go's failed %d" % go_failed)
            if ratio is None and not why:
                why.append("no ratio to Go")
            out.append({"what": "startup " + k, "ratio": ratio, "target": STARTUP_TARGET,
                        "met": not why and met(ratio, STARTUP_TARGET),
                        "why": "; ".join(why)})
    return out


# ------------------------------------------------------------------ changes

def _threshold(*spreads):
    return max(MIN_CHANGE, SPREAD_FACTOR * max([s or 0.0 for s in spreads] + [0.0]))


def compare(prev, new):
    """The changes from `prev` to `new` (two comparable runs) beyond the noise
    threshold: rows {key, server, what, old, new, change, threshold, kind, note},
    `change` > 0 is worse. Ours and memfs are judged on their ratio to Go, on
    their own time only where a run has no ratio; Go's own moves are kind
    "baseline", never a regression of ours."""
    rows = []
    old_w = by_key(prev)
    for key, nw in by_key(new).items():
        ow = old_w.get(key)
        if ow is None:
            continue
        metric = nw.get("metric", "median_ns")
        moves = {}          # server -> (old, new, change, threshold) of its own metric
        for server in nw.get("servers", {}):
            a, b = metric_value(ow, server), metric_value(nw, server)
            if a and b:
                c = (a / b - 1.0) if metric == "ops_per_sec" else (b / a - 1.0)
                moves[server] = (a, b, c, _threshold(
                    ow["servers"].get(server, {}).get("spread"),
                    nw["servers"][server].get("spread")))

        def add(server, what, old, new_, c, t, kind=None, note=""):
            if abs(c) > t:
                rows.append(dict(key=key, server=server, what=what, old=old, new=new_,
                                 change=c, threshold=t, note=note,
                                 kind=kind or ("regression" if c > 0 else "improvement")))

        for server in ("ours", "memfs"):
            ro = (ow.get("ratio") or {}).get(server)
            rn = (nw.get("ratio") or {}).get(server)
            if ro and rn:
                note = ", ".join("%s %+.0f%%" % (LABELS[s], 100 * moves[s][2])
                                 for s in (server, "go") if s in moves)
                add(server, "ratio", ro["ratio"], rn["ratio"], rn["ratio"] / ro["ratio"] - 1.0,
                    _threshold(ro.get("spread"), rn.get("spread")), note=note)
            elif server in moves:
                add(server, metric, *moves[server],
                    note="no ratio to Go in one of the runs: judged on its own time")
        if "go" in moves:
            add("go", metric, *moves["go"], kind="baseline",
                note="Go's own time moved; a change of ours shows in the ratio")
    order = {"regression": 0, "improvement": 1, "baseline": 2}
    rows.sort(key=lambda r: (order[r["kind"]], -abs(r["change"])))
    return rows


# ------------------------------------------------------------------ formatting

def esc(s):
    return html.escape(str(s), quote=True)


def fmt_ns(ns):
    if ns is None:
        return "–"
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    return "%.1f µs" % (ns / 1e3)


def fmt_ops(x):
    if x is None:
        return "–"
    return "%.0f" % x if x < 1e4 else "%.1fk" % (x / 1e3)


def fmt_ratio(x):
    return "–" if x is None else "%.2f" % x


def fmt_metric(what, v):
    if what == "ratio":
        return fmt_ratio(v)
    if what == "ops_per_sec":
        return fmt_ops(v) + " ops/s"
    return fmt_ns(v)


def nice_step(v):
    """A round number (1, 2, 2.5 or 5 x 10^k) >= v: the gap between grid lines."""
    if v <= 0 or not math.isfinite(v):
        return 0.25
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag * (1 + 1e-9):
            return m * mag
    return 10 * mag


# ------------------------------------------------------------------ SVG

def svg_chart(kind, title, runs, series, fmt, guides=(), width=460, height=200):
    """A line chart over `runs`. series: {name: [value or None per run]};
    guides: [(y, label)]. Lines join only runs from the same machine and profile;
    points of runs not comparable with the newest are drawn hollow."""
    left, right, top, bottom = 62, 12, 22, 28
    pw, ph = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    values += [g for g, _ in guides]
    ymax = 4 * nice_step((max(values) * 1.05 if values else 1.0) / 4)
    n = len(runs)
    other = [bool(differences(r, runs[-1])) for r in runs]
    setups = [(machine(r), profile(r)) for r in runs]

    def x(i):
        return left + (pw * (i + 0.5) / n if n else 0)

    def y(v):
        return top + ph - ph * v / ymax

    out = ['<svg class="chart %s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" role="img" aria-label="%s">' % (kind, width, height, width, height,
                                                                 esc(title))]
    out.append('<text class="title" x="%d" y="14">%s</text>' % (left, esc(title)))
    for k in range(5):                                   # grid and y ticks
        v = ymax * k / 4
        out.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (
            left, left + pw, y(v), y(v)))
        out.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>' % (
            left - 4, y(v) + 4, esc(fmt(v))))
    for g, label in guides:
        out.append('<line class="guide" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (
            left, left + pw, y(g), y(g)))
        out.append('<text class="guide-label" x="%d" y="%.1f" text-anchor="end">%s</text>' % (
            left + pw, y(g) - 3, esc(label)))
    step = max(1, math.ceil(n / 8))                      # x labels: at most ~8
    for i in range(n):
        if i % step == 0 or i == n - 1:
            out.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">#%d</text>' % (
                x(i), height - 10, i + 1))
    for name, vs in series.items():
        color = SERIES.get(name, "#555")
        segment = []                                     # one polyline per run of equal setups
        for i, v in enumerate(vs + [None]):
            if segment and (i == n or setups[i] != setups[segment[-1][0]]):
                if len(segment) > 1:
                    out.append('<polyline class="series %s" fill="none" stroke="%s" '
                               'stroke-width="2" points="%s"/>' % (
                                   name, color,
                                   " ".join("%.1f,%.1f" % (x(j), y(u)) for j, u in segment)))
                segment = []
            if i < n and v is not None:
                segment.append((i, v))
        for i, v in enumerate(vs):
            if v is not None:
                out.append('<circle class="point %s%s" cx="%.1f" cy="%.1f" r="3" fill="%s" '
                           'stroke="%s"><title>#%d %s — %s: %s%s</title></circle>' % (
                               name, " other" if other[i] else "", x(i), y(v),
                               "#ffffff" if other[i] else color, color, i + 1,
                               esc(run_label(runs[i])), esc(LABELS.get(name, name)),
                               esc(fmt(v)),
                               esc(" (%s: not compared)" % ", ".join(
                                   differences(runs[i], runs[-1]))) if other[i] else ""))
    out.append('<rect class="frame" x="%d" y="%d" width="%d" height="%d" fill="none"/>' % (
        left, top, pw, ph))
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ page

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:0 0 6px} .meta{color:#666}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f0f0f0}
td.l,th.l{text-align:left}
.ok,.improvement b{color:%(good)s;font-weight:600} .miss,.regression b{color:%(bad)s;font-weight:600}
.baseline,.other,.neutral{color:%(neutral)s}
.grid-wl{display:flex;flex-wrap:wrap;gap:16px}
section.workload{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px}
svg.chart{display:block;margin:4px 0} svg .title{font-size:12px;font-weight:600;fill:#333}
svg .tick{font-size:10px;fill:#666} svg .grid{stroke:#eee} svg .frame{stroke:#bbb}
svg .guide{stroke:%(guide)s;stroke-dasharray:5 4} svg .guide-label{font-size:10px;fill:%(guide)s}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}
""" % dict(STATUS, guide=GUIDE)


def runs_table(runs):
    """Every run, newest first: its version, machine and profile, and whether it
    is comparable with the newest."""
    base = baseline(runs)
    rows = ['<tr><th>#</th><th class="l">gofer</th><th class="l">commit</th><th class="l">when'
            '</th><th class="l">profile</th><th class="l">machine</th><th class="l">file</th>'
            '<th class="l">compared with the newest</th></tr>']
    for i in range(len(runs) - 1, -1, -1):
        r = runs[i]
        diff = differences(r, runs[-1])
        status = ("newest" if i == len(runs) - 1 else
                  "; ".join(diff) + ": not compared" if diff else
                  "compared (the newest comparable run)" if r is base else "comparable")
        rows.append('<tr class="run%s" data-file="%s"><td>%d</td><td class="l">%s</td>'
                    '<td class="l">%s</td><td class="l">%s</td><td class="l">%s</td>'
                    '<td class="l">%s</td><td class="l" title="%s">%s</td>'
                    '<td class="l">%s</td></tr>' % (
                        " other" if diff else "", esc(r["_file"]), i + 1, esc(version(r)),
                        esc((r.get("commit") or "?")[:10]),
                        esc((r.get("timestamp") or "")[:16].replace("T", " ")),
                        esc(profile(r)), esc(describe_machine(r)), esc(r["_source"]),
                        esc(r["_file"] + (" (committed)" if r["_source"] == "committed" else "")),
                        esc(status)))
    return '<table id="runs">%s</table>' % "".join(rows)


def current_table(run):
    judged = {t["what"]: t for t in targets(run)}
    servers = [s for s in ("ours", "go", "memfs")
               if any(s in w.get("servers", {}) for w in run["workloads"])]
    head = ['<th class="l">workload</th><th class="l">transport</th>']
    for s in servers:
        head.append('<th>%s median</th><th>%s p99</th><th>%s ops/s</th>' % ((esc(LABELS[s]),) * 3))
    head += ["<th>%s / Go</th>" % esc(LABELS[s]) for s in servers if s != "go"]
    head.append("<th>server CPU µs/op, %s / Go</th><th>CPU / Go</th>" % esc(LABELS["ours"]))
    rows = ["<tr>%s</tr>" % "".join(head)]
    for w in run["workloads"]:
        cells = ['<td class="l">%s</td><td class="l">%s</td>' % (esc(w["workload"]),
                                                                esc(w["transport"]))]
        for s in servers:
            d = w.get("servers", {}).get(s, {})
            if d.get("errors") and "median_ns" not in d:
                cells.append('<td colspan="3" class="miss">error</td>')
                continue
            cells.append("<td>%s</td><td>%s</td><td>%s</td>" % (
                fmt_ns(d.get("median_ns")), fmt_ns(d.get("p99_ns")), fmt_ops(d.get("ops_per_sec"))))
        for s in servers:
            t = judged.get("%s %s" % (s, w.get("key")))
            if s == "go":
                continue
            if t is None:
                cells.append("<td></td>")
                continue
            r = w.get("ratio", {}).get(s) or {}
            best = " (best round vs best round: %.2f)" % r["ratio_best"] \
                if "ratio_best" in r else ""
            cells.append('<td class="ratio %s" title="target ≤ %.1f; rounds %s%s%s">%s</td>' % (
                "ok" if t["met"] else "miss", t["target"],
                esc(", ".join("%.2f" % v for v in r.get("per_round", []))), esc(best),
                esc("; " + t["why"] if t["why"] else ""),
                esc(fmt_ratio(t["ratio"]) + (" ✗ " + t["why"] if t["why"] else ""))))
        cpu = [w.get("servers", {}).get(s, {}).get("cpu_us_per_op") for s in ("ours", "go")]
        cells.append("<td>%s</td>" % (" / ".join("%.1f" % c for c in cpu)
                                      if None not in cpu else ""))
        t = judged.get("cpu ours %s" % w.get("key"))
        cells.append("<td></td>" if t is None else '<td class="ratio %s">%s</td>' % (
            "ok" if t["met"] else "miss", esc(fmt_ratio(t["ratio"]))))
        rows.append('<tr class="row" data-key="%s">%s</tr>' % (esc(w["key"]), "".join(cells)))
    return '<table id="current">%s</table>' % "".join(rows)


def startup_table(run):
    st = run.get("startup") or {}
    if not st:
        return "<p>No start-up measurement in this run.</p>"
    judged = {t["what"]: t for t in targets(run)}
    rows = ['<tr><th class="l">server</th><th>median</th><th>min</th><th>max</th>'
            '<th>failed trials</th><th>ratio to Go</th></tr>']
    names = {"ours": "gofer serve", "ours_gofer_cmd": "gofer gofer (runsc-style)",
             "go": "Go refgofer"}
    for k in ("ours", "ours_gofer_cmd", "go"):
        v = st.get(k) or {}
        failed = _failed_trials(v)
        trials = v.get("trials", len(v.get("trials_ms", [])) + failed)
        fcell = '<td class="%s" title="%s">%d of %d</td>' % (
            "miss" if failed else "", esc(v.get("error", "")[:300]), failed, trials)
        t = judged.get("startup " + k)
        rcell = "" if t is None else '<span class="%s" title="%s">%s</span>' % (
            "ok" if t["met"] else "miss", esc(t["why"]), esc(fmt_ratio(t["ratio"])))
        if "median_ms" not in v:
            rows.append('<tr data-kind="%s"><td class="l">%s</td><td colspan="3" class="miss">'
                        '%s</td>%s<td>%s</td></tr>' % (
                            k, esc(names[k]), esc(v.get("error", "not measured"))[:200], fcell,
                            rcell))
            continue
        rows.append('<tr data-kind="%s"><td class="l">%s</td><td>%.1f ms</td><td>%.1f ms</td>'
                    '<td>%.1f ms</td>%s<td>%s</td></tr>' % (
                        k, esc(names[k]), v["median_ms"], v["min_ms"], v["max_ms"], fcell, rcell))
    return '<table id="startup">%s</table>' % "".join(rows)


def memory_table(run):
    mem = run.get("server_memory_kib") or {}
    if not mem:
        return "<p>No memory measurement in this run.</p>"
    judged = {t["what"]: t for t in targets(run)}
    rows = ['<tr><th class="l">server</th><th>after start</th><th>peak</th>'
            '<th>per connection (peak − start)</th><th>per connection, 2 MiB messages</th></tr>']
    for k, v in mem.items():
        rows.append('<tr><td class="l">%s</td>%s</tr>' % (esc(LABELS.get(k, k)), "".join(
            "<td>%s</td>" % ("%.1f MiB" % (v[f] / 1024) if v.get(f) is not None else "-")
            for f in ("start", "peak", "per_connection", "per_connection_large"))))
    notes = []
    for _, what in MEMORY_FIGURES:
        t = judged.get(what)
        if t is not None:
            notes.append('%s / Go: <span class="%s">%s</span>' % (
                esc(what[len("memory "):-len(" ours")]), "ok" if t["met"] else "miss",
                esc(fmt_ratio(t["ratio"]))))
    note = "<p>%s (target ≤ %.1f)</p>" % ("; ".join(notes), MEMORY_TARGET) if notes else ""
    return '<table id="memory">%s</table>%s' % ("".join(rows), note)


def changes_html(runs):
    new = runs[-1]
    if len(runs) < 2:
        return '<p id="compared-with">Only one run so far: nothing to compare.</p>'
    base = baseline(runs)
    if base is None:
        return ('<p id="compared-with" class="neutral">No earlier run on this machine (%s) with '
                'the %s profile: nothing compared. The %d earlier run%s differ (see Runs).</p>'
                % (esc(describe_machine(new)), esc(profile(new)), len(runs) - 1,
                   "" if len(runs) == 2 else "s"))
    skipped = len(runs) - 2 - runs.index(base)
    intro = ('<p id="compared-with" data-file="%s">The newest run (%s) compared with %s, the '
             'newest earlier run on the same machine (%s) with the same profile%s. A change is '
             'listed when it exceeds max(%d%%, %g× the spread between rounds); ours and memfs '
             'are judged on their ratio to Go.</p>' % (
                 esc(base["_file"]), esc(run_label(new)), esc(run_label(base)),
                 esc(describe_machine(new)),
                 "; %d newer run%s from another machine or profile not compared" % (
                     skipped, "" if skipped == 1 else "s") if skipped else "",
                 MIN_CHANGE * 100, SPREAD_FACTOR))
    rows = compare(base, new)
    if not rows:
        return intro + '<ul id="regressions"><li class="none">No change beyond the noise ' \
                       'threshold.</li></ul>'
    items = []
    for r in rows:
        items.append('<li class="%s" data-key="%s" data-server="%s"><b>%s</b> %s %s (%s): '
                     '%s → %s (%+.0f%%, threshold %.0f%%)%s</li>' % (
                         r["kind"], esc(r["key"]), esc(r["server"]), esc(r["kind"]),
                         esc(r["key"]), esc(LABELS.get(r["server"], r["server"])), esc(r["what"]),
                         esc(fmt_metric(r["what"], r["old"])), esc(fmt_metric(r["what"], r["new"])),
                         100 * r["change"], 100 * r["threshold"],
                         esc("; " + r["note"]) if r["note"] else ""))
    return intro + '<ul id="regressions">%s</ul>' % "".join(items)


def workload_sections(runs):
    keys = []
    for r in runs:
        for w in r["workloads"]:
            if w.get("key") and w["key"] not in keys:
                keys.append(w["key"])
    idx = [by_key(r) for r in runs]
    judged = {t["what"]: t for t in targets(runs[-1])}
    out = []
    for key in keys:
        ws = [i.get(key) for i in idx]
        metric = next((w.get("metric") for w in ws if w), "median_ns")
        servers = [s for s in ("ours", "go", "memfs") if any(w and s in w.get("servers", {})
                                                            for w in ws)]
        lat = {s: [metric_value(w, s) if w else None for w in ws] for s in servers}
        fmt = fmt_ops if metric == "ops_per_sec" else fmt_ns
        what = "throughput (ops/s, higher is better)" if metric == "ops_per_sec" \
            else "median latency"
        c1 = svg_chart("latency", "%s: %s" % (key, what), runs, lat, fmt)
        rat = {s: [(w.get("ratio", {}).get(s) or {}).get("ratio") if w else None for w in ws]
               for s in servers if s != "go"}
        wl = next((w.get("workload") for w in ws if w), None)
        guides = [(latency_target(s, wl), "target %s ≤ %.2f" % (s, latency_target(s, wl)))
                  for s in rat]
        c2 = svg_chart("ratio", "%s: ratio to Go (lower is better)" % key, runs, rat,
                       lambda v: "%.2f" % v, guides=guides)
        cpu = {s: [(w.get("servers", {}).get(s) or {}).get("cpu_us_per_op") if w else None
                   for w in ws] for s in servers}
        c3 = svg_chart("cpu", "%s: server CPU µs per operation" % key, runs, cpu,
                       lambda v: "%.1f µs" % v) if any(v for vs in cpu.values() for v in vs) \
            else ""
        bits = []
        for s in rat:
            t = judged.get("%s %s" % (s, key))
            if t:
                bits.append('%s/Go <span class="%s">%s</span>' % (
                    esc(LABELS[s]), "ok" if t["met"] else "miss", esc(fmt_ratio(t["ratio"]))))
        note = "<p>newest: %s</p>" % ", ".join(bits) if bits else ""
        out.append('<section class="workload" id="wl-%s"><h3>%s</h3>%s%s%s%s</section>' % (
            esc(key.replace("/", "-")), esc(key), c1, c2, c3, note))
    return '<div class="grid-wl">%s</div>' % "".join(out)


def render(runs):
    if not runs:
        body = "<h1>gofer benchmarks</h1><p>No results yet: run " \
               "<code>python bench/side_by_side.py</code>.</p>"
        return "<!doctype html><html><head><meta charset='utf-8'><title>gofer benchmarks" \
               "</title><style>%s</style></head><body>%s</body></html>" % (CSS, body)
    new = runs[-1]
    m = new.get("machine", {})
    tg = targets(new)
    missed = [t for t in tg if not t["met"]]
    ours = np.array([w["ratio"]["ours"]["ratio"] for w in new["workloads"]
                     if "ours" in w.get("ratio", {})], dtype=float)
    geo = float(np.exp(np.mean(np.log(ours)))) if ours.size else float("nan")
    legend = "".join('<span><i style="background:%s"></i>%s</span>' % (SERIES[s], esc(LABELS[s]))
                     for s in ("ours", "go", "memfs"))
    status_key = ('<span class="ok">green</span>: target met or better; '
                  '<span class="miss">red</span>: target missed, worse or failed; '
                  '<span class="neutral">grey</span>: not compared, or Go\'s baseline moved. '
                  'Hollow points: runs from another machine or profile than the newest; lines '
                  'join only runs from the same machine and profile.')
    parts = [
        "<h1>gofer vs gVisor's Go gofer</h1>",
        '<p class="meta" id="runinfo">%d run%s; newest: #%d, gofer %s, commit %s, %s, %s '
        'profile — %s, Python %s, %s</p>' % (
            len(runs), "" if len(runs) == 1 else "s", len(runs), esc(version(new)),
            esc((new.get("commit") or "?")[:10]), esc((new.get("timestamp") or "")[:16]),
            esc(profile(new)), esc(describe_machine(new)), esc(m.get("python", "?")),
            esc(m.get("go", "?"))),
        '<p id="summary">Targets met: <b>%d of %d</b>. Geometric mean of ours/Go over all '
        'workloads: <b>%.2f</b>.%s</p>' % (
            len(tg) - len(missed), len(tg), geo,
            (" Missed: " + ", ".join('<span class="miss">%s %s%s</span>' % (
                esc(t["what"]), esc(fmt_ratio(t["ratio"])),
                esc(" (%s)" % t["why"] if t["why"] else "")) for t in missed)) if missed else ""),
        '<p class="legend">%s</p>' % status_key,
        "<h2>Newest run</h2>",
        "<p>Median of the per-round medians; ratios are the median over rounds of "
        "ours/Go within a round (for throughput workloads Go's ops/s over ours). Below 1.0: "
        "faster than Go.</p>",
        current_table(new),
        "<h2>Start-up (spawn → first Mount served)</h2>",
        startup_table(new),
        "<h2>Resident memory (one connection at a time, up to 2 channels; the workloads' "
        "messages, then 2 MiB ones)</h2>",
        memory_table(new),
        "<h2>Changes since the newest comparable run</h2>",
        changes_html(runs),
        "<h2>History per workload</h2>",
        '<p class="legend">%s</p>' % legend,
        workload_sections(runs),
        "<h2>Runs</h2>",
        runs_table(runs),
    ]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            "<title>gofer benchmarks</title><style>%s</style></head><body>%s</body></html>"
            % (CSS, "\n".join(parts)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", action="append", metavar="DIR",
                   help="a directory of results; repeat for more (default: %s and %s)" % (
                       data_dir() / "results", HISTORY))
    p.add_argument("--out", help="the page to write (default: %s)" % (data_dir() /
                                                                      "dashboard.html"))
    args = p.parse_args(argv)
    runs = load_results(args.results or [data_dir() / "results", HISTORY])
    out = Path(args.out) if args.out else data_dir() / "dashboard.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(runs), encoding="utf-8")
    print("dashboard: %d run(s) -> %s" % (len(runs), out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
