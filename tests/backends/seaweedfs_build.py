"""Builds SeaweedFS's `weed` (the S3 server of the gofer-s3 and gofer-tiered
tests) from the module pinned in tests/backends/seaweedfs/go.mod.

The binary is cached outside the checkout, in
``$XDG_CACHE_HOME/gofer/seaweedfs/<version>/weed`` (default ``~/.cache``), and
rebuilt only when the pinned version changes (cold: ~5 minutes on 2 cores,
~230 MB). Older builds are removed.

    python3 -m tests.backends.seaweedfs_build     # builds if needed, prints the path
"""
import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent / "seaweedfs"
PACKAGE = "github.com/seaweedfs/seaweedfs/weed"


class BuildError(Exception):
    pass


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gofer" / "seaweedfs"


def pinned_version():
    m = re.search(r"^require github\.com/seaweedfs/seaweedfs (\S+)$",
                  (MODULE_DIR / "go.mod").read_text(), re.M)
    if m is None:
        raise BuildError("%s/go.mod does not pin github.com/seaweedfs/seaweedfs" % MODULE_DIR)
    return m.group(1)


def build(quiet=True):
    """The path of the cached weed, built first if the pin changed."""
    go = shutil.which("go")
    if go is None:
        raise BuildError("the `go` toolchain is not on PATH (weed is built from "
                         "tests/backends/seaweedfs/go.mod)")
    root = cache_root()
    version = pinned_version()
    out = root / version / "weed"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(root / (version + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # one build at a time per version
        if out.exists():
            return out
        if not quiet:
            print("building SeaweedFS %s (cold: ~5 minutes) into %s" % (version, out),
                  file=sys.stderr)
        tmp = out.with_name("weed.partial")
        r = subprocess.run([go, "build", "-trimpath", "-buildvcs=false", "-o", str(tmp), PACKAGE],
                           cwd=MODULE_DIR, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise BuildError("go build %s failed:\n%s%s" % (PACKAGE, r.stdout, r.stderr))
        os.replace(tmp, out)
    for old in root.iterdir():                    # builds of other pins
        if old.name not in (version, version + ".lock"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    try:
        print(build(quiet=False))
    except BuildError as e:
        sys.exit("seaweedfs_build: %s" % e)
