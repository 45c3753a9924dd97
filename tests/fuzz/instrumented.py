"""gofer built by clang with libFuzzer's coverage instrumentation
(`-fsanitize=fuzzer-no-link`) for the fuzz targets: its Cython modules and
native core count edges and comparisons that guide atheris, where the
normal gcc build leaves libFuzzer only the Python code's coverage.

Installed (`pip install --target`) in ``~/.cache/gofer/fuzz/<key>/site``
(tests/gobuild.py), where ``key`` hashes the sources the wheel is built
from, the flags, clang's version and the Python: rebuilt only when one of
them changes (cold: about two minutes). tests/fuzz/run.py imports it when
that directory leads PYTHONPATH; the rest of the suite uses the normal build.

    python3 -m tests.fuzz.instrumented     # builds if needed, prints the directory
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.gobuild import BuildError, cached, main

REPO = Path(__file__).resolve().parents[2]
INPUTS = ("src", "native", "CMakeLists.txt", "pyproject.toml")   # as scripts/lib/setup.sh
CFLAGS = "-fsanitize=fuzzer-no-link"


def clang():
    for cc in ("clang", "clang++"):
        if shutil.which(cc) is None:
            raise BuildError("no %s on PATH (Debian: clang; scripts/test installs it)" % cc)
    return subprocess.run(["clang", "--version"], capture_output=True, text=True,
                          check=True).stdout


def cache_key():
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                            "--", *INPUTS], cwd=REPO, capture_output=True, check=True).stdout
    h = hashlib.sha256()
    for name in sorted(f for f in files.decode().split("\0") if f):
        path = REPO / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update((CFLAGS + clang() + sys.version).encode())
    return h.hexdigest()[:16]


def build(quiet=True):
    """The directory holding the instrumented gofer, built first if needed."""
    def install(tmp):
        env = dict(os.environ, CC="clang", CXX="clang++", CFLAGS=CFLAGS, CXXFLAGS=CFLAGS)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--no-deps", "--target", str(tmp), "."],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise BuildError("pip install (clang, %s) failed:\n%s%s" % (CFLAGS, r.stdout, r.stderr))
    return cached("fuzz", cache_key(), "site", install, quiet)


if __name__ == "__main__":
    main(build, "instrumented")
