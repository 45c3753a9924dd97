#!/usr/bin/env python3
"""Renders the benchmark history as one static, self-contained HTML page.

    python bench/dashboard.py [--results bench/results] [--out bench/dashboard.html]

Reads every side_by_side.py result (*.json, schema 1) in --results, oldest
first, and writes a page with no external resources (inline SVG, inline CSS,
no script): the newest run's table with ratios to gVisor's Go gofer, the
start-up times, a regression list (newest run vs the one before), and for
each workload a chart of median latency over the runs and one of the ratio
to Go with its target.

A change is flagged only when it exceeds max(10%, 3 x the relative spread
between the rounds of either run): on a shared 2-core machine smaller moves
are noise.
"""
import argparse
import html
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MIN_CHANGE = 0.10          # never flag less than 10%
SPREAD_FACTOR = 3.0        # ... nor less than 3x the spread between rounds
COLORS = {"ours": "#1f6fb5", "go": "#00a29c", "memfs": "#d9534f"}
LABELS = {"ours": "gofer (stock)", "go": "Go fsgofer", "memfs": "gofer memfs"}
TARGETS = {"ours": 1.0, "memfs": 2.0}


# ------------------------------------------------------------------ loading

def load_results(folder):
    """Valid result dicts from `folder`, oldest first; bad files are reported and skipped."""
    runs = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            print("dashboard: skipping %s: %s" % (p, e), file=sys.stderr)
            continue
        if not isinstance(r, dict) or r.get("schema") != 1 \
                or not isinstance(r.get("workloads"), list):
            print("dashboard: skipping %s: not a schema-1 side_by_side result" % p, file=sys.stderr)
            continue
        r["_file"] = p.name
        runs.append(r)
    runs.sort(key=lambda r: (r.get("timestamp") or "", r["_file"]))
    return runs


def run_label(r):
    commit = (r.get("commit") or "?")[:7]
    ts = (r.get("timestamp") or "")[:16].replace("T", " ")
    return "%s %s%s" % (commit, ts, " (quick)" if r.get("profile") == "quick" else "")


def by_key(run):
    return {w["key"]: w for w in run["workloads"] if "key" in w}


def metric_value(w, server):
    """The number compared over time: median latency, or ops/s for throughput workloads."""
    s = w.get("servers", {}).get(server, {})
    return s.get(w.get("metric", "median_ns"))


# ------------------------------------------------------------------ regressions

def compare(prev, new):
    """Rows {key, server, what, old, new, change, threshold, kind} for the changes
    between two runs that exceed the noise-aware threshold. `change` > 0 is worse."""
    rows = []
    old_w, new_w = by_key(prev), by_key(new)
    for key, nw in new_w.items():
        ow = old_w.get(key)
        if ow is None:
            continue
        higher_is_better = nw.get("metric") == "ops_per_sec"
        for server in nw.get("servers", {}):
            a, b = metric_value(ow, server), metric_value(nw, server)
            if not a or not b:
                continue
            change = (a / b - 1.0) if higher_is_better else (b / a - 1.0)
            spread = max(ow["servers"].get(server, {}).get("spread", 0.0) or 0.0,
                         nw["servers"][server].get("spread", 0.0) or 0.0)
            threshold = max(MIN_CHANGE, SPREAD_FACTOR * spread)
            if abs(change) > threshold:
                rows.append(dict(key=key, server=server, what=nw.get("metric", "median_ns"),
                                 old=a, new=b, change=change, threshold=threshold,
                                 kind="regression" if change > 0 else "improvement"))
        for server, rn in nw.get("ratio", {}).items():
            ro = ow.get("ratio", {}).get(server)
            if not ro:
                continue
            change = rn["ratio"] / ro["ratio"] - 1.0
            spread = max(ro.get("spread", 0.0) or 0.0, rn.get("spread", 0.0) or 0.0)
            threshold = max(MIN_CHANGE, SPREAD_FACTOR * spread)
            if abs(change) > threshold:
                rows.append(dict(key=key, server=server, what="ratio", old=ro["ratio"],
                                 new=rn["ratio"], change=change, threshold=threshold,
                                 kind="regression" if change > 0 else "improvement"))
    rows.sort(key=lambda r: (r["kind"] != "regression", -abs(r["change"])))
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


def fmt_metric(what, v):
    if what == "ratio":
        return "%.2f" % v
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

