"""The fuzz targets in CI: every corpus entry (seeds, and the inputs of
crashes found and fixed) replayed as a regression test, then a bounded
atheris run of each target (FUZZ_SECONDS each; `python tests/fuzz/run.py`
runs them for as long as asked, see docs/reliability.md)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_targets

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
    work = tmp_path / "corpus"
    work.mkdir()
    p = subprocess.run([sys.executable, str(HERE / "run.py"), target,
                        "-max_total_time=%d" % FUZZ_SECONDS, "-timeout=20", "-rss_limit_mb=2048",
                        str(work), str(CORPUS / target)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    crashes = [f.name for f in tmp_path.iterdir() if f.name.startswith(("crash-", "timeout-", "oom-"))]
    assert p.returncode == 0 and not crashes, p.stderr[-6000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", p.stderr)
    with capsys.disabled():
        print("\nfuzz %s: %s executions in %s s, %d new corpus inputs"
              % (target, runs.group(1), runs.group(2), len(list(work.iterdir()))))
