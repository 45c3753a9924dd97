"""Builds runsc with gofer's gofer switch (tests/sandbox/runsc/main.go).

The binary is cached outside the checkout, in
``$XDG_CACHE_HOME/gofer/runsc/<key>/runsc`` (default ``~/.cache``), where
``key`` hashes go.mod, go.sum, main.go and the Go version: it is rebuilt only
when one of them changes (cold: minutes; the Go build cache makes a rebuild
after a main.go edit take seconds). Older builds are removed.

    python3 -m tests.sandbox.runsc_build     # builds if needed, prints the path
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "./tests/sandbox/runsc"
INPUTS = ("go.mod", "go.sum", "tests/sandbox/runsc/main.go")


class BuildError(Exception):
    pass


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gofer" / "runsc"


def _go():
    go = shutil.which("go")
    if go is None:
        raise BuildError("the `go` toolchain is not on PATH (runsc is built from the "
                         "gvisor.dev/gvisor module pinned in go.mod)")
    return go


def cache_key(go):
    h = hashlib.sha256()
    for name in INPUTS:
        h.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    h.update(subprocess.run([go, "env", "GOVERSION"], capture_output=True,
                            check=True).stdout)
    return h.hexdigest()[:16]


def build(quiet=True):
    """The path of the cached runsc, built first if its inputs changed."""
    go = _go()
    root = cache_root()
    key = cache_key(go)
    out = root / key / "runsc"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(root / (key + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # one build at a time per key
        if out.exists():
            return out
        if not quiet:
            print("building runsc (cold: a few minutes) into %s" % out, file=sys.stderr)
        tmp = out.with_name("runsc.partial")
        # CGO_ENABLED=0: with cgo, runsc's own gofer re-execs itself for capabilities.
        r = subprocess.run([go, "build", "-buildvcs=false", "-o", str(tmp), PACKAGE],
                           cwd=REPO, env=dict(os.environ, CGO_ENABLED="0"),
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise BuildError("go build %s failed:\n%s%s" % (PACKAGE, r.stdout, r.stderr))
        os.replace(tmp, out)
    for old in root.iterdir():                    # builds for inputs that no longer exist
        if old.name not in (key, key + ".lock"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    try:
        print(build(quiet=False))
    except BuildError as e:
        sys.exit("runsc_build: %s" % e)
