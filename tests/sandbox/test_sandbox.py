"""Real gVisor sandboxes served by runsc's own gofer and by ours, compared.

Each scenario (root kind x directfs mode) builds two identical fresh bundles
and runs script.sh once in each: once with runsc's gofer, once with ours
(GOFER_RUNSC_GOFER=gofer). The tests then check, per gofer, that the sandbox
did what it should (so the reference cannot silently be broken too), and
compare the two transcripts and host trees.

Mounts in every bundle: /mnt/rw (bind rw) with /mnt/rw/nested (bind rw inside
it), /mnt/ro (bind ro), /mnt/mem (claimed by the memfs extension through the
spec; runsc's gofer serves its host directory).
"""
import datetime
import difflib
import hashlib
import os
import random
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from . import harness

SCRIPT = Path(__file__).with_name("script.sh")
SEED = random.Random(11).randbytes(10 << 20)          # the 10 MB file dd copies
TOUCHED = int(datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc).timestamp())

# Root kinds: runsc's flags and root.readonly. runsc overlays a writable root
# by default (--overlay2=root:self) and never a read-only one.
ROOTS = {
    "writable": (False, ["--overlay2=none"]),
    "overlay": (False, []),
    "readonly": (True, []),
}
# runsc's default is directfs on: the "default" runs pass no flag at all.
DIRECTFS = {"directfs-default": [], "directfs-false": ["--directfs=false"]}
SCENARIOS = [(root, df) for root in ROOTS for df in DIRECTFS]
GOFERS = ("runsc", "gofer")

# Sections of script.sh's transcript ("== NAME" lines); "a|b": one or the other.
SECTIONS = ["root", "exercise /w|read-only /w", "exercise /mnt/rw", "exercise /mnt/rw/nested",
            "exercise /mnt/mem", "read-only /mnt/ro", "concurrent writers in /mnt/rw",
            "big file", "exec", "exec /mnt/mem", "done"]

# -- building a bundle and running it ------------------------------------------------

def memfs_annotations(name, source, dest):
    """The spec that gives a bind mount to the memfs extension: memfs claims the
    destinations listed in dev.gofer.memfs.mounts; gVisor's mount hint turns
    directfs off for it (memfs has no host directory FD for the sentry to walk
    from; it donates a memfd per opened file instead) and keeps it shared
    (exclusive access would make runsc overlay it with a host filestore)."""
    hint = "dev.gvisor.spec.mount.%s." % name
    return {"dev.gofer.memfs.mounts": dest, hint + "source": str(source),
            hint + "type": "bind", hint + "share": "shared", hint + "directfs": "off"}


def make_bundle(top, template, root_readonly):
    """top/bundle (rootfs + config.json) and the host directories it mounts."""
    rootfs = harness.make_rootfs(top / "bundle" / "rootfs")
    for d in ("mnt/rw", "mnt/ro", "mnt/mem", "w/dir"):
        (rootfs / d).mkdir(parents=True)
    (rootfs / "w" / "existing").write_text("a file on the root\n")
    shutil.copy(SCRIPT, rootfs / "test.sh")
    for d in ("rw/nested", "nested", "ro/dir", "mem"):
        (top / d).mkdir(parents=True)
    (top / "ro" / "seed").write_bytes(SEED)
    (top / "ro" / "existing").write_text("a file on a read-only bind mount\n")
    (top / "ro" / "hello.sh").write_text("#!/bin/sh\necho hello from a read-only bind mount\n")
    (top / "ro" / "hello.sh").chmod(0o755)
    harness.write_bundle(
        top / "bundle", template, ["/bin/sh", "/test.sh", "ro" if root_readonly else "rw"],
        root_readonly=root_readonly,
        mounts=[harness.bind("/mnt/rw", top / "rw"),
                harness.bind("/mnt/rw/nested", top / "nested"),
                harness.bind("/mnt/ro", top / "ro", readonly=True),
                harness.bind("/mnt/mem", top / "mem")],
        annotations=memfs_annotations("mem", top / "mem", "/mnt/mem"))


