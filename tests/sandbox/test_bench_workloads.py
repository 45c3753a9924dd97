"""bench/sandbox.py's in-sandbox workloads run to completion with both gofers
and both directfs modes (the benchmark must not go blind; its figures are
judged in bench/, never here)."""
import importlib.util

from . import harness


def test_every_workload_gives_a_time_for_both_gofers(runsc, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "gofer_bench_sandbox", harness.Path(__file__).resolve().parents[2] / "bench" / "sandbox.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    raw = bench.run({"rounds": 1, "startup_trials": 1}, tmp_path, lambda msg: None)
    assert set(raw) == {(w, m) for w in bench.WORKLOADS for m in bench.MODES}
    for key, by_gofer in raw.items():
        assert set(by_gofer) == {"ours", "go"}, key
        for gofer, [entry] in by_gofer.items():
            assert "error" not in entry, (key, gofer, entry)
            assert entry["median_ns"] > 0
