"""bench/dashboard.py renders a self-contained page that a real browser draws:
synthetic side_by_side results in, headless Chromium (Debian package
`chromium`, installed by scripts/test) screenshots it and dumps its DOM."""
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ["fstat", "walk3", "metadata_4g"]


def _load_dashboard():
    spec = importlib.util.spec_from_file_location("gofer_bench_dashboard",
                                                  REPO / "bench" / "dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _server(median_ns, spread=0.02, ops=None):
    ops = ops or 1e9 / median_ns
    return {"median_ns": median_ns, "p99_ns": median_ns * 3, "mean_ns": median_ns * 1.1,
            "ops_per_sec": ops, "n": 1000, "spread": spread,
            "rounds": [{"median_ns": median_ns, "p99_ns": median_ns * 3, "n": 1000,
                        "ops_per_sec": ops, "round": 0}]}


def _result(i, ours_fstat_ns, commit):
    """A schema-1 result like bench/side_by_side.py writes."""
    wls = []
    for w in WORKLOADS:
        for t in ("socket", "channels"):
            go_ns = 14000.0 if t == "channels" else 20000.0
            ours_ns = ours_fstat_ns if w == "fstat" else go_ns * 0.9
            servers = {"ours": _server(ours_ns), "go": _server(go_ns)}
            ratio = {"ours": {"ratio": ours_ns / go_ns, "per_round": [ours_ns / go_ns],
                              "spread": 0.02}}
            if w in ("fstat", "walk3"):
                servers["memfs"] = _server(go_ns * 1.5)
                ratio["memfs"] = {"ratio": 1.5, "per_round": [1.5], "spread": 0.02}
            metric = "ops_per_sec" if w == "metadata_4g" else "median_ns"
            wls.append({"workload": w, "transport": t, "key": "%s/%s" % (w, t),
                        "metric": metric, "servers": servers, "ratio": ratio})
    return {
        "schema": 1, "timestamp": "2026-01-0%dT12:00:00+00:00" % (i + 1), "commit": commit,
        "profile": "quick",
        "machine": {"cpu_model": "Synthetic CPU", "nproc": 2, "kernel": "6.0-test",
                    "python": "3.11", "go": "go1.26"},
        "workloads": wls,
        "startup": {"ours": {"median_ms": 80.0, "min_ms": 70.0, "max_ms": 90.0,
                             "trials_ms": [80.0], "ratio": 16.0},
                    "go": {"median_ms": 5.0, "min_ms": 4.0, "max_ms": 6.0, "trials_ms": [5.0]}},
        "targets": [{"what": "ours fstat/socket", "ratio": ours_fstat_ns / 20000.0,
                     "target": 1.0, "met": ours_fstat_ns <= 20000.0}],
    }


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is missing: install the Debian package `chromium` "
                "(scripts/test installs it: apt-get install chromium)", pytrace=False)


def _run_chromium(args, tmp_path):
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--hide-scrollbars",
           "--user-data-dir=%s" % (tmp_path / "profile")] + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "chromium failed (%d):\n%s" % (r.returncode, r.stderr[-3000:])
    return r.stdout


@pytest.fixture
def dashboard(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    # Three runs; in the newest fstat/socket got 60% slower, beyond any noise.
    for i, (ns, commit) in enumerate([(18000.0, "a" * 40), (18500.0, "b" * 40),
                                      (30000.0, "c" * 40)]):
        (results / ("run%d.json" % i)).write_text(json.dumps(_result(i, ns, commit)))
    (results / "junk.json").write_text("{not json")          # skipped, not fatal
    out = tmp_path / "dashboard.html"
    mod = _load_dashboard()
    assert mod.main(["--results", str(results), "--out", str(out)]) == 0
    return out


def test_dashboard_is_self_contained(dashboard):
    page = dashboard.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), \
        "the dashboard must not load anything from the network"
    assert "<script" not in page.lower()


def test_regression_list_is_noise_aware():
    mod = _load_dashboard()
    a, b = _result(0, 18000.0, "a" * 40), _result(1, 19000.0, "b" * 40)
    assert mod.compare(a, b) == []                       # +5.6%: below the 10% floor
    c = _result(2, 30000.0, "c" * 40)
    rows = mod.compare(b, c)
    assert {(r["key"], r["server"], r["kind"]) for r in rows} >= {
        ("fstat/socket", "ours", "regression")}
    # A noisy run raises the bar: 3x a 25% spread between rounds hides a 58% change.
    for w in c["workloads"]:
        for s in w["servers"].values():
            s["spread"] = 0.25
        for r in w["ratio"].values():
            r["spread"] = 0.25
    assert mod.compare(b, c) == []


def test_dashboard_renders_in_chromium(dashboard, tmp_path):
    url = dashboard.as_uri()
    dom = _run_chromium(["--dump-dom", url], tmp_path)
    # The newest table: one row per workload and transport, with ratios.
    assert 'id="current"' in dom
    assert len(re.findall(r'<tr class="row"', dom)) == 2 * len(WORKLOADS)
    assert re.search(r'class="ratio miss"[^>]*>1\.50<', dom)          # fstat/socket 30/20
    # Charts: a latency and a ratio chart for every workload, each with 3 points per server.
    for w in WORKLOADS:
        for t in ("socket", "channels"):
            m = re.search(r'<section class="workload" id="wl-%s-%s">(.*?)</section>' % (w, t),
                          dom, re.S)
            assert m, "no section for %s/%s" % (w, t)
            sec = m.group(1)
            assert sec.count('<svg class="chart latency"') == 1
            assert sec.count('<svg class="chart ratio"') == 1
            assert len(re.findall(r'<polyline class="series ours"', sec)) == 2
            assert len(re.findall(r'<circle class="point go"', sec)) == 3
    # The regression list names fstat/socket; start-up is tabulated.
    m = re.search(r'<ul id="regressions">(.*?)</ul>', dom, re.S)
    assert m and 'data-key="fstat/socket"' in m.group(1) and "regression" in m.group(1)
    assert 'id="startup"' in dom and "16.00" in dom
    assert "3 runs" in dom

    shot = tmp_path / "dashboard.png"
    _run_chromium(["--screenshot=%s" % shot, "--window-size=1280,2000", url], tmp_path)
    assert shot.exists()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1280x2000 page compresses to a few KB; charts and tables make it much larger.
    assert len(data) > 40_000, "screenshot is only %d bytes: did the page render?" % len(data)
