"""docs/extensions.md, run as written: its blobstore extension, packaged with
the doc's pyproject.toml, is served by the doc's `gofer serve` command and by
`gofer gofer` under the doc's spec, passes the conformance kit with the
doc's test file, and type-checks clean with mypy against the shipped stubs,
while a deliberately wrong extension does not; the Cython recipes build
examples/cython-blob in a fresh venv, with and without build isolation."""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from gofer.client import Client
from gofer.lisafs import MID, WALK_SUCCESS
from runsc_start import RunscGofer

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "extensions.md")
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
NO_ID = 0xFFFFFFFF


def doc_blocks(lang):
    with open(DOC) as f:
        return [body for kind, body in FENCE.findall(f.read()) if kind == lang]


def doc_files():
    """{name: text} of the blocks whose first line is "# file: NAME", in order."""
    files = {}
    with open(DOC) as f:
        for _, body in FENCE.findall(f.read()):
            first = body.partition("\n")[0]
            if first.startswith("# file: "):
                files.setdefault(first[len("# file: "):].strip(), []).append(body)
    return {name: "\n\n".join(parts) for name, parts in files.items()}


@pytest.fixture(scope="module")
def blobstore(tmp_path_factory):
    """The doc's package written out and pip-installed into a directory of
    its own (not the venv): (package dir, site dir)."""
    pkg, site = tmp_path_factory.mktemp("blobstore"), tmp_path_factory.mktemp("site")
    files = doc_files()
    assert set(files) == {"blobstore.py", "pyproject.toml", "test_blobstore.py"}, set(files)
    for name, text in files.items():
        (pkg / name).write_text(text)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-deps", "--target", str(site), str(pkg)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return pkg, site


def env_with(*paths):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] +
                                        [p for p in [env.get("PYTHONPATH")] if p])
    return env


def use_store(c):
    """Creates, writes, reads back and lists one file through a client."""
    r, fds = c.call_fds(MID.OpenCreateAt, dir_fd=c.root.control_fd, uid=NO_ID, gid=NO_ID,
                        mode=0o644, flags=os.O_RDWR, name=b"note")
    for fd in fds:
        os.close(fd)
    assert c.pwrite(r["new_fd"], 0, b"kept in memory") == 14
    status, inodes = c.walk(c.root.control_fd, [b"note"])
    assert status == WALK_SUCCESS and inodes[0].stat.size == 14
    fd, _ = c.open_at(inodes[0].control_fd, os.O_RDONLY)
    assert c.pread(fd, 5, 100) == b"in memory"
    d, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    assert [e.name for e in c.getdents64(d, 4096)] == [b"note"]


def test_gofer_serve_command_as_written(blobstore, tmp_path):
    pkg, site = blobstore
    [cmd] = [line for block in doc_blocks("sh") for line in block.splitlines()
             if line.startswith("gofer serve")]
    sock = tmp_path / "blobstore.sock"
    argv = shlex.split(cmd.replace("/tmp/blobstore.sock", str(sock)))
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gofer"), *argv[1:]],
                            env=env_with(site), stderr=subprocess.PIPE, text=True)
    try:
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        with Client.connect(sock) as c:
            use_store(c)
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()


def test_spec_driven_mount_under_gofer_gofer(blobstore, tmp_path, monkeypatch):
    pkg, site = blobstore
    [fragment] = doc_blocks("json")
    source = tmp_path / "srv-blobs"
    source.mkdir()
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "blobs").mkdir(parents=True)
    spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": False},
            **json.loads(fragment.replace("/srv/blobs", str(source)))}
    (bundle / "config.json").write_text(json.dumps(spec))
    monkeypatch.setenv("PYTHONPATH", str(site))
    g = RunscGofer(bundle, ["lisafs:none"] * 2,
                   ["--apply-caps=false", "--setup-root=false", "--extension=blobstore"])
    root, blobs = Client(g.socks[0]), Client(g.socks[1])
    use_store(blobs)
    assert root.walk(root.root.control_fd, [b"blobs"])[0] == WALK_SUCCESS   # stock: the rootfs
    assert os.listdir(source) == []
    rc, log = g.finish()
    assert rc == 0, log
    assert "serving /blobs with extension blobstore" in log
    assert "serving / with extension" not in log


