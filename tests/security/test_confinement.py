"""A compromised sandbox reaches nothing outside its mounts.

The test plays a hostile sentry against `gofer gofer` started as runsc starts
it (tests/runsc_start.py) with --setup-root, capabilities and seccomp on, in
both directfs modes and with writable, read-only and overlay roots: it uses
every FD the gofer donates with `..`, /proc paths and writes, and plants
symlinks where later mounts go. Nothing outside the container's mounts may
be read or changed. (gVisor's own gofer is held to the same rules by the
same layout: see docs/security.md.)
"""
import errno
import json
import os
import stat
import uuid

import pytest

from gofer import _wire as w
from gofer.client import Client
from gofer.sandbox import GOFER_CAPS, cap_mask, read_caps
from runsc_start import RunscGofer
from security.rawclient import snapshot

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: the gofer sets up its root in mount namespaces")

NO_ID = 0xFFFFFFFF
ROOTS = {  # name: (root.readonly, the root's --gofer-mount-confs entry)
    "writable": (False, "lisafs:none"),
    "readonly": (True, "lisafs:none"),
    "overlay": (False, "lisafs:self"),          # runsc's default --overlay2=root:self
}
DIRECTFS = {"directfs-default": (), "directfs-false": ("--directfs=false",)}
UP = 12                                          # more `..` than any tree here is deep


class World:
    """A bundle and the host around it.

    rootfs/            the container root (rootfile, etc/hostname)
    vol/ -> /vol       a read-write bind mount holding two planted symlinks:
      escape -> <outside, absolute host path>
      rel    -> ../../(...)/<outside2, relative>
    volro/ -> /volro   a read-only bind mount
    nested/ -> /vol/nested
    m1/ -> /vol/escape/m1, m2/ -> /vol/rel/m2   mounts through the planted links
    outside/, outside2/   host directories no client may reach
    """

    def __init__(self, tmp, root_name):
        self.tmp = tmp
        self.secret_name = "secret-" + uuid.uuid4().hex
        self.outside, self.outside2 = tmp / "outside", tmp / "outside2"
        for d in (self.outside, self.outside2):
            d.mkdir()
            (d / self.secret_name).write_text("host secret\n")
        self.rootfs = tmp / "bundle" / "rootfs"
        (self.rootfs / "etc").mkdir(parents=True)
        (self.rootfs / "etc" / "hostname").write_text("sandbox\n")
        (self.rootfs / "rootfile").write_text("root data\n")
        (self.rootfs / "rootfile").chmod(0o644)
        self.vol, self.volro, nested, m1, m2 = (tmp / n for n in (
            "vol", "volro", "nested", "m1", "m2"))
        for d in (self.vol, self.volro, nested, m1, m2):
            d.mkdir()
            (d / "in-mount").write_text(d.name + "\n")
        (self.vol / "escape").symlink_to(self.outside)
        (self.vol / "rel").symlink_to("../" * 20 + str(self.outside2).lstrip("/"))
        readonly, root_conf = ROOTS[root_name]
        self.root_readonly = readonly or root_conf != "lisafs:none"
        mounts = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/vol", "type": "bind", "source": str(self.vol), "options": ["rbind"]},
            {"destination": "/volro", "type": "bind", "source": str(self.volro),
             "options": ["rbind", "ro"]},
            {"destination": "/vol/nested", "type": "bind", "source": str(nested),
             "options": ["rbind"]},
            {"destination": "/vol/escape/m1", "type": "bind", "source": str(m1),
             "options": ["rbind"]},
            {"destination": "/vol/rel/m2", "type": "bind", "source": str(m2),
             "options": ["rbind"]},
        ]
        self.names = ["/", "/vol", "/volro", "/vol/nested", "m1", "m2"]
        self.readonly = {"/": self.root_readonly, "/volro": True}
        spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": readonly},
                "mounts": mounts}
        (tmp / "bundle" / "config.json").write_text(json.dumps(spec))
        self.confs = [root_conf] + ["lisafs:none"] * 5
        self.before = {d: snapshot(d, nlink=False)
                       for d in (self.outside, self.outside2, self.volro)}
        if self.root_readonly:
            self.before[self.rootfs] = snapshot(self.rootfs, nlink=False)
        self.tops = (self.rootfs, self.vol, self.volro, nested, m1, m2)

    def inside(self):
        """Every directory the container may see, by identity (mount points
        made by the gofer included)."""
        out = set()
        for top in self.tops:
            for dirpath, _, _ in os.walk(top):
                st = os.stat(dirpath)
                out.add((st.st_dev, st.st_ino))
        return out

    def unchanged(self):
        for d, snap in self.before.items():
            if d == self.rootfs:
                # Mount points are made in the rootfs before it is remounted
                # read-only (as runsc does); nothing else may differ.
                now = {k: v for k, v in snapshot(d, nlink=False).items() if k in snap}
                assert now == snap, d
            else:
                assert snapshot(d, nlink=False) == snap, d
        for planted in ("/" + self.secret_name, "/planted"):
            assert not os.path.lexists(planted)