def snapshot(top, times=True):
    """{relative path: what it is} for a host tree, symlinks not followed: type,
    mode, owner, size, content hash or link target (and mtime if `times`)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            what = [stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_nlink]
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what += [st.st_size, hashlib.sha256(f.read()).hexdigest()]
            elif stat.S_ISLNK(st.st_mode):
                what.append(os.readlink(p))
            if times:
                what.append(st.st_mtime_ns)
            out[os.path.relpath(p, top)] = what
    return out


# ls -l prints "Dec  1 10:27" or "Feb  3  2001": the times of entries created
# during the run are the host clock at that moment, different in every run.
# Exact times are checked where they are set (touch -t, through stat -c %Y).
LS_TIME = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                     r"( \d{4}|\d\d:\d\d)\b")


def sections(transcript):
    """{section name: its lines}, times normalised."""
    return harness.sections(LS_TIME.sub("<time>", transcript))


def steps(lines):
    """[(step, rc, output lines)] of one section."""
    out = []
    for line in lines:
        m = re.fullmatch(r"(\S+) rc=(\d+)", line)
        if m:
            out.append((m.group(1), int(m.group(2)), []))
        elif out and line.startswith("  "):
            out[-1][2].append(line[2:])
    return out


class Run:
    """One sandbox run and the host trees around it."""

    def __init__(self, runsc, template, top, root, directfs, gofer):
        root_readonly, root_flags = ROOTS[root]
        make_bundle(top, template, root_readonly)
        self.top, self.rootfs = top, top / "bundle" / "rootfs"
        self.before = {d: snapshot(top / d) for d in ("ro", "bundle/rootfs")}
        self.result = runsc.run(top / "bundle", root_flags + DIRECTFS[directfs], gofer=gofer)
        self.sections = sections(self.result.stdout)

    def why(self):
        r = self.result
        logs = "\n".join("--- %s (last 40 lines)\n%s" % (n, "\n".join(t.splitlines()[-40:]))
                         for n, t in sorted(r.logs.items()) if "gofer" in n or "boot" in n)
        return "runsc rc=%s\n--- stdout\n%s\n--- stderr\n%s\n%s" % (
            r.rc, r.stdout, r.stderr[-3000:], logs)

    def section(self, name):
        for alt in name.split("|"):
            if alt in self.sections:
                return self.sections[alt]
        pytest.fail("the transcript has no section %r\n%s" % (name, self.why()), pytrace=False)


class Scenario(dict):
    """{"runsc": Run, "gofer": Run} for one root kind and directfs mode."""

    def __init__(self, root, directfs):
        super().__init__()
        self.root, self.directfs = root, directfs


@pytest.fixture(scope="module", params=SCENARIOS, ids=["-".join(s) for s in SCENARIOS])
def scenario(request, runsc, spec_template, gofer_cmd):
    """Both runs of a scenario, on identical fresh bundles; removed afterwards."""
    sc = Scenario(*request.param)
    tmp = Path(tempfile.mkdtemp(prefix="gofer-sandbox-", dir="/tmp"))
    try:
        for name, gofer in (("runsc", None), ("gofer", gofer_cmd)):
            (tmp / name).mkdir()
            sc[name] = Run(runsc, spec_template, tmp / name, sc.root, sc.directfs, gofer)
        yield sc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- what each sandbox must have done, whichever gofer served it ------------------------

@pytest.mark.parametrize("gofer", GOFERS)
def test_exit_status_propagates(scenario, gofer):
    run = scenario[gofer]
    assert run.result.rc == 7, run.why()            # script.sh ends with `exit 7`


def check_exercise(lines):
    """Every mutation succeeded and left what it should."""
    st = steps(lines)
    bad = [(name, rc, out) for name, rc, out in st if rc != 0]
    assert not bad and len(st) == 22, bad
    out = {name: o for name, _, o in st}
    assert out["cat"] == ["hello", "world"] and out["cat-truncated"] == ["hel"]
    assert out["readlink"] == ["g"] and out["cat-symlink"] == ["hel"]
    assert [line.split()[1:] for line in out["stat"]] == [
        ["3", "640", "2", "regular", "file", str(TOUCHED)]] * 2
    assert out["fifo"] == ["through-the-fifo"]
    names = [line.split(None, 6)[6] for line in out["ls-after"][1:]]   # "total N" first
    assert names == [".", "..", "fifo", "g", "hard", "sym -> g"]


def check_readonly(lines):
    """Every mutation failed with EROFS; reading still works."""
    st = steps(lines)
    assert len(st) == 14 and st[-1][0] == "read" and st[-1][1] == 0, st
    wrote = [(name, rc, out) for name, rc, out in st[:-1]
             if rc == 0 or "Read-only file system" not in " ".join(out)]
    assert not wrote


@pytest.mark.parametrize("gofer", GOFERS)
def test_sandbox_file_operations(scenario, gofer):
    run = scenario[gofer]
    checks = [("exercise /mnt/rw", check_exercise), ("exercise /mnt/rw/nested", check_exercise),
              ("exercise /mnt/mem", check_exercise), ("read-only /mnt/ro", check_readonly),
              ("read-only /w", check_readonly) if scenario.root == "readonly" else
              ("exercise /w", check_exercise)]
    for name, check in checks:
        try:
            check(run.section(name))
        except AssertionError as e:
            pytest.fail("section %r: %s\n%s" % (name, e, "\n".join(run.section(name))),
                        pytrace=False)
    first = {n: o for n, _, o in steps(run.section("root"))}
    # `find / -xdev` runs first: the rootfs as the host made it, and "/" itself.
    assert first["find-root"] == [str(1 + len(run.before["bundle/rootfs"]))]
    assert first["find-mnt"] == ["/mnt", "/mnt/mem", "/mnt/ro", "/mnt/ro/dir", "/mnt/ro/existing",
                                 "/mnt/ro/hello.sh", "/mnt/ro/seed", "/mnt/rw", "/mnt/rw/nested"]


@pytest.mark.parametrize("gofer", GOFERS)
def test_concurrent_writers(scenario, gofer):
    st = {n: (rc, o) for n, rc, o in steps(scenario[gofer].section("concurrent writers in /mnt/rw"))}
    assert st["wc"][0] == 0
    counts = [line.split()[0] for line in st["wc"][1]]
    assert counts == ["1000", "250", "250", "250", "250", "2000"], st["wc"]
    expected = "".join(sorted("writer %d line %d\n" % (i, j) for i in range(1, 5)
                              for j in range(250)))
    assert st["sorted-md5"][1] == ["%s  -" % hashlib.md5(expected.encode()).hexdigest()]


@pytest.mark.parametrize("gofer", GOFERS)
def test_big_file_md5_matches_host(scenario, gofer):
    run = scenario[gofer]
    st = {n: (rc, o) for n, rc, o in steps(run.section("big file"))}
    assert st["dd"][0] == 0 and st["md5sum"][0] == 0, st
    seed_md5 = hashlib.md5(SEED).hexdigest()
    host_md5 = hashlib.md5((run.top / "rw" / "big").read_bytes()).hexdigest()
    assert st["md5sum"][1] == ["%s  /mnt/rw/big" % seed_md5, "%s  /mnt/ro/seed" % seed_md5]
    assert host_md5 == seed_md5


@pytest.mark.parametrize("gofer", GOFERS)
def test_exec_from_rootfs_and_bind_mounts(scenario, gofer):
    st = {n: (rc, o) for n, rc, o in steps(scenario[gofer].section("exec"))}
    assert st == {"exec-root": (0, ["run from the rootfs"]),
                  "exec-ro": (0, ["hello from a read-only bind mount"]),
                  "copy-rw": (0, []), "exec-rw": (0, ["run from a bind mount"]),
                  "exit-status": (3, [])}


@pytest.mark.parametrize("gofer", GOFERS)
def test_exec_from_memfs(scenario, gofer):
    st = {n: (rc, o) for n, rc, o in steps(scenario[gofer].section("exec /mnt/mem"))}
    assert st == {"copy-mem": (0, []), "exec-mem": (0, ["run from memfs"])}


# -- the host side --------------------------------------------------------------------

@pytest.mark.parametrize("gofer", GOFERS)
def test_read_only_host_trees_unchanged(scenario, gofer):
    run = scenario[gofer]
    assert snapshot(run.top / "ro") == run.before["ro"]
    if scenario.root != "writable":          # a read-only root, or an overlay's lower layer
        assert snapshot(run.rootfs) == run.before["bundle/rootfs"]


@pytest.mark.parametrize("gofer", GOFERS)
def test_writes_reach_the_host(scenario, gofer):
    run = scenario[gofer]
    dirs = [run.top / "rw" / "t", run.top / "nested" / "t"]
    if scenario.root == "writable":
        dirs.append(run.rootfs / "w" / "t")
    for d in dirs:
        # The FIFO is not on the host: the gofer refuses to make one (EPERM
        # unless --host-fifo=open) and the sentry keeps a synthetic FIFO instead.
        assert sorted(os.listdir(d)) == ["g", "hard", "sym"], d
        assert os.stat(d / "g").st_mtime == TOUCHED
        assert os.readlink(d / "sym") == "g" and (d / "g").read_bytes() == b"hel"
    # The nested mount's writes went to its own source, not under the outer one.
    assert os.listdir(run.top / "rw" / "nested") == []


def test_memfs_serves_its_mount(scenario):
    """With ours, memfs claimed /mnt/mem: nothing reached its host directory.
    runsc's gofer serves that directory from the host."""
    assert sorted(os.listdir(scenario["gofer"].top / "mem")) == []
    assert sorted(os.listdir(scenario["runsc"].top / "mem")) == ["busybox", "t"]


