"""Runs a fuzz target of tests/fuzz/fuzz_targets.py under atheris (libFuzzer):

    python tests/fuzz/run.py decoders|session [libFuzzer flags] [CORPUS_DIR...]

e.g. for hours, new inputs kept in a scratch corpus, the shipped one read:

    python tests/fuzz/run.py session -max_total_time=14400 -timeout=10 \\
        /tmp/corpus-session tests/fuzz/corpus/session

A crash or hang leaves crash-*/timeout-* files in the current directory;
each becomes a corpus entry under tests/fuzz/corpus/<target>/ (replayed by
test_fuzz_corpus.py) once its bug is fixed. docs/reliability.md has more.
"""
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Python coverage of the harness and of gofer's Python modules (the
# Cython core is compiled: its branches count only in an instrumented
# build, see docs/reliability.md).
with atheris.instrument_imports(include=["fuzz_targets", "gofer"]):
    import fuzz_targets


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("decoders", "session"):
        sys.exit(__doc__)
    target = getattr(fuzz_targets, sys.argv[1])
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
