"""The Cython route: a backend cimports the installed base classes (from the
public gofer.lisafs) and overrides their C fast paths; the server calls them
with no Python in between, and the Python-level methods stay consistent.
Every shipped .pxd compiles, and examples/cython-blob builds with the recipe
of docs/extensions.md."""
import glob
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import gofer
from gofer.lisafs import MID, WALK_SUCCESS
from gofer.testing import claimed_checks, run_check

SOURCE = textwrap.dedent("""
    # cython: language_level=3
    from libc.string cimport memset
    from gofer.lisafs cimport ConnectionImpl, ControlFDImpl, lisafs_statx
    from gofer.lisafs import Child

    cdef class FixedDir(ControlFDImpl):
        cdef int c_stat(self, lisafs_statx* out) except -1:
            memset(out, 0, sizeof(lisafs_statx))
            out.mask = 0x7ff
            out.mode = 0o40755
            out.ino = 4242
            return 0

        def walk(self, name):
            child = FixedDir()
            return Child(child, child.stat())       # the Python stat() of a C-only stat

    class FixedConnection(ConnectionImpl):
        def mount(self):
            return FixedDir()
""")

SETUP = textwrap.dedent("""
    import gofer
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="{name}", script_args=["build_ext", "--inplace", "-q"],
          ext_modules=cythonize([Extension("{name}", ["{name}.pyx"],
                                           include_dirs=[gofer.get_include()])], quiet=True))
""")


def build(tmp_path, name, source):
    (tmp_path / (name + ".pyx")).write_text(source)
    (tmp_path / "setup.py").write_text(SETUP.format(name=name))
    r = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def test_cython_backend_overrides_the_fast_path(tmp_path, connect_impl):
    build(tmp_path, "fixedfs", SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        import fixedfs
    finally:
        sys.path.remove(str(tmp_path))
    c = connect_impl(fixedfs.FixedConnection())
    assert c.root.stat.ino == 4242
    assert c.fstat(c.root.control_fd).mode == 0o40755
    # Its Python-level stat() was never written: it answers from c_stat.
    assert "stat" not in vars(fixedfs.FixedDir)
    assert fixedfs.FixedDir().stat().ino == 4242
    status, inodes = c.walk(c.root.control_fd, [b"again"])
    assert status == WALK_SUCCESS and inodes[0].stat.ino == 4242
    assert MID.FStat in c.supported and MID.Walk in c.supported


def test_every_shipped_pxd_compiles(tmp_path):
    package = os.path.dirname(gofer.__file__)
    pxds = sorted(os.path.relpath(p, os.path.dirname(package))[:-4].replace(os.sep, ".")
                  for p in glob.glob(os.path.join(package, "**", "*.pxd"), recursive=True))
    assert "gofer.lisafs" in pxds and "gofer._native" in pxds, pxds
    build(tmp_path, "allpxd", "# cython: language_level=3\n" +
          "".join("cimport %s\n" % m for m in pxds))
    # It compiled with every header the .pxd files name (sigsys.h among them).
    assert '#include "sigsys.h"' in (tmp_path / "allpxd.c").read_text()


EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "cython-blob")


@pytest.fixture(scope="module")
def cython_blob(tmp_path_factory):
    """examples/cython-blob built and installed as docs/extensions.md says
    (without build isolation, against this venv's gofer), into a directory
    of its own; the copy keeps the build's files out of the checkout."""
    src, site = tmp_path_factory.mktemp("src") / "cython-blob", tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE, src)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-deps", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sys.path.insert(0, str(site))
    try:
        import gofer_blob
    finally:
        sys.path.remove(str(site))
    return gofer_blob


def blob_connection(gofer_blob):
    return gofer_blob.BlobExtension().new_connection(None, None, "/", False)[0]


def test_cython_example_serves_through_its_fast_paths(cython_blob, connect_impl):
    c = connect_impl(blob_connection(cython_blob))
    status, inodes = c.walk(c.root.control_fd, [b"hello.txt"])
    assert status == WALK_SUCCESS and inodes[0].stat.size == 18
    fd, host = c.open_at(inodes[0].control_fd, os.O_RDONLY)
    assert host is None
    assert c.pread(fd, 6, 100) == b"from cython\n"
    d, _ = c.open_at(c.root.control_fd, os.O_RDONLY)
    assert [e.name for e in c.getdents64(d, 4096)] == [b"hello.txt", b"zeros"]
    assert MID.PRead in c.supported and MID.PWrite not in c.supported


@pytest.mark.parametrize("channels", [False, True], ids=["socket", "channels"])
def test_cython_example_passes_the_conformance_kit(cython_blob, channels):
    factory = lambda workdir: blob_connection(cython_blob)      # noqa: E731
    checks = claimed_checks(factory)
    assert [c.__name__ for c in checks] == ["check_stat", "check_walk", "check_open"]
    for check in checks:
        run_check(check, factory, channels)
