"""`gofer gofer` started the way runsc starts its gofer: a bundle, a spec
FD, one socketpair per served mount, the mounts pipe, runsc-style argv."""
import errno
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from gofer import _wire as w
from gofer import spec as specmod
from gofer.client import Client
from gofer.sandbox import GOFER_CAPS, cap_mask, read_caps
from runsc_start import RunscGofer
from test_cli import NOT_ON_THE_START_PATH
from test_server import errno_of

NO_ID = 0xFFFFFFFF


@dataclass
class Bundle:
    dir: object
    rootfs: object
    shared: object
    ro: object
    spec: dict = field(default_factory=dict)


@pytest.fixture
def bundle(tmp_path):
    b = tmp_path / "bundle"
    rootfs = b / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("sandbox\n")
    (rootfs / "real").mkdir()
    (rootfs / "via").symlink_to("/real")              # a destination through a symlink
    shared, ro, memsrc = tmp_path / "shared", tmp_path / "ro", tmp_path / "memsrc"
    data = tmp_path / "data"
    for d in (shared, ro, memsrc, data):
        d.mkdir()
    (data / "numbers").write_text("1 2 3")
    (shared / "data.txt").write_text("shared data")
    (ro / "keep.txt").write_text("read only")
    spec = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": False},
        "annotations": {"dev.gofer.memfs.mounts": "/mem"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},        # not served
            {"destination": "/via/shared", "type": "bind", "source": str(shared),
             "options": ["rbind", "rw"]},
            {"destination": "/ro", "source": str(ro), "options": ["rbind", "ro"]},
            {"destination": "/mem", "type": "bind", "source": str(memsrc), "options": ["bind"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},       # not served
            {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind"]},
        ],
    }
    (b / "config.json").write_text(json.dumps(spec))
    return Bundle(b, rootfs, shared, ro, spec)


CONFS = ["lisafs:none"] * 5        # the root and the bundle's four bind mounts


def Gofer(bundle, extra=(), globals_=(), spec_text=None, **kw):
    spec_path = None
    if spec_text is not None:
        spec_path = bundle.dir / "other.json"
        spec_path.write_text(spec_text)
    g = RunscGofer(bundle.dir, CONFS, extra, ("--network=sandbox", "--platform=systrap",
                                               *globals_), spec_path, **kw)
    g.client = lambda i: Client(g.socks[i])
    return g


@pytest.mark.parametrize("seccomp", [[], ["--seccomp=false"]], ids=["seccomp", "no-seccomp"])
def test_runsc_style_start_serves_each_mount_as_configured(bundle, seccomp):
    g = Gofer(bundle, extra=["--apply-caps=false", "--setup-root=false", *seccomp])
    root, shared, ro, mem, data = (g.client(i) for i in range(5))
    # The root is the rootfs.
    status, inodes = root.walk(root.root.control_fd, [b"etc", b"hostname"])
    fd, h = root.open_at(inodes[-1].control_fd, os.O_RDONLY)
    os.close(h)
    assert root.pread(fd, 0, 100) == b"sandbox\n"
    # A bind mount, read-write.
    assert shared.root.stat.ino == os.stat(bundle.shared).st_ino
    shared.call(w.MKDIR_AT, dir_fd=shared.root.control_fd, uid=NO_ID, gid=NO_ID, mode=0o755,
                name=b"made")
    assert (bundle.shared / "made").is_dir()
    # A readonly mount refuses mutation.
    assert errno_of(ro.call, w.MKDIR_AT, dir_fd=ro.root.control_fd, uid=NO_ID, gid=NO_ID,
                    mode=0o755, name=b"x") == errno.EROFS
    # The memfs extension claimed /mem: its tree is in memory, the host dir untouched.
    mem.call(w.MKDIR_AT, dir_fd=mem.root.control_fd, uid=0, gid=0, mode=0o700, name=b"m")
    assert mem.walk(mem.root.control_fd, [b"m"])[0] == w.WALK_SUCCESS
    assert os.listdir(bundle.dir.parent / "memsrc") == []
    # --mounts-fd got the mounts with the served destinations resolved.
    # A second plain bind mount, after a mount that is not served.
    assert data.walk(data.root.control_fd, [b"numbers"])[1][0].stat.size == 5
    mounts = g.mounts()
    assert [m["destination"] for m in mounts] == ["/proc", "/real/shared", "/ro", "/mem", "/tmp",
                                                  "/data"]
    rc, err = g.finish()
    assert rc == 0, err
    assert "ignoring runsc flags this gofer does not implement: --network --platform" in err
    assert "serving /mem with extension memfs" in err


