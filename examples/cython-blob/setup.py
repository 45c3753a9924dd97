# The compiled part; everything else is in pyproject.toml. Cython finds
# gofer's .pxd files on sys.path; the C compiler needs gofer.get_include().
import gofer
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("gofer_blob._blob", ["gofer_blob/_blob.pyx"], include_dirs=[gofer.get_include()])],
    language_level=3))
