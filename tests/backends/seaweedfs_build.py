"""Builds SeaweedFS's `weed` (the S3 server of the gofer-s3 and gofer-tiered
tests) from the module pinned in tests/backends/seaweedfs/go.mod.

Cached in ``~/.cache/gofer/weed/<version>/weed`` (tests/gobuild.py), rebuilt
only when the pinned version changes (cold: ~5 minutes on 2 cores, ~230 MB).

    python3 -m tests.backends.seaweedfs_build     # builds if needed, prints the path
"""
import re
from pathlib import Path

from tests.gobuild import BuildError, cached_build, main

MODULE_DIR = Path(__file__).resolve().parent / "seaweedfs"
PACKAGE = "github.com/seaweedfs/seaweedfs/weed"


def pinned_version():
    m = re.search(r"^require github\.com/seaweedfs/seaweedfs (\S+)$",
                  (MODULE_DIR / "go.mod").read_text(), re.M)
    if m is None:
        raise BuildError("%s/go.mod does not pin github.com/seaweedfs/seaweedfs" % MODULE_DIR)
    return m.group(1)


def build(quiet=True):
    """The path of the cached weed, built first if the pin changed."""
    return cached_build("weed", pinned_version(), PACKAGE, MODULE_DIR, flags=("-trimpath",),
                        quiet=quiet)


if __name__ == "__main__":
    main(build, "seaweedfs_build")