def test_gofer_log_reaches_runsc_debug_log(scenario):
    """runsc hands its gofer --debug-log-fd; what our gofer logs lands in
    runsc's per-component gofer log (here: that memfs serves /mnt/mem)."""
    logs = {n: t for n, t in scenario["gofer"].result.logs.items() if n.endswith(".gofer.txt")}
    assert len(logs) == 1, sorted(scenario["gofer"].result.logs)
    text = next(iter(logs.values()))
    assert any("/mnt/mem" in line and "memfs" in line for line in text.splitlines()), text


# -- runsc exactly as a user runs it ----------------------------------------------------

def test_runsc_defaults_without_debug(runsc, spec_template, gofer_cmd, tmp_path):
    """runsc's plain defaults (no --debug, no --directfs, no --overlay2): the
    exact argv a user's runsc hands the gofer."""
    (tmp_path / "rw").mkdir()
    harness.make_rootfs(tmp_path / "bundle" / "rootfs")
    (tmp_path / "bundle" / "rootfs" / "mnt").mkdir()
    harness.write_bundle(tmp_path / "bundle", spec_template, [
        "/bin/sh", "-c", "echo written > /mnt/rw/f && cat /mnt/rw/f && ls /bin/busybox"],
        mounts=[harness.bind("/mnt/rw", tmp_path / "rw")])
    r = runsc.run(tmp_path / "bundle", gofer=gofer_cmd, debug=False)
    assert (r.rc, r.stdout) == (0, "written\n/bin/busybox\n"), r.report()
    assert (tmp_path / "rw" / "f").read_text() == "written\n"


