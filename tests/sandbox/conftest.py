"""Fixtures for the real-sandbox suite (see harness.py).

- ``runsc_path``: runsc with the GOFER_RUNSC_GOFER switch, built once and cached
  outside the checkout (runsc_build.py). Needs Go.
- ``runsc``: a harness.Runsc; skips unless the machine can run sandboxes
  (root, busybox-static, Go), naming what is missing.
- ``spec_template``: the config.json ``runsc spec`` writes.
- ``gofer_cmd``: our installed ``gofer`` console script.
"""
import shutil

import pytest

from . import harness
from .runsc_build import BuildError, build


@pytest.fixture(scope="session")
def runsc_path():
    if shutil.which("go") is None:
        pytest.skip("needs the `go` toolchain to build runsc from go.mod's gvisor")
    try:
        return build()
    except BuildError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def runsc(runsc_path):
    missing = harness.missing_prerequisites()
    if missing:
        pytest.skip("running a gVisor sandbox needs " + "; ".join(missing))
    return harness.Runsc(runsc_path)


@pytest.fixture(scope="session")
def spec_template(runsc):
    return harness.spec_template(runsc.path)


@pytest.fixture(scope="session")
def gofer_cmd():
    try:
        return harness.gofer_command()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