def svg_chart(kind, title, labels, series, fmt, guides=(), width=460, height=200):
    """A line chart. series: {name: [value or None per run]}; guides: [(y, label)]."""
    left, right, top, bottom = 62, 12, 22, 28
    pw, ph = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    values += [g for g, _ in guides]
    ymax = 4 * nice_step((max(values) * 1.05 if values else 1.0) / 4)
    n = len(labels)

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
    step = max(1, math.ceil(n / 6))                      # x labels: at most ~6
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>' % (
                x(i), height - 10, esc("#%d %s" % (i + 1, lab.split(" ")[0]))))
    for name, vs in series.items():
        color = COLORS.get(name, "#555")
        pts = [(x(i), y(v)) for i, v in enumerate(vs) if v is not None]
        if len(pts) > 1:
            out.append('<polyline class="series %s" fill="none" stroke="%s" stroke-width="2" '
                       'points="%s"/>' % (name, color, " ".join("%.1f,%.1f" % p for p in pts)))
        for i, v in enumerate(vs):
            if v is not None:
                out.append('<circle class="point %s" cx="%.1f" cy="%.1f" r="3" fill="%s">'
                           '<title>%s — %s: %s</title></circle>' % (
                               name, x(i), y(v), color, esc(labels[i]), esc(LABELS.get(name, name)),
                               esc(fmt(v))))
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
.ok{color:#1a7f37;font-weight:600} .miss{color:#c62828;font-weight:600}
.regression{color:#c62828} .improvement{color:#1a7f37}
.grid-wl{display:flex;flex-wrap:wrap;gap:16px}
section.workload{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px}
svg.chart{display:block;margin:4px 0} svg .title{font-size:12px;font-weight:600;fill:#333}
svg .tick{font-size:10px;fill:#666} svg .grid{stroke:#eee} svg .frame{stroke:#bbb}
svg .guide{stroke:#c62828;stroke-dasharray:5 4} svg .guide-label{font-size:10px;fill:#c62828}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}
"""


def current_table(run):
    servers = [s for s in ("ours", "go", "memfs")
               if any(s in w.get("servers", {}) for w in run["workloads"])]
    head = ['<th class="l">workload</th><th class="l">transport</th>']
    for s in servers:
        head.append('<th>%s median</th><th>%s p99</th><th>%s ops/s</th>' % ((esc(LABELS[s]),) * 3))
    head += ["<th>%s / Go</th>" % esc(LABELS[s]) for s in servers if s != "go"]
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
            if s == "go":
                continue
            r = w.get("ratio", {}).get(s)
            if r is None:
                cells.append("<td></td>")
            else:
                ok = round(r["ratio"], 2) <= TARGETS[s]
                best = " (best round vs best round: %.2f)" % r["ratio_best"] \
                    if "ratio_best" in r else ""
                cells.append('<td class="ratio %s" title="target ≤ %.1f; rounds %s%s">%.2f'
                             '</td>' % (
                    "ok" if ok else "miss", TARGETS[s],
                    esc(", ".join("%.2f" % v for v in r.get("per_round", []))), esc(best),
                    r["ratio"]))
        rows.append('<tr class="row" data-key="%s">%s</tr>' % (esc(w["key"]), "".join(cells)))
    return '<table id="current">%s</table>' % "".join(rows)


def startup_table(run):
    st = run.get("startup") or {}
    if not st:
        return "<p>No start-up measurement in this run.</p>"
    rows = ['<tr><th class="l">server</th><th>median</th><th>min</th><th>max</th>'
            '<th>ratio to Go</th></tr>']
    names = {"ours": "gofer serve", "ours_gofer_cmd": "gofer gofer (runsc-style)",
             "go": "Go refgofer"}
    for k in ("ours", "ours_gofer_cmd", "go"):
        v = st.get(k)
        if not v:
            continue
        if "median_ms" not in v:
            rows.append('<tr><td class="l">%s</td><td colspan="4" class="miss">%s</td></tr>' % (
                esc(names[k]), esc(v.get("error", "failed"))[:200]))
            continue
        ratio = v.get("ratio")
        rcell = "" if ratio is None else '<span class="%s">%.2f</span>' % (
            "ok" if round(ratio, 2) <= 2.0 else "miss", ratio)
        rows.append('<tr><td class="l">%s</td><td>%.1f ms</td><td>%.1f ms</td><td>%.1f ms</td>'
                    '<td>%s</td></tr>' % (esc(names[k]), v["median_ms"], v["min_ms"],
                                          v["max_ms"], rcell))
    return '<table id="startup">%s</table>' % "".join(rows)


def regressions_html(runs):
    if len(runs) < 2:
        return '<ul id="regressions"><li>Only one run so far: nothing to compare.</li></ul>'
    prev, new = runs[-2], runs[-1]
    rows = compare(prev, new)
    intro = "<p>%s → %s. Flagged when the change exceeds max(%d%%, %g× the spread between " \
            "rounds).</p>" % (esc(run_label(prev)), esc(run_label(new)), MIN_CHANGE * 100,
                               SPREAD_FACTOR)
    if not rows:
        return intro + '<ul id="regressions"><li class="none">No change beyond the noise ' \
                       'threshold.</li></ul>'
    items = []
    for r in rows:
        items.append('<li class="%s" data-key="%s" data-server="%s"><b>%s</b> %s %s (%s): '
                     '%s → %s (%+.0f%%, threshold %.0f%%)</li>' % (
                         r["kind"], esc(r["key"]), esc(r["server"]), esc(r["kind"]),
                         esc(r["key"]), esc(LABELS.get(r["server"], r["server"])), esc(r["what"]),
                         esc(fmt_metric(r["what"], r["old"])), esc(fmt_metric(r["what"], r["new"])),
                         100 * r["change"], 100 * r["threshold"]))
    return intro + '<ul id="regressions">%s</ul>' % "".join(items)


def workload_sections(runs):
    labels = [run_label(r) for r in runs]
    keys = []
    for r in runs:
        for w in r["workloads"]:
            if w.get("key") and w["key"] not in keys:
                keys.append(w["key"])
    idx = [by_key(r) for r in runs]
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
        c1 = svg_chart("latency", "%s: %s" % (key, what), labels, lat, fmt)
        rat = {s: [(w.get("ratio", {}).get(s) or {}).get("ratio") if w else None for w in ws]
               for s in servers if s != "go"}
        guides = [(TARGETS[s], "target %s ≤ %.1f" % (s, TARGETS[s])) for s in rat]
        c2 = svg_chart("ratio", "%s: ratio to Go (lower is better)" % key, labels, rat,
                       lambda v: "%.2f" % v, guides=guides)
        last = ws[-1] or {}
        note = ""
        if last:
            bits = []
            for s in rat:
                r = last.get("ratio", {}).get(s)
                if r:
                    bits.append('%s/Go <span class="%s">%.2f</span>' % (
                        esc(LABELS[s]), "ok" if round(r["ratio"], 2) <= TARGETS[s] else "miss",
                        r["ratio"]))
            note = "<p>latest: %s</p>" % ", ".join(bits)
        out.append('<section class="workload" id="wl-%s"><h3>%s</h3>%s%s%s</section>' % (
            esc(key.replace("/", "-")), esc(key), c1, c2, note))
    return '<div class="grid-wl">%s</div>' % "".join(out)


def render(runs):
    if not runs:
        body = "<h1>gofer benchmarks</h1><p>No results yet: run " \
               "<code>python bench/side_by_side.py</code>.</p>"
        return "<!doctype html><html><head><meta charset='utf-8'><title>gofer benchmarks" \
               "</title><style>%s</style></head><body>%s</body></html>" % (CSS, body)
    new = runs[-1]
    m = new.get("machine", {})
    tg = new.get("targets", [])
    missed = [t for t in tg if not t.get("met")]
    # Summary statistics over every run's latest ratios (numpy: robust to gaps).
    ours = np.array([w["ratio"]["ours"]["ratio"] for w in new["workloads"]
                     if "ours" in w.get("ratio", {})], dtype=float)
    geo = float(np.exp(np.mean(np.log(ours)))) if ours.size else float("nan")
    legend = "".join('<span><i style="background:%s"></i>%s</span>' % (COLORS[s], esc(LABELS[s]))
                     for s in ("ours", "go", "memfs"))
    parts = [
        "<h1>gofer vs gVisor's Go gofer</h1>",
        '<p class="meta" id="runinfo">%d run%s; newest: %s — %s, %s CPUs, kernel %s, Python %s, '
        '%s</p>' % (len(runs), "" if len(runs) == 1 else "s", esc(run_label(new)),
                    esc(m.get("cpu_model", "?")), esc(m.get("nproc", "?")),
                    esc(m.get("kernel", "?")), esc(m.get("python", "?")), esc(m.get("go", "?"))),
        '<p id="summary">Targets met: <b>%d of %d</b>. Geometric mean of ours/Go over all '
        'workloads: <b>%.2f</b>.%s</p>' % (
            len(tg) - len(missed), len(tg), geo,
            (" Missed: " + ", ".join('<span class="miss">%s %.2f</span>' % (
                esc(t["what"]), t["ratio"]) for t in missed)) if missed else ""),
        "<h2>Newest run</h2>",
        "<p>Median of the per-round medians; ratios are the median over rounds of "
        "ours/Go within a round (for throughput workloads Go's ops/s over ours). Below 1.0: "
        "faster than Go.</p>",
        current_table(new),
        "<h2>Start-up (spawn → first Mount served)</h2>",
        startup_table(new),
        "<h2>Changes since the previous run</h2>",
        regressions_html(runs),
        "<h2>History per workload</h2>",
        '<p class="legend">%s</p>' % legend,
        workload_sections(runs),
    ]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            "<title>gofer benchmarks</title><style>%s</style></head><body>%s</body></html>"
            % (CSS, "\n".join(parts)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(REPO / "bench" / "results"))
    p.add_argument("--out", default=str(REPO / "bench" / "dashboard.html"))
    args = p.parse_args(argv)
    runs = load_results(args.results)
    Path(args.out).write_text(render(runs), encoding="utf-8")
    print("dashboard: %d run(s) -> %s" % (len(runs), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