# -- ours against runsc's ---------------------------------------------------------------

@pytest.mark.parametrize("section", [s for s in SECTIONS if s != "exec /mnt/mem"])
def test_transcript_same_as_runsc(scenario, section):
    ref, ours = scenario["runsc"].section(section), scenario["gofer"].section(section)
    if ours != ref:
        diff = "\n".join(difflib.unified_diff(ref, ours, "runsc's gofer", "gofer", lineterm=""))
        pytest.fail("%r differs:\n%s\n\n%s" % (section, diff, scenario["gofer"].why()),
                    pytrace=False)


def written_tree(top):
    """snapshot() without times (each run writes at its own time; touch -t's time
    is checked above), and the concurrently appended file by its sorted lines:
    the writers' interleaving is up to the scheduler."""
    tree = snapshot(top, times=False)
    shared = top / "conc" / "shared"
    if shared.exists():
        lines = sorted(shared.read_bytes().splitlines(keepends=True))
        tree["conc/shared"][-1] = hashlib.sha256(b"".join(lines)).hexdigest()
    return tree


def test_written_host_trees_same_as_runsc(scenario):
    trees = ["rw", "nested"] + (["bundle/rootfs"] if scenario.root == "writable" else [])
    for t in trees:
        assert written_tree(scenario["gofer"].top / t) == written_tree(scenario["runsc"].top / t), t
