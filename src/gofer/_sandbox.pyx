# cython: language_level=3
"""The SIGSYS handler of the seccomp log mode (native/sigsys.c).

`gofer.seccomp.install(log=True)` calls `install_sigsys_handler` before it
loads a filter whose default action is SECCOMP_RET_TRAP: each syscall
outside the allowlist then logs ``gofer: seccomp: syscall NNN not allowed
(pid P): name`` on fd 2 and fails with ENOSYS instead of killing the gofer.
"""
import os

from gofer._native cimport gofer_sigsys_set_name, gofer_sigsys_install, gofer_sigsys_count


def install_sigsys_handler(names=None):
    """Installs the handler. `names` maps syscall numbers to names for the
    log line (numbers >= 1024 or names >= 32 bytes are logged as numbers)."""
    cdef int rc
    if names:
        for nr, name in names.items():
            b = os.fsencode(name)
            gofer_sigsys_set_name(nr, b)        # out of range: number only
    rc = gofer_sigsys_install()
    if rc:
        raise OSError(-rc, "installing the SIGSYS handler: " + os.strerror(-rc))


def trapped_count():
    """How many syscalls the handler has answered with ENOSYS."""
    return gofer_sigsys_count()
