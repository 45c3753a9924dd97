"""bench/dashboard.py judges synthetic side_by_side results by the rules in its
docstring and renders a self-contained page that a real browser draws
(headless Chromium, Debian package `chromium`, installed by scripts/test)."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ["fstat", "walk3", "metadata_4g"]
MACHINE = {"cpu_model": "Synthetic CPU", "nproc": 2, "kernel": "6.0-test", "python": "3.11",
           "go": "go1.26", "gofer": {"version": "0.1.0"}}


def _load(name):
    spec = importlib.util.spec_from_file_location("gofer_bench_" + name,
                                                  REPO / "bench" / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def mod():
    return _load("dashboard")


def _server(median_ns, spread=0.02, ops=None):
    ops = ops or 1e9 / median_ns
    return {"median_ns": median_ns, "p99_ns": median_ns * 3, "mean_ns": median_ns * 1.1,
            "ops_per_sec": ops, "n": 1000, "spread": spread,
            "rounds": [{"median_ns": median_ns, "p99_ns": median_ns * 3, "n": 1000,
                        "ops_per_sec": ops, "round": 0}]}


def _result(i, ours_fstat_ns, commit, go_scale=1.0, machine=None, profile="quick",
            version="0.1.0"):
    """A schema-1 result like bench/side_by_side.py writes. Go's times are
    multiplied by go_scale; ours for fstat is ours_fstat_ns, elsewhere 0.9x Go."""
    wls = []
    for w in WORKLOADS:
        for t in ("socket", "channels"):
            go_ns = (14000.0 if t == "channels" else 20000.0) * go_scale
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
    m = dict(machine or MACHINE, gofer={"version": version})
    return {
        "schema": 1, "timestamp": "2026-01-%02dT12:00:00+00:00" % (i + 1), "commit": commit,
        "profile": profile, "config": {"pin": "none"}, "machine": m,
        "workloads": wls,
        "startup": {"ours": {"median_ms": 80.0, "min_ms": 70.0, "max_ms": 90.0, "trials": 1,
                             "failed": 0, "trials_ms": [80.0], "ratio": 16.0},
                    "go": {"median_ms": 5.0, "min_ms": 4.0, "max_ms": 6.0, "trials": 1,
                           "failed": 0, "trials_ms": [5.0]}},
    }


def _runs(mod, tmp_path, results):
    d = tmp_path / ("results-%d" % len(list(tmp_path.glob("results-*"))))
    d.mkdir()
    for i, r in enumerate(results):
        (d / ("run%d.json" % i)).write_text(json.dumps(r))
    return mod.load_results([d])


def _kinds(rows, server=None):
    return {(r["key"], r["server"], r["kind"]) for r in rows
            if server is None or r["server"] == server}


# ------------------------------------------------------------------ changes

def test_change_beyond_the_noise_is_flagged_on_the_ratio(mod):
    a, b = _result(0, 18000.0, "a" * 40), _result(1, 19000.0, "b" * 40)
    assert mod.compare(a, b) == []                       # +5.6%: below the 10% floor
    c = _result(2, 30000.0, "c" * 40)
    rows = mod.compare(b, c)
    assert _kinds(rows) == {("fstat/socket", "ours", "regression"),
                            ("fstat/channels", "ours", "regression")}
    row = next(r for r in rows if r["key"] == "fstat/socket")
    assert row["what"] == "ratio" and "gofer (stock) +58%" in row["note"]
    # A noisy run raises the bar: 3x a 25% spread between rounds hides a 58% change.
    for w in c["workloads"]:
        for s in w["servers"].values():
            s["spread"] = 0.25
        for r in w["ratio"].values():
            r["spread"] = 0.25
    assert mod.compare(b, c) == []


def test_moving_with_go_is_not_a_regression(mod):
    # The whole machine got 53% slower: ours and Go alike, the ratio is flat.
    a = _result(0, 18000.0, "a" * 40)
    b = _result(1, 18000.0 * 1.53, "b" * 40, go_scale=1.53)
    rows = mod.compare(a, b)
    assert not [r for r in rows if r["kind"] == "regression"], rows
    assert _kinds(rows, "ours") == set() and _kinds(rows, "memfs") == set()
    assert {r["kind"] for r in rows if r["server"] == "go"} == {"baseline"}


def test_a_slower_go_is_never_our_regression(mod):
    a = _result(0, 18000.0, "a" * 40)
    b = _result(1, 18000.0, "b" * 40, go_scale=1.4)      # only Go got slower
    rows = mod.compare(a, b)
    assert rows and not [r for r in rows if r["kind"] == "regression"], rows
    assert {r["kind"] for r in rows if r["server"] == "go"} == {"baseline"}
    # ... while a faster Go with ours unchanged is a worse ratio: ours fell behind.
    c = _result(2, 18000.0, "c" * 40, go_scale=0.7)
    assert ("fstat/socket", "ours", "regression") in _kinds(mod.compare(a, c))


def test_without_a_ratio_the_own_time_decides(mod):
    a = _result(0, 18000.0, "a" * 40)
    b = _result(1, 30000.0, "b" * 40)
    w = next(w for w in b["workloads"] if w["key"] == "fstat/socket")
    del w["ratio"]["ours"], w["servers"]["go"]["median_ns"]   # Go failed there in b
    rows = [r for r in mod.compare(a, b) if r["key"] == "fstat/socket" and r["server"] == "ours"]
    assert len(rows) == 1 and rows[0]["kind"] == "regression" and rows[0]["what"] == "median_ns"
    assert "no ratio" in rows[0]["note"]


# ------------------------------------------------------------------ comparability

OTHER_MACHINE = dict(MACHINE, cpu_model="Other CPU", nproc=8, kernel="6.1-other")


def test_only_runs_from_the_same_machine_and_profile_are_compared(mod, tmp_path):
    runs = _runs(mod, tmp_path, [
        _result(0, 18000.0, "a" * 40, profile="full"),                        # the baseline
        _result(1, 40000.0, "b" * 40, profile="full", machine=OTHER_MACHINE),
        _result(2, 40000.0, "c" * 40, profile="quick"),
        _result(3, 30000.0, "d" * 40, profile="full"),                        # newest
    ])
    assert mod.baseline(runs) is runs[0]
    assert mod.differences(runs[1], runs[3]) == ["another machine"]
    assert mod.differences(runs[2], runs[3]) == ["quick profile"]
    page = mod.render(runs)
    said = re.search(r'<p id="compared-with" data-file="run0.json">(.*?)</p>', page, re.S)
    assert said and "2 newer runs from another machine or profile not compared" in said.group(1)
    # fstat/socket is compared with run 0 (+67%), not with run 2 (-25%).
    li = re.findall(r'<li class="(\w+)" data-key="fstat/socket" data-server="ours">', page)
    assert li == ["regression"]
    # The runs table marks the other two; their chart points are hollow, and no line
    # joins runs from different setups (setups a, b, c, a: one point each, no line).
    assert re.search(r'<tr class="run other" data-file="run1.json">.*?another machine: not '
                     r'compared', page)
    assert re.search(r'<tr class="run other" data-file="run2.json">.*?quick profile: not '
                     r'compared', page)
    sec = re.search(r'id="wl-fstat-socket">(.*?)</section>', page, re.S).group(1)
    assert '<polyline' not in sec
    assert len(re.findall(r'<circle class="point ours other"', sec)) == 2 * 2


def test_nothing_comparable_means_nothing_compared(mod, tmp_path):
    runs = _runs(mod, tmp_path, [_result(0, 18000.0, "a" * 40, profile="full"),
                                 _result(1, 40000.0, "b" * 40, profile="quick")])
    assert mod.baseline(runs) is None
    page = mod.render(runs)
    assert "nothing compared" in page and 'id="regressions"' not in page


# ------------------------------------------------------------------ targets

def test_a_failed_startup_trial_is_a_miss(mod):
    r = _result(0, 18000.0, "a" * 40)
    r["startup"]["ours"].update(ratio=1.5, failed=1, trials=5, error="TimeoutError()")
    t = {t["what"]: t for t in mod.targets(r)}["startup ours"]
    assert not t["met"] and "1 start-up trial failed" in t["why"]      # 1.5 alone would meet 2.0
    # Every trial failed: still counted, as a miss.
    r["startup"]["ours"] = {"trials": 5, "failed": 5, "error": "TimeoutError()"}
    tg = mod.targets(r)
    assert [t["met"] for t in tg if t["what"] == "startup ours"] == [False]
    page = mod.render([dict(r, _file="x.json", _source="x")])
    assert re.search(r"Targets met: <b>(\d+) of %d</b>" % len(tg), page)
    assert re.search(r'<tr data-kind="ours">.*?<td class="miss"[^>]*>5 of 5</td>', page)
    # Older results kept only the first error: at least one trial failed.
    r["startup"]["ours"] = {"median_ms": 8.0, "min_ms": 8.0, "max_ms": 8.0, "trials_ms": [8.0],
                            "ratio": 1.6, "error": "boom"}
    assert not {t["what"]: t for t in mod.targets(r)}["startup ours"]["met"]
    # A failed Go trial leaves our ratio unproven.
    r["startup"]["ours"] = {"median_ms": 8.0, "min_ms": 8.0, "max_ms": 8.0, "trials_ms": [8.0],
                            "ratio": 1.6, "trials": 1, "failed": 0}
    assert {t["what"]: t for t in mod.targets(r)}["startup ours"]["met"]
    r["startup"]["go"]["failed"] = 1
    assert not {t["what"]: t for t in mod.targets(r)}["startup ours"]["met"]


def test_a_failed_round_is_a_miss(mod):
    r = _result(0, 14000.0, "a" * 40)                    # fstat/socket 0.70: met
    w = next(w for w in r["workloads"] if w["key"] == "fstat/socket")
    assert {t["what"]: t for t in mod.targets(r)}["ours fstat/socket"]["met"]
    w["servers"]["ours"]["rounds"].append({"error": "loadgen timed out", "round": 1})
    t = {t["what"]: t for t in mod.targets(r)}["ours fstat/socket"]
    assert not t["met"] and t["why"] == "1 of 2 rounds failed"
    del w["ratio"]["ours"]
    w["servers"]["ours"]["rounds"] = [{"error": "x"}]
    assert "ours fstat/socket" in {t["what"] for t in mod.targets(r) if not t["met"]}


def test_cpu_per_op_and_memory_are_judged_and_shown(mod):
    r = _result(0, 14000.0, "a" * 40)
    w = next(w for w in r["workloads"] if w["key"] == "fstat/socket")
    w["servers"]["ours"]["cpu_us_per_op"], w["servers"]["go"]["cpu_us_per_op"] = 12.0, 10.0
    w["ratio"]["ours"]["cpu_ratio"] = 1.2
    r["server_memory_kib"] = {
        "ours": {"start": 18000, "peak": 20048, "per_connection": 2048,
                 "per_connection_large": 8192},
        "go": {"start": 5600, "peak": 7648, "per_connection": 2048,
               "per_connection_large": 4096}}
    tg = {t["what"]: t for t in mod.targets(r)}
    assert tg["ours fstat/socket"]["met"] and not tg["cpu ours fstat/socket"]["met"]
    assert tg["memory per connection ours"]["ratio"] == 1.0 and tg[
        "memory per connection ours"]["met"]
    large = tg["memory per connection with 2 MiB messages ours"]
    assert large["ratio"] == 2.0 and not large["met"]
    page = mod.render([dict(r, _file="x.json", _source="x")])
    assert re.search(r'<td>12\.0 / 10\.0</td><td class="ratio miss">1\.20', page)
    assert re.search(r'<table id="memory">.*?17\.6 MiB.*?2\.0 MiB</td><td>8\.0 MiB', page)
    # Beside each workload's latency chart, one of CPU per operation.
    section = re.search(r'<section class="workload" id="wl-fstat-socket">(.*?)</section>',
                        page, re.S).group(1)
    assert "server CPU µs per operation" in section


# ------------------------------------------------------------------ colours, versions, paths

def test_colours_mean_one_thing_each(mod, tmp_path):
    assert not set(mod.SERIES.values()) & (set(mod.STATUS.values()) | {mod.GUIDE})
    page = mod.render(_runs(mod, tmp_path, [_result(0, 30000.0, "a" * 40)]))
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert re.search(r"\.miss[^{]*\{color:%s" % mod.STATUS["bad"], css)
    assert re.search(r"\.ok[^{]*\{color:%s" % mod.STATUS["good"], css)
    fills = set(re.findall(r'<circle class="point memfs[^"]*"[^>]*fill="([^"]+)"', page))
    assert fills == {mod.SERIES["memfs"]}
    assert 'class="ratio miss"' in page                  # there is a miss, in its own colour


def test_each_run_shows_its_version(mod, tmp_path):
    runs = _runs(mod, tmp_path, [_result(0, 18000.0, "a" * 40, version="0.1.0"),
                                 _result(1, 18000.0, "b" * 40, version="0.2.0.dev1")])
    page = mod.render(runs)
    table = re.search(r'<table id="runs">(.*?)</table>', page, re.S).group(1)
    assert re.search(r'data-file="run0.json"><td>1</td><td class="l">0.1.0<', table)
    assert re.search(r'data-file="run1.json"><td>2</td><td class="l">0.2.0.dev1<', table)
    assert "gofer 0.2.0.dev1" in re.search(r'id="runinfo">(.*?)</p>', page).group(1)


def test_a_run_records_the_version_it_measured(monkeypatch):
    """The version shown per run is gofer.__version__ of the interpreter that ran the
    servers: the same string the wheel and `gofer --version` carry (tests/test_wheel.py)."""
    import gofer
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    assert _load("side_by_side").machine_info()["gofer"]["version"] == gofer.__version__


def _checkout_state():
    r = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def test_results_live_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    mod = _load("dashboard")
    local = tmp_path / "data" / "gofer" / "bench" / "results"
    assert mod.data_dir() == local.parent
    # side_by_side writes there by default (and fails fast with the same hint).
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    sbs = _load("side_by_side")
    assert sbs.parser().parse_args([]).out == str(local)
    local.mkdir(parents=True)
    (local / "mine.json").write_text(json.dumps(_result(0, 18000.0, "a" * 40)))
    before = _checkout_state()
    assert mod.main([]) == 0
    page = (local.parent / "dashboard.html").read_text()
    committed = len(list(mod.HISTORY.glob("*.json")))
    assert "%d run" % (committed + 1) in page                # local runs and the history
    assert "mine.json" in page
    assert _checkout_state() == before                        # nothing written into the checkout


def test_missing_benchmark_dependency_fails_fast_naming_the_extra(tmp_path):
    fake = tmp_path / "fake" / "numpy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'numpy'\")\n")
    env = dict(os.environ, PYTHONPATH=str(fake.parent))
    r = subprocess.run([sys.executable, str(REPO / "bench" / "side_by_side.py"), "--quick"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert "numpy" in r.stderr and "scripts/bench" in r.stderr
    assert "pip install '.[bench]'" in r.stderr
    assert "Traceback" not in r.stderr and "building" not in r.stderr


# ------------------------------------------------------------------ in a browser

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
def dashboard(mod, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    # Three runs; in the newest fstat/socket got 60% slower, beyond any noise.
    for i, (ns, commit) in enumerate([(18000.0, "a" * 40), (18500.0, "b" * 40),
                                      (30000.0, "c" * 40)]):
        (results / ("run%d.json" % i)).write_text(json.dumps(_result(i, ns, commit)))
    (results / "junk.json").write_text("{not json")          # skipped, not fatal
    out = tmp_path / "dashboard.html"
    assert mod.main(["--results", str(results), "--out", str(out)]) == 0
    return out


def test_dashboard_is_self_contained(dashboard):
    page = dashboard.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), \
        "the dashboard must not load anything from the network"
    assert "<script" not in page.lower()


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
    # The changes name fstat/socket; start-up is tabulated; every run is listed.
    m = re.search(r'<ul id="regressions">(.*?)</ul>', dom, re.S)
    assert m and 'data-key="fstat/socket"' in m.group(1) and "regression" in m.group(1)
    assert 'id="startup"' in dom and "16.00" in dom
    assert "3 runs" in dom and len(re.findall(r'<tr class="run"', dom)) == 3

    shot = tmp_path / "dashboard.png"
    _run_chromium(["--screenshot=%s" % shot, "--window-size=1280,2000", url], tmp_path)
    assert shot.exists()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1280x2000 page compresses to a few KB; charts and tables make it much larger.
    assert len(data) > 40_000, "screenshot is only %d bytes: did the page render?" % len(data)