@pytest.fixture(params=list(ROOTS))
def world(request, tmp_path):
    return World(tmp_path, request.param)


@pytest.fixture(params=list(DIRECTFS))
def gofer(request, world):
    g = RunscGofer(world.tmp / "bundle", world.confs, globals_=DIRECTFS[request.param],
                   runsc_namespaces=True)
    g.directfs = request.param == "directfs-default"
    try:
        g.clients = [Client(s) for s in g.socks]
    except OSError:
        rc, log = g.finish()
        pytest.fail("the gofer did not serve (exit %s):\n%s" % (rc, log))
    yield g
    for c in g.clients:
        if c.mount_fd is not None:
            os.close(c.mount_fd)
    rc, log = g.finish()
    assert rc == 0, log


def open_file(c, path, flags=os.O_RDONLY):
    status, inodes = c.walk(c.root.control_fd, [os.fsencode(p) for p in path.split("/")])
    assert status == w.WALK_SUCCESS, path
    return c.open_at(inodes[-1].control_fd, flags)


def donated_dirs(gofer):
    return [c.mount_fd for c in gofer.clients if c.mount_fd is not None]


def test_mount_donates_the_mount_point_only_with_directfs(gofer):
    # runsc's sentry needs the host FD with directfs (its default) and
    # closes any it gets without.
    fds = donated_dirs(gofer)
    assert len(fds) == (len(gofer.clients) if gofer.directfs else 0)
    for c, fd in zip(gofer.clients, fds):
        assert stat.S_ISDIR(os.fstat(fd).st_mode)
        assert os.fstat(fd).st_ino == c.root.stat.ino


