"""Builds runsc with gofer's gofer switch (tests/sandbox/runsc/main.go).

Cached in ``~/.cache/gofer/runsc/<key>/runsc`` (tests/gobuild.py), where
``key`` hashes go.mod, go.sum, main.go and the Go version: it is rebuilt only
when one of them changes (cold: minutes; the Go build cache makes a rebuild
after a main.go edit take seconds).

    python3 -m tests.sandbox.runsc_build     # builds if needed, prints the path
"""
import hashlib
import subprocess
from pathlib import Path

from tests.gobuild import BuildError, cached_build, go, main  # noqa: F401 (BuildError: conftest)

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "./tests/sandbox/runsc"
INPUTS = ("go.mod", "go.sum", "tests/sandbox/runsc/main.go")


def cache_key():
    h = hashlib.sha256()
    for name in INPUTS:
        h.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    h.update(subprocess.run([go(), "env", "GOVERSION"], capture_output=True,
                            check=True).stdout)
    return h.hexdigest()[:16]


def build(quiet=True):
    """The path of the cached runsc, built first if its inputs changed."""
    # CGO_ENABLED=0: with cgo, runsc's own gofer re-execs itself for capabilities.
    return cached_build("runsc", cache_key(), PACKAGE, REPO, env={"CGO_ENABLED": "0"},
                        quiet=quiet, timeout=1800)


if __name__ == "__main__":
    main(build, "runsc_build")
