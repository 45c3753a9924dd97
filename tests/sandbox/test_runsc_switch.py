"""The runsc binary's gofer switch (runsc/main.go), without starting a sandbox:
GOFER_RUNSC_GOFER replaces exactly runsc's `gofer` subcommand, with runsc's
argv, environment and FDs."""
import os
import subprocess
import sys

import pytest

from .harness import GOFER_ENV

# A stand-in gofer: prints its argv, an environment variable and what the FD
# named in $FD reads.
FAKE = """import os, sys
print(repr(sys.argv[1:]))
print(os.environ.get("MARK"))
print(os.read(int(os.environ["FD"]), 100).decode())
"""


@pytest.fixture
def fake_gofer(tmp_path):
    path = tmp_path / "fake-gofer"
    path.write_text("#!%s\n%s" % (sys.executable, FAKE))
    path.chmod(0o755)
    return str(path)


def run(runsc_path, args, gofer, fd=-1):
    env = dict(os.environ, MARK="kept", FD=str(fd))
    env.pop(GOFER_ENV, None)
    if gofer is not None:
        env[GOFER_ENV] = gofer
    return subprocess.run([str(runsc_path), *args], env=env, capture_output=True, text=True,
                          timeout=60, pass_fds=(fd,) if fd >= 0 else ())


@pytest.mark.parametrize("args", [
    ["--root=/nonexistent", "--debug=true", "--debug-log-fd=3", "gofer", "--bundle", "B", "CID"],
    ["--root", "/nonexistent", "-debug", "gofer", "--spec-fd=4", "CID"],   # Go's other spellings
    ["gofer", "CID"],
])
def test_gofer_subcommand_execs_the_chosen_program(runsc_path, fake_gofer, args):
    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"inherited")
    os.close(w_fd)
    try:
        p = run(runsc_path, args, fake_gofer, fd=r_fd)
    finally:
        os.close(r_fd)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [repr(args), "kept", "inherited"]


def test_other_subcommands_stay_runsc(runsc_path, fake_gofer):
    # "gofer" as a flag's value is not the subcommand: this is `runsc spec`.
    p = run(runsc_path, ["--root", "gofer", "spec", "--bundle", "/nonexistent"], fake_gofer)
    assert p.returncode != 0 and "/nonexistent/config.json" in p.stdout + p.stderr
    assert "inherited" not in p.stdout


def test_unset_runs_runsc_own_gofer(runsc_path):
    p = run(runsc_path, ["gofer", "CID"], None)      # runsc's gofer: no --bundle, a usage error
    assert p.returncode != 0
    assert "bundle" in p.stdout + p.stderr


def test_exec_failure_is_reported_on_the_log_fd(runsc_path, tmp_path):
    with open(tmp_path / "log", "wb") as log:
        p = run(runsc_path, ["--log-fd=%d" % log.fileno(), "gofer", "CID"],
                str(tmp_path / "missing"), fd=log.fileno())
    assert p.returncode == 128
    said = (tmp_path / "log").read_text()
    assert GOFER_ENV in said and "missing" in said and "cannot exec" in said