def test_dotdot_from_donated_fds_ends_in_an_empty_read_only_root(gofer, world):
    fds = donated_dirs(gofer)
    if not gofer.directfs:
        assert fds == []
        fd, host = open_file(gofer.clients[0], "rootfile")
        with pytest.raises(NotADirectoryError):
            os.open("..", os.O_RDONLY, dir_fd=host)
        os.close(host)
        return
    outside = str(world.outside / world.secret_name).lstrip("/")
    inside = world.inside()
    for fd in fds:
        for k in range(1, UP):
            up = "/".join([".."] * k)
            d = os.open(up, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            try:
                st = os.fstat(d)
                if (st.st_dev, st.st_ino) not in inside:
                    # Above every mount: the gofer's own empty root.
                    assert sorted(os.listdir(d)) == ["proc", "root"]
                    assert os.listdir(os.open("proc", os.O_RDONLY, dir_fd=d)) == []
                    with pytest.raises(OSError) as e:
                        os.open("planted", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=d)
                    assert e.value.errno == errno.EROFS
            finally:
                os.close(d)
            for target in (outside, "proc/self/root/" + outside, "proc/1/root/" + outside,
                           "proc/%d/root/%s" % (gofer.proc.pid, outside), "root/../" + outside):
                with pytest.raises(FileNotFoundError):
                    os.open(up + "/" + target, os.O_RDONLY, dir_fd=fd)
    world.unchanged()


def test_read_only_roots_and_mounts_refuse_writes_through_donated_fds(gofer, world):
    checked = 0
    for name, c in zip(world.names, gofer.clients):
        if name not in ("/", "/volro"):
            continue
        ro = world.readonly[name]
        target = "rootfile" if name == "/" else "in-mount"
        fd, host = open_file(c, target)
        attempts = [
            lambda: os.fchmod(host, 0o4777),
            lambda: os.fchown(host, 1, 1),
            lambda: os.setxattr(host, "user.planted", b"1"),
            lambda: os.close(os.open("/proc/self/fd/%d" % host, os.O_WRONLY | os.O_TRUNC)),
        ]
        if gofer.directfs:
            mfd = c.mount_fd
            attempts += [
                lambda: os.close(os.open(target, os.O_WRONLY, dir_fd=mfd)),
                lambda: os.close(os.open("new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=mfd)),
                lambda: os.mkdir("newdir", dir_fd=mfd),
                lambda: os.fchmod(mfd, 0o777),
                lambda: os.fchown(mfd, 1, 1),
                lambda: os.setxattr(mfd, "user.planted", b"1"),
            ]
        for attempt in attempts:
            if ro:
                with pytest.raises(OSError) as e:
                    attempt()
                assert e.value.errno == errno.EROFS
            else:
                attempt()                 # a writable root takes the same calls
            checked += 1
        os.close(host)
    assert checked
    world.unchanged()


def test_mount_points_are_made_inside_the_root_through_planted_symlinks(gofer, world):
    # /vol/escape -> <outside> (absolute) and /vol/rel -> ../../.. <outside2>
    # resolve inside the root, after /vol is mounted, as runsc resolves them.
    mounts = {m["source"]: m["destination"] for m in gofer.mounts()}
    assert mounts[str(world.tmp / "m1")] == str(world.outside) + "/m1"
    assert mounts[str(world.tmp / "m2")] == str(world.outside2) + "/m2"
    m1, m2 = gofer.clients[4], gofer.clients[5]
    assert open_file(m1, "in-mount")[0] is not None
    assert m2.pread(open_file(m2, "in-mount")[0], 0, 10) == b"m2\n"
    # The sandbox sees them there, in its root; the host dirs are untouched.
    root = gofer.clients[0]
    parts = [os.fsencode(p) for p in str(world.outside).strip("/").split("/")] + [b"m1"]
    status, inodes = root.walk(root.root.control_fd, parts)
    assert status == w.WALK_SUCCESS
    assert inodes[-1].stat.ino == os.stat(world.tmp / "m1").st_ino
    assert not (world.outside / "m1").exists() and not (world.outside2 / "m2").exists()
    world.unchanged()


def test_what_the_gofer_keeps(gofer, world):
    caps = read_caps(gofer.proc.pid)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == cap_mask(GOFER_CAPS)
    assert caps["CapAmb"] == 0
    # No FD of the host's /proc: the only procfs FD is its own FD directory.
    proc_dev = os.stat("/proc").st_dev
    fd_dirs = 0
    for n in os.listdir("/proc/%d/fd" % gofer.proc.pid):
        try:
            st = os.stat("/proc/%d/fd/%s" % (gofer.proc.pid, n))
        except OSError:
            continue
        if st.st_dev == proc_dev and stat.S_ISDIR(st.st_mode):
            assert all(e.isdigit() for e in os.listdir("/proc/%d/fd/%s" % (gofer.proc.pid, n)))
            fd_dirs += 1
    assert fd_dirs == 1
    # Its root is the container's root, with no /proc in it.
    assert os.readlink("/proc/%d/root" % gofer.proc.pid) == "/root"


def test_xattrs_answer_like_runscs_gofer_after_the_chroot(gofer, world):
    # The sentry reads security.capability of every program it runs
    # (directfs=false): ENODATA, not ENOENT, when the file has none.
    c = gofer.clients[0]
    status, [f] = c.walk(c.root.control_fd, [b"rootfile"])
    with pytest.raises(OSError) as e:
        c.call(w.FGETXATTR, fd=f.control_fd, buf_size=0, name=b"security.capability")
    assert e.value.errno == errno.ENODATA
    if not world.root_readonly:
        c.call(w.FSETXATTR, fd=f.control_fd, name=b"user.k", value=b"v", flags=0)
        assert c.call(w.FGETXATTR, fd=f.control_fd, buf_size=0, name=b"user.k")["value"] == b"v"
        assert os.getxattr(world.rootfs / "rootfile", "user.k") == b"v"
