"""A backend written in Cython cimports the installed base classes and
overrides their C fast paths; the server calls them with no Python in between."""
import os
import subprocess
import sys
import textwrap

import gofer
from gofer import _wire as w

SOURCE = textwrap.dedent("""
    # cython: language_level=3
    from libc.string cimport memset
    from gofer._server cimport ConnectionImpl, ControlFDImpl
    from gofer._wire cimport lisafs_statx

    cdef class FixedDir(ControlFDImpl):
        cdef int c_stat(self, lisafs_statx* out) except -1:
            memset(out, 0, sizeof(lisafs_statx))
            out.mask = 0x7ff
            out.mode = 0o40755
            out.ino = 4242
            return 0

    class FixedConnection(ConnectionImpl):
        def mount(self):
            return FixedDir()
""")

SETUP = textwrap.dedent("""
    import gofer
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="fixedfs", script_args=["build_ext", "--inplace", "-q"],
          ext_modules=cythonize([Extension("fixedfs", ["fixedfs.pyx"],
                                           include_dirs=[gofer.get_include()])], quiet=True))
""")


def test_cython_backend_overrides_the_fast_path(tmp_path, connect_impl):
    (tmp_path / "fixedfs.pyx").write_text(SOURCE)
    (tmp_path / "setup.py").write_text(SETUP)
    r = subprocess.run([sys.executable, "setup.py"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        import fixedfs
    finally:
        sys.path.remove(str(tmp_path))
    c = connect_impl(fixedfs.FixedConnection())
    assert c.root.stat.ino == 4242
    assert c.fstat(c.root.control_fd).mode == 0o40755
    # Its Python-level stat() was never written: only the C path answers.
    assert not hasattr(fixedfs.FixedDir, "__dict__") or "stat" not in fixedfs.FixedDir.__dict__
    assert os.path.exists(os.path.join(gofer.get_include(), "lisafs_wire.h"))
    assert w.FSTAT in c.supported
