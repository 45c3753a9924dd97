# The public Cython surface for backends with C fast paths:
#     from gofer.lisafs cimport ControlFDImpl, OpenFDImpl, lisafs_statx
# Override c_stat, c_walk, c_open, c_read, c_write, c_getdents64 or c_close
# (signatures in gofer/_server.pxd); the Python-level methods stay
# consistent (the default stat() asks c_stat). Headers: gofer.get_include().
from gofer._server cimport BoundSocketFDImpl, ConnectionImpl, ControlFDImpl, OpenFDImpl
from gofer._wire cimport Writer, lisafs_statx
