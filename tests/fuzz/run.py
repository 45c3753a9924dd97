"""Runs a fuzz target of tests/fuzz/fuzz_targets.py under atheris (libFuzzer):

    python tests/fuzz/run.py decoders|session [libFuzzer flags] [CORPUS_DIR...]

e.g. for hours on the clang-instrumented gofer (tests/fuzz/instrumented.py;
without PYTHONPATH, the venv's gcc build: Python coverage only), new inputs
kept in a scratch corpus, the shipped one read:

    PYTHONPATH=$(python -m tests.fuzz.instrumented) \\
    python tests/fuzz/run.py session -max_total_time=14400 -timeout=20 \\
        /tmp/corpus-session tests/fuzz/corpus/session

A crash or hang leaves crash-*/timeout-* files in the current directory;
each becomes a corpus entry under tests/fuzz/corpus/<target>/ (replayed by
test_fuzz_corpus.py) once its bug is fixed. docs/reliability.md has more.
"""
import importlib
import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
# atheris' libFuzzer, loaded with its symbols global before gofer is
# imported: the coverage counters of a clang-instrumented gofer
# (tests/fuzz/instrumented.py) link to it, so its C branches guide the
# fuzzing. Python coverage of the harness and of gofer's Python modules
# comes from instrument_imports.
_flags = sys.getdlopenflags()
sys.setdlopenflags(_flags | os.RTLD_GLOBAL)
importlib.import_module("atheris.core_with_libfuzzer")
sys.setdlopenflags(_flags)
with atheris.instrument_imports(include=["fuzz_targets", "gofer"]):
    import fuzz_targets


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("decoders", "session"):
        sys.exit(__doc__)
    target = getattr(fuzz_targets, sys.argv[1])
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target, internal_libfuzzer=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
