"""Runs the C tests of the native core (native/tests/run.sh).

The host-architecture run needs a C compiler (``cc`` or $CC). The arm64 run
cross-compiles with aarch64-linux-gnu-gcc and runs under qemu-aarch64; it is
skipped when those tools are missing (Debian packages gcc-aarch64-linux-gnu
and qemu-user).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RUN_SH = Path(__file__).resolve().parent.parent / "native" / "tests" / "run.sh"

ARM64_TOOLS = {
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "qemu-aarch64": "qemu-user",
}


def _run(arch):
    env = dict(os.environ, ARCH=arch)
    proc = subprocess.run(
        ["bash", str(RUN_SH)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert " 0 failed" in proc.stdout and "fdtable: " in proc.stdout, output


def test_native_host():
    _run("native")


def test_native_arm64():
    missing = [
        f"{tool} (Debian package {pkg})"
        for tool, pkg in ARM64_TOOLS.items()
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.skip("arm64 cross-test needs " + ", ".join(missing))
    _run("arm64")
