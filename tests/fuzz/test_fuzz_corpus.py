"""The fuzz targets in CI: every corpus entry (seeds, and the inputs of
crashes found and fixed) replayed as a regression test, then a bounded
atheris run of each target (FUZZ_SECONDS each; `python tests/fuzz/run.py`
runs them for as long as asked, see docs/reliability.md) on the
clang-instrumented gofer of tests/fuzz/instrumented.py."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_targets
from tests.fuzz import instrumented

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
TARGETS = ["decoders", "session"]
FUZZ_SECONDS = int(os.environ.get("GOFER_FUZZ_SECONDS", "25"))


def entries(target):
    return sorted((CORPUS / target).iterdir())


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_cleanly(target):
    run = getattr(fuzz_targets, target)
    files = entries(target)
    assert files
    try:
        for f in files:
            run(f.read_bytes())
    finally:
        fuzz_targets.close()


@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_run(target, tmp_path, capsys):
    pytest.importorskip("atheris", reason="atheris has no wheel for this Python/machine")
    site = instrumented.build()                 # cached; scripts/test builds it first
    work = tmp_path / "corpus"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    p = subprocess.run([sys.executable, str(HERE / "run.py"), target,
                        "-max_total_time=%d" % FUZZ_SECONDS, "-timeout=20", "-rss_limit_mb=2048",
                        str(work), str(CORPUS / target)],
                       cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=FUZZ_SECONDS + 120)
    crashes = [f.name for f in tmp_path.iterdir() if f.name.startswith(("crash-", "timeout-", "oom-"))]
    assert p.returncode == 0 and not crashes, p.stderr[-6000:]
    # The instrumentation is live: gofer's compiled modules registered their
    # counters with libFuzzer, and the seed corpus alone reaches far more
    # edges than the Python-only build gives the whole run (4 for decoders,
    # about 100 for session).
    counters = re.search(r"Loaded (\d+) modules +\((\d+) inline 8-bit counters\)", p.stderr)
    assert counters and int(counters.group(2)) > 10000, p.stderr[:3000]
    inited = re.search(r"INITED cov: (\d+) ft: (\d+)", p.stderr)
    assert int(inited.group(1)) > 250, inited.group(0)
    runs = re.search(r"Done (\d+) runs in (\d+) second", p.stderr)
    final = re.findall(r"cov: (\d+) ft: (\d+)", p.stderr)[-1]
    with capsys.disabled():
        print("\nfuzz %s: %s executions in %s s, %d new corpus inputs, C modules %s with %s "
              "counters, coverage %s edges / %s features (seeds: %s / %s)"
              % (target, runs.group(1), runs.group(2), len(list(work.iterdir())),
                 counters.group(1), counters.group(2), final[0], final[1],
                 inited.group(1), inited.group(2)))
