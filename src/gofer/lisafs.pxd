# The public Cython surface for backends with C fast paths:
#     from gofer.lisafs cimport ControlFDImpl, OpenFDImpl, lisafs_statx
# Override c_stat, c_walk, c_open, c_read, c_write, c_getdents64, c_close or
# c_host_fd (which lets the server answer FStat, WalkStat, PRead, PWrite, FSync,
# Getdents64 and Close itself; with c_reopen_dir and c_adopt_open, OpenAt too;
# with c_host_tree and c_adopt_walk, Walk, MkdirAt, OpenCreateAt, UnlinkAt
# and RenameAt)
# (signatures in gofer/_server.pxd); the Python-level methods stay
# consistent (the default stat() asks c_stat). A c_getdents64 writes the
# count with w_u16 (or lisafs_st16 in place) and each entry with w_dirent.
# Headers: gofer.get_include(). The stock backend uses nothing else.
from gofer._server cimport BoundSocketFDImpl, ConnectionImpl, ControlFDImpl, OpenFDImpl
from gofer._wire cimport Statx, Writer, lisafs_st16, lisafs_statx, w_dirent, w_u16
