"""Go programs the tests need (runsc, SeaweedFS's weed), and the fuzz
targets' instrumented gofer (tests/fuzz/instrumented.py), built once and
cached outside the checkout, in ``$XDG_CACHE_HOME/gofer/<name>/<key>/``
(default ``~/.cache``). The key names the inputs: a new key builds anew and
removes the builds of older keys."""
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path


class BuildError(Exception):
    pass


def go():
    """The go toolchain's path."""
    path = shutil.which("go")
    if path is None:
        raise BuildError("the `go` toolchain is not on PATH (Go >= 1.26.3, from go.dev/dl)")
    return path


def cache_root(name):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gofer" / name


def cached_build(name, key, package, cwd, flags=(), env=None, quiet=True, timeout=3600):
    """The path of the cached binary `name` for `key`, built first (`go build
    FLAGS PACKAGE` in `cwd`) if that key has no build yet; one build at a
    time per key."""
    def build(tmp):
        r = subprocess.run([go(), "build", "-buildvcs=false", *flags, "-o", str(tmp), package],
                           cwd=cwd, env=None if env is None else dict(os.environ, **env),
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise BuildError("go build %s failed:\n%s%s" % (package, r.stdout, r.stderr))
    return cached(name, key, name, build, quiet)


def cached(name, key, leaf, build, quiet=True):
    """The path `<cache>/<name>/<key>/<leaf>`, made first by `build(tmp)`
    (which writes a file or a directory at `tmp`) if that key has none yet;
    one build at a time per key, and the other keys' builds removed."""
    root = cache_root(name)
    out = root / key / leaf
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(root / (key + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        if not quiet:
            print("building %s (cold: minutes) into %s" % (name, out), file=sys.stderr)
        tmp = out.with_name(leaf + ".partial")
        if tmp.is_dir():
            shutil.rmtree(tmp)
        build(tmp)
        os.replace(tmp, out)
    for old in root.iterdir():                    # builds for inputs that no longer exist
        if old.name not in (key, key + ".lock"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return out


def main(build, name):
    """`python -m ...`: builds if needed and prints the path."""
    try:
        print(build(quiet=False))
    except BuildError as e:
        sys.exit("%s: %s" % (name, e))
