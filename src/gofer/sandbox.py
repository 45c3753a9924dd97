"""Confining the gofer process before it serves: sync FDs, the root it
serves from, capabilities and rlimits (gVisor's runsc/cmd/gofer.go order).
Seccomp is in gofer.seccomp.

`setup_root` builds what runsc's SetupRootFS builds, so that a client holding
a donated FD reaches nothing of the host by walking `..`:

    /            a tmpfs (read-only once set up): the whole mount namespace
    /root        the container's root, the served mounts placed inside it
    /proc        host /proc, read-only, detached before serving
    /proc/fs     this process's FD directory, kept only as an open FD

The old root is detached after pivot_root, so `..` from the top of any served
mount ends in that tmpfs, which holds nothing but empty directories.
"""
import ctypes
import errno
import os
import stat

from gofer._server import nofile_limits, set_nofile_limits

_libc = ctypes.CDLL(None, use_errno=True)

CAPS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
        "SETGID": 6, "SETUID": 7, "SYS_CHROOT": 18, "SYS_ADMIN": 21}
# What gVisor's gofer keeps, less CAP_SYS_CHROOT: runsc needs it for a chroot
# after its capabilities are set; ours chroots before (so it needs none).
# SETUID/SETGID are added for --host-uds=open.
GOFER_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID")

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CLONE_NEWNS = 0x20000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_UNBINDABLE, MS_SLAVE, MS_RELATIME, MS_STRICTATIME = 1 << 17, 1 << 19, 1 << 21, 1 << 24
MNT_DETACH = 2
# Per-mount flags a bind remount keeps from the source mount (statvfs's ST_*
# bits have the same values as the MS_* ones).
KEPT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | \
    MS_RELATIME
MOUNT_OPTION_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV,
                      "noexec": MS_NOEXEC, "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
                      "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}

SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

NEW_ROOT = "/proc/fs"          # a directory every host has (runsc builds its root there too)


class SetupError(Exception):
    """The root cannot be set up as the spec asks; the message names the mount."""


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


# ------------------------------------------------------------ capabilities

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


def last_cap():
    """The highest capability number this kernel knows (needs /proc)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 63


def apply_caps(names, last=None):
    """Leaves this process (one thread at this point) only `names` in every
    capability set: bounding, effective, permitted, inheritable; ambient
    cleared. `last` is `last_cap()`, read while /proc was mounted."""
    keep = cap_mask(names)
    for cap in range((last_cap() if last is None else last) + 1):
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


def read_caps(pid="self"):
    """{"CapEff": int, ...} of a process, from /proc."""
    out = {}
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("Cap"):
                k, v = line.split(":")
                out[k] = int(v, 16)
    return out


def set_fd_limit(n):
    """RLIMIT_NOFILE = n (gVisor's --fdlimit); returns a warning instead of
    raising (EPERM is not fatal)."""
    try:
        set_nofile_limits(n, n)
    except (OverflowError, OSError) as e:
        return str(e)
    return None


def raise_fd_limit():
    """The soft RLIMIT_NOFILE up to the hard one, as Go's runtime does at
    start for runsc's gofer."""
    hard = nofile_limits()[1]
    set_nofile_limits(hard, hard)


# ------------------------------------------------------------------ mounts

def _mount(src, dst, flags, fstype=None, data=None):
    _check(_libc.mount(src and os.fsencode(src), os.fsencode(dst), fstype and fstype.encode(),
                       flags, data and data.encode()),
           "mount %s on %s" % (src or fstype or "(remount)", dst))


def _umount(path):
    _check(_libc.umount2(os.fsencode(path), MNT_DETACH), "unmount %s" % path)


def _fd_path(fd):
    return "/proc/self/fd/%d" % fd


def _walk(rootfd, parts):
    """An O_PATH FD of root/parts, one component at a time, following no
    symlink (the parts are ones `make_mount_point` found to be directories)."""
    fd = os.dup(rootfd)
    for name in parts:
        try:
            nfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nfd
    return fd


def make_mount_point(rootfd, dest, is_dir):
    """Resolves `dest` inside the root at `rootfd` as if that were "/" --
    symlinks, absolute ones included, and `..` never leave it (runsc's
    ResolveSymlinks) -- creating what is missing: directories, and a file
    for the last component when `is_dir` is false. Every step is relative to
    an FD and follows no symlink itself, so whatever earlier mounts put in
    place is seen. Returns (O_PATH FD of the mount point, its in-root path)."""
    pending = [p for p in dest.split("/") if p]
    done = []                        # resolved components, none a symlink
    links = 0
    fd = os.dup(rootfd)
    try:
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            if name == "..":
                done = done[:-1]
                os.close(fd)
                fd = _walk(rootfd, done)
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if pending or is_dir:
                    os.mkdir(name, 0o755, dir_fd=fd)
                else:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW |
                                     os.O_CLOEXEC, 0o644, dir_fd=fd))
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > 255:
                    raise OSError(errno.ELOOP, "too many symlinks")
                target = os.readlink(name, dir_fd=fd)
                if target.startswith("/"):
                    done = []
                    os.close(fd)
                    fd = os.dup(rootfd)
                pending = [p for p in target.split("/") if p] + pending
                continue
            nfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
            done.append(name)
        if stat.S_ISDIR(os.fstat(fd).st_mode) != is_dir:
            raise OSError(errno.ENOTDIR if is_dir else errno.EISDIR,
                          "the mount point is %sa directory and the source is %s" % (
                              "" if not is_dir else "not ", "one" if is_dir else "not"))
        return fd, "/" + "/".join(done)
    except BaseException:
        os.close(fd)
        raise