def test_the_start_path_leaves_out_what_serving_does_not_need(bundle, tmp_path):
    """From spawn to every mount served and the mounts written, seccomp
    filter and extensions included, per CPython's own import log (on stderr,
    then in the log once the gofer sends stderr there; it leaves out what
    importlib.import_module imports, such as the extensions themselves, but
    not what they import). `json` would bring `re` and `enum` (the spec is
    read with json's C scanner alone), pyseccomp `typing` and `re`."""
    with open(tmp_path / "importtime", "w+") as err:
        g = Gofer(bundle, extra=["--apply-caps=false", "--setup-root=false"],
                  python_flags=["-X", "importtime"], stderr=err)
        clients = [g.client(i) for i in range(5)]
        assert g.mounts()[1]["destination"] == "/real/shared"
        rc, log = g.finish()
        assert rc == 0, log
        err.seek(0)
        lines = err.read().splitlines() + log.splitlines()
    del clients
    imported = {line.split("|")[2].strip() for line in lines if line.startswith("import time:")}
    assert {"gofer.seccomp", "pyseccomp"} <= imported and "extension memfs" in log
    assert imported & NOT_ON_THE_START_PATH == set()


def test_runsc_global_flags_in_every_go_spelling(bundle):
    # runsc passes --name=value, but Go's flag package, runsc's parser, takes
    # -name, a separate value, and a boolean alone: -overlay must not take
    # the --log-fd after it as its value. --log-level after `gofer` as well.
    g = Gofer(bundle, extra=["--apply-caps=false", "--setup-root=false", "--seccomp=off",
                             "--log-level", "warning"],
              globals_=["--root", "/var/run/runsc", "-debug-log", "/tmp/runsc/", "-directfs=false",
                        "-overlay"])
    root = g.client(0)
    assert root.walk(root.root.control_fd, [b"etc", b"hostname"])[0] == w.WALK_SUCCESS
    rc, err = g.finish()
    assert rc == 0, err
    assert ("ignoring runsc flags this gofer does not implement: "
            "--debug-log --network --overlay --platform --root") in err
    assert "INFO" not in err, err


