"""gofer: a LISAFS file server for gVisor-style sandboxes."""
__version__ = "0.1.0"


def get_include():
    """The C headers a Cython extension needs to cimport gofer's .pxd files."""
    import os
    return os.path.join(os.path.dirname(__file__), "include")