def _bind(source, rootfd, dest, flags):
    """Bind-mounts `source` at `dest` inside the root, then applies `flags`
    (and nosuid, and what the source mount has) to the new mount alone."""
    fd, where = make_mount_point(rootfd, dest, os.path.isdir(source))
    try:
        _mount(source, _fd_path(fd), MS_BIND | MS_REC)
    finally:
        os.close(fd)
    fd = _walk(rootfd, where.split("/")[1:] if where != "/" else [])   # the new mount's top
    try:
        kept = os.statvfs(fd).f_flag & KEPT_FLAGS
        _mount(None, _fd_path(fd), MS_BIND | MS_REMOUNT | MS_NOSUID | kept | flags)
    finally:
        os.close(fd)
    return where


def mount_flags(options, readonly):
    flags = MS_RDONLY if readonly else 0
    for o in options or ():
        flags |= MOUNT_OPTION_FLAGS.get(o, 0)
    return flags


class Root:
    """What `setup_root` leaves: the mounts' resolved destinations, this
    process's FD directory (an open FD; no /proc is mounted any more), and
    the kernel's last capability number, read while /proc was there."""

    def __init__(self, destinations, fd_dir, last_cap):
        self.destinations, self.fd_dir, self.last_cap = destinations, fd_dir, last_cap


def setup_root(root, mounts, root_readonly):
    """Builds the gofer's mount namespace (see the module docstring) and
    chroots into the container's root.

    `mounts` are (source, destination, options, readonly) in spec order;
    each destination is resolved inside the root as it stands after the
    earlier mounts, and created without following symlinks out of it.
    Returns a `Root`.
    """
    root = os.path.realpath(root)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", MS_SLAVE | MS_REC)          # nothing we mount reaches the host
    _mount("tmpfs", NEW_ROOT, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs", "mode=0755")
    _mount(None, NEW_ROOT, MS_UNBINDABLE)          # not copied into the /proc bind below
    for d in ("proc", "root"):
        os.mkdir(os.path.join(NEW_ROOT, d), 0o755)
    _mount("/proc", NEW_ROOT + "/proc", MS_BIND | MS_REC)
    _mount(None, NEW_ROOT + "/proc", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV |
           MS_NOEXEC)
    # This process's FD directory, bound in its own right: once /proc is
    # detached, `..` from it goes nowhere (unlike from /proc/self/fd).
    _mount(NEW_ROOT + "/proc/self/fd", NEW_ROOT + "/proc/fs", MS_BIND)

    _mount(root, root, MS_BIND | MS_REC)
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    destinations = []
    try:
        for source, dest, options, readonly in mounts:
            try:
                destinations.append(_bind(source, rootfd, dest, mount_flags(options, readonly)))
            except OSError as e:
                raise SetupError("mount %s (source %s): %s" % (dest, source, e.strerror)) from None
    finally:
        os.close(rootfd)
    _mount(root, NEW_ROOT + "/root", MS_BIND | MS_REC)
    if root_readonly:                                # read-only and overlay roots
        kept = os.statvfs(NEW_ROOT + "/root").f_flag & KEPT_FLAGS
        _mount(None, NEW_ROOT + "/root", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID |
               MS_NODEV | kept)

    os.chdir(NEW_ROOT)
    _check(_libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    _umount(".")                                    # the old root, stacked under ".", goes
    os.chdir("/")
    fd_dir = os.open("/proc/fs", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    last = last_cap()
    _umount("/proc")
    if os.path.lexists("/proc/self"):
        raise SetupError("/proc is still mounted after unmounting it")
    # Nothing may be created in the tmpfs, through `..` or otherwise.
    _mount(None, "/", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chroot("/root")
    os.chdir("/")
    return Root(destinations, fd_dir, last)