def test_conformance_kit_as_written(blobstore):
    pkg, site = blobstore
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_blobstore.py"], cwd=pkg, env=env_with(site, pkg),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    # stat, walk, open, create, read/write: over the socket and over channels.
    assert "10 passed" in r.stdout, r.stdout[-3000:]


WRONG = '''
from gofer.lisafs import Child, ControlFDImpl, OpenResult, Statx


class Wrong(ControlFDImpl):
    def stat(self) -> Statx:
        return Statx(mask=1)

    def walk(self, name: bytes) -> tuple[int, int]:
        return (1, 2)

    def open(self, flags: int) -> OpenResult:
        return OpenResult(self)
'''


def mypy(directory, *files):
    return subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary",
                           "--cache-dir", str(directory / ".mypy_cache"), *files],
                          cwd=directory, capture_output=True, text=True, timeout=600)


def test_mypy_accepts_the_doc_and_catches_wrong_shapes(blobstore, tmp_path):
    pkg, _ = blobstore
    r = mypy(pkg, "blobstore.py")
    assert r.returncode == 0, r.stdout + r.stderr
    (tmp_path / "wrong.py").write_text(WRONG)
    r = mypy(tmp_path, "wrong.py")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r'wrong.py:9: error: Return type "[Tt]uple\[int, int\]" of "walk" '
                     r'incompatible with return type "(Child \| None|Optional\[Child\])" '
                     r'in supertype "(gofer\.lisafs\.)?ControlFDImpl"', r.stdout), r.stdout
    assert re.search(r'wrong.py:13: error: Argument 1 to "OpenResult" has incompatible type '
                     r'"Wrong"; expected "OpenFDImpl"', r.stdout), r.stdout
    assert "stat" not in r.stdout, "a right method was reported: " + r.stdout


# ---------------------------------------------------------------- the Cython route

REPO = os.path.join(os.path.dirname(__file__), os.pardir)
RECIPES = [b for b in doc_blocks("sh") if "./examples/cython-blob" in b]

# Run in the new venv: gofer and the example are its own, the example is
# found by its entry point, and it passes the conformance kit.
USE_BLOB = """
import importlib.metadata, sys
import gofer
from gofer.testing import claimed_checks, run_check
assert gofer.__file__.startswith(sys.prefix + "/"), gofer.__file__
[ep] = [e for e in importlib.metadata.entry_points(group="gofer.extensions") if e.name == "blob"]
factory = lambda workdir: ep.load()().new_connection(None, None, "/", False)[0]
checks = claimed_checks(factory)
for check in checks:
    for channels in (False, True):
        run_check(check, factory, channels)
print(" ".join(c.__name__ for c in checks))
"""


@pytest.fixture(scope="module")
def gofer_wheels(tmp_path_factory):
    """A directory holding this gofer's wheel: the one scripts/test built
    for this venv, else a new one."""
    found = glob.glob(os.path.join(sys.prefix, ".gofer-wheel", "*", "gofer-*.whl"))
    if found:
        return os.path.dirname(found[0])
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                    str(wheels), REPO], check=True, timeout=1800)
    return str(wheels)


def test_the_doc_has_both_cython_recipes():
    assert len(RECIPES) == 2, RECIPES
    assert "--no-build-isolation" not in RECIPES[0] and "--no-build-isolation" in RECIPES[1]


@pytest.mark.parametrize("recipe", RECIPES, ids=["build-isolation", "no-build-isolation"])
def test_cython_recipe_in_a_fresh_venv(recipe, gofer_wheels, tmp_path):
    # A copy of the example: pip builds in the source tree.
    shutil.copytree(os.path.join(REPO, "examples", "cython-blob"),
                    tmp_path / "examples" / "cython-blob")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(GOFER_WHEELS=gofer_wheels, PIP_DISABLE_PIP_VERSION_CHECK="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    r = subprocess.run(["bash", "-euc", recipe], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    r = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", USE_BLOB],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert r.stdout.split() == ["check_stat", "check_walk", "check_open"], r.stdout
