"""Confining the gofer process before it serves: sync FDs, the root it is
chrooted into, capabilities and rlimits (gVisor's runsc/cmd/gofer.go order).
Seccomp is in gofer.seccomp."""
import ctypes
import errno
import os
import resource

_libc = ctypes.CDLL(None, use_errno=True)

CAPS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
        "SETGID": 6, "SETUID": 7, "SYS_CHROOT": 18, "SYS_ADMIN": 21}
# What gVisor's gofer keeps; SETUID/SETGID are added for --host-uds=open.
GOFER_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "SYS_CHROOT")

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
CLONE_NEWNS = 0x20000
MS_RDONLY, MS_NOSUID, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 1, 2, 32, 4096, 16384, 1 << 19


def _check(rc, what):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def wait_for_eof(fd):
    """Blocks until the other end of `fd` closes (runsc's sync FDs), then
    closes it."""
    try:
        while os.read(fd, 4096):
            pass
    finally:
        os.close(fd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def cap_mask(names):
    mask = 0
    for n in names:
        mask |= 1 << CAPS[n]
    return mask


def apply_caps(names):
    """Leaves this process (one thread at this point) only `names` in every
    capability set: bounding, effective, permitted, inheritable; ambient
    cleared."""
    keep = cap_mask(names)
    try:
        with open(CAP_LAST_CAP_FILE) as f:
            last = int(f.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        if not keep & (1 << cap):
            rc = _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
            if rc < 0 and ctypes.get_errno() != errno.EINVAL:
                _check(rc, "dropping capability %d" % cap)
    hdr = _CapHeader(0x20080522, 0)                     # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    for i in range(2):
        word = (keep >> (32 * i)) & 0xFFFFFFFF
        data[i].effective &= word
        data[i].permitted &= word
        data[i].inheritable &= word
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient caps")


def set_fd_limit(n):
    """RLIMIT_NOFILE = n (gVisor's --fdlimit); EPERM is only a warning."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    except (ValueError, OSError) as e:
        return str(e)
    return None


def _mount(src, dst, flags):
    _check(_libc.mount(src and os.fsencode(src), os.fsencode(dst), None, flags, None),
           "mount %s on %s" % (src, dst))


def setup_root(root, binds):
    """Builds the tree the gofer serves and chroots into it.

    In a private mount namespace (so nothing leaks to the host), `root` is
    bound onto itself and each `(source, destination, readonly)` bind mount
    is placed at root+destination; then the process chroots into root. The
    mounts the sandbox sees are then plain paths under "/" for the gofer, and
    no host path outside them is reachable by any name.
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", MS_SLAVE | MS_REC)
    _mount(root, root, MS_BIND | MS_REC)
    for source, dest, readonly in binds:
        target = os.path.join(root, dest.lstrip("/"))
        if not os.path.lexists(target):
            if os.path.isdir(source):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        _mount(source, target, MS_BIND | MS_REC)
        if readonly:
            _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    os.chroot(root)
    os.chdir("/")


def read_caps(pid="self"):
    """{"CapEff": int, ...} of a process, from /proc."""
    out = {}
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("Cap"):
                k, v = line.split(":")
                out[k] = int(v, 16)
    return out
