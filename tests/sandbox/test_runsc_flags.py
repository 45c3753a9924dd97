"""gofer's list of runsc's global flags (gofer.runsc_flags) is runsc's own:
the one tests/sandbox/runsc/flags/main.go prints from the gvisor.dev/gvisor module go.mod
pins, registered as runsc registers them. A flag that is boolean in runsc
but not here (or the other way round) would make `gofer` take a flag's value
for the subcommand, or the subcommand for a value."""
import os
import shutil
import subprocess

import pytest

from gofer import runsc_flags

from .runsc_build import REPO


@pytest.mark.skipif(shutil.which("go") is None,
                    reason="needs the `go` toolchain to read runsc's flags from go.mod's gvisor")
def test_runsc_global_flags_match_runsc():
    r = subprocess.run(["go", "run", "-buildvcs=false", "./tests/sandbox/runsc/flags"], cwd=REPO,
                       env=dict(os.environ, CGO_ENABLED="0"), capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stderr
    kinds = {"bool": set(), "value": set()}
    for line in r.stdout.splitlines():
        kind, name = line.split()
        kinds[kind].add(name)
    assert (sorted(runsc_flags.BOOLEAN), sorted(runsc_flags.VALUE)) == (
        sorted(kinds["bool"]), sorted(kinds["value"]))