def test_fd_limits():
    """--fdlimit sets RLIMIT_NOFILE, or is a warning; without it the soft
    limit rises to the hard one. In a child: the limits are the process's."""
    code = ("import resource\n"
            "from gofer import sandbox\n"
            "get = lambda: resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
            "sandbox.raise_fd_limit()\n"
            "print(get(), sandbox.set_fd_limit(1000), get())\n"
            "print(sandbox.set_fd_limit(1 << 40))\n"       # above fs.nr_open, even for root
            "print(sandbox.set_fd_limit(1 << 70))\n"
            "print(get())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "(4096, 4096) None (1000, 1000)"
    assert out[1] == "[Errno 1] Operation not permitted"
    assert out[2].startswith("Python int too large to convert")
    assert out[3] == "(1000, 1000)"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mount namespaces and capabilities")
def test_setup_root_and_capabilities(bundle):
    g = Gofer(bundle)                       # everything on, as runsc runs it
    root, shared, ro, mem, data = (g.client(i) for i in range(5))
    # Chrooted into the rootfs, with the bind mounts placed in it.
    status, inodes = root.walk(root.root.control_fd, [b"real", b"shared", b"data.txt"])
    assert status == w.WALK_SUCCESS
    assert inodes[-1].stat.ino == os.stat(bundle.shared / "data.txt").st_ino
    assert shared.walk(shared.root.control_fd, [b"data.txt"])[0] == w.WALK_SUCCESS
    # The readonly mount is read-only on the host side as well.
    status, [k] = ro.walk(ro.root.control_fd, [b"keep.txt"])
    fd, h = ro.open_at(k.control_fd, os.O_RDONLY)
    os.close(h)
    assert ro.pread(fd, 0, 100) == b"read only"
    caps = read_caps(g.proc.pid)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == cap_mask(GOFER_CAPS)
    assert caps["CapAmb"] == 0
    # Its FD limit is raised to the hard limit, as Go's runtime does for runsc's.
    with open("/proc/%d/limits" % g.proc.pid) as f:
        soft, hard = next(line for line in f if line.startswith("Max open files")).split()[3:5]
    assert soft == hard
    # Nothing was mounted in the test's own namespace.
    assert not os.path.exists(bundle.rootfs / "ro" / "keep.txt")
    rc, err = g.finish()
    assert rc == 0, err


@pytest.mark.parametrize("spec_text, message", [
    ("{not json", "is not valid JSON"),
    ('{"root": {"path": 5}}', "root.path: expected a string, got 5"),
    ('{"root": {"path": "r"}, "mounts": [{"destination": "/x", "options": ["ro", 3]}]}',
     "mounts[0].options[1]: expected a string, got 3"),
    ('{"root": {"path": "r"}, "mounts": {}}', "mounts: expected an array"),
    ('{"root": {"path": "r"}, "annotations": {"a": 1}}', 'annotations["a"]: expected a string'),
])
def test_bad_specs(bundle, spec_text, message):
    g = Gofer(bundle, extra=["--apply-caps=false", "--setup-root=false", "--seccomp=false"],
              spec_text=spec_text)
    rc, err = g.finish()
    assert rc == 128 and message in err and "Traceback" not in err, err


def run_gofer(*args):
    return subprocess.run([sys.executable, "-m", "gofer", "gofer", *args], capture_output=True,
                          text=True, timeout=30)


def test_missing_spec_and_fd_mismatches(bundle, tmp_path):
    r = run_gofer("--bundle", str(tmp_path / "nowhere"), "--io-fds=0", "--setup-root=false", "c")
    assert r.returncode == 128 and "cannot read" in r.stderr and "config.json" in r.stderr
    # More served mounts than --gofer-mount-confs entries.
    r = run_gofer("--bundle", str(bundle.dir), "--io-fds=0", "--gofer-mount-confs=lisafs:none",
                  "--setup-root=false", "c")
    assert r.returncode == 128 and "has no --gofer-mount-confs entry" in r.stderr
    r = run_gofer("--bundle", str(bundle.dir), "--io-fds=0", "--setup-root=false", "c")
    assert r.returncode == 128 and "no --io-fds left" in r.stderr
    # What runsc's gofer refuses as a usage error (exit 2).
    r = run_gofer("--bundle", str(bundle.dir), "c")
    assert r.returncode == 2 and "no --io-fds" in r.stderr
    r = run_gofer("--bundle", str(bundle.dir), "--io-fds=3")
    assert r.returncode == 2 and "CONTAINER_ID" in r.stderr
    r = run_gofer("--bundle", str(bundle.dir), "--io-fds=0", "--gofer-mount-confs=lisafs",
                  "c")
    assert r.returncode == 128 and "invalid gofer mount config 'lisafs'" in r.stderr


def test_spec_helpers(bundle):
    assert specmod.resolve_in_root(str(bundle.rootfs), "/via/x/../y") == "/real/y"
    assert specmod.resolve_in_root(str(bundle.rootfs), "/../../etc") == "/etc"
    (bundle.rootfs / "loop").symlink_to("loop")
    with pytest.raises(specmod.SpecError, match="too many symlinks"):
        specmod.resolve_in_root(str(bundle.rootfs), "/loop/x")
    assert specmod.MountConf.parse("lisafs:self:size=10M") == specmod.MountConf("lisafs", "self", "10M")
    assert specmod.MountConf.parse("lisafs:memory").overlay
    for bad in ("none:none", "lisafs", "x:none", "lisafs:none:10"):
        with pytest.raises(specmod.SpecError):
            specmod.MountConf.parse(bad)


JSON_DOCS = ['{"a": [1, 2.5, -3e10, true, false, null, "x\\u00e9\\n"], "b": {"c": "d"}}',
             " \n[]\t", '"s"', "NaN", '{"a": -Infinity}', '{"k": 1, "k": 2}',
             '{"\u00e9": "\u2603"}', "", "  ", "{", '{"a":1} x', "[1,]", '{"a": "\x01"}',
             "\ufeff{}", "{not json"]


@pytest.mark.parametrize("doc", JSON_DOCS)
def test_the_specs_json_is_jsons(doc):
    def outcome(loads, data):
        try:
            return "value", repr(loads(data))
        except ValueError as e:
            return "error", type(e), str(e)

    for data in (doc, doc.encode()):
        want = outcome(json.loads, data)
        assert outcome(specmod.json_loads, data) == want
        if want[0] == "value":
            value = json.loads(data)
            assert specmod.json_dumps(value) == json.dumps(value)
    with pytest.raises(TypeError):
        specmod.json_dumps({"a": object()})
