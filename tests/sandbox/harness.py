"""Runs busybox containers under runsc, served by runsc's own gofer or by ours.

- ``make_rootfs(dir)``: a rootfs from Debian's busybox-static (/bin/busybox
  and one symlink per applet) plus the directories the tests mount on.
- ``write_bundle(bundle, template, ...)``: config.json from ``runsc spec``'s
  output with our args, root and mounts.
- ``Runsc(path).run(bundle, flags, gofer=...)``: ``runsc --root STATE
  --network=none [flags] run --bundle B CID`` with the container's output on a
  pipe (runsc writes a file's stdio at its own offsets), runsc's debug logs
  kept, and the state directory cleaned up after (runsc leaves its null-netns
  bind mount inside it).

``python3 -m tests.sandbox.harness`` (``scripts/sandbox``) builds runsc if
needed and runs one container served by gofer.
"""
import ctypes
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

BUSYBOX = "/bin/busybox"
GOFER_ENV = "GOFER_RUNSC_GOFER"      # read by tests/sandbox/runsc/main.go
MNT_DETACH = 2


def missing_prerequisites():
    """Why sandboxes cannot run here, or [] if they can."""
    why = []
    if os.geteuid() != 0:
        why.append("root (runsc run needs it)")
    if not os.path.exists(BUSYBOX):
        why.append("Debian's busybox-static (%s)" % BUSYBOX)
    if shutil.which("go") is None:
        why.append("the `go` toolchain (runsc is built from go.mod's gvisor)")
    return why


def gofer_command():
    """Our `gofer` console script, from the interpreter's scripts directory (where
    `python3 -m pip install .` put it; a pyenv shim on PATH would run pyenv first)."""
    path = Path(sysconfig.get_path("scripts")) / "gofer"
    if path.exists():
        return str(path)
    found = shutil.which("gofer")
    if found is None:
        raise FileNotFoundError("no `gofer` command: pip install . ./examples/memfs")
    return found


def make_rootfs(root):
    root = Path(root)
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", root / "bin" / a)
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        (root / d).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def spec_template(runsc):
    """The config.json `runsc spec` writes."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([str(runsc), "spec", "--bundle", d], check=True)
        return json.loads(Path(d, "config.json").read_text())


def bind(dest, source, readonly=False):
    return {"destination": dest, "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if readonly else "rw"]}


def write_bundle(bundle, template, args, root_readonly=False, mounts=(), annotations=None):
    spec = json.loads(json.dumps(template))
    spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = False
    spec["root"] = {"path": "rootfs", "readonly": root_readonly}
    spec["mounts"] = spec.get("mounts", []) + list(mounts)
    if annotations:
        spec["annotations"] = dict(annotations)
    Path(bundle, "config.json").write_text(json.dumps(spec, indent=2))
    return spec


def sections(transcript):
    """{section name: its lines} of a transcript of script.sh ("== NAME" lines)."""
    out, name = {}, None
    for line in transcript.splitlines():
        if line.startswith("== "):
            name = line[3:]
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return out


class Result:
    def __init__(self, rc, stdout, stderr, logs):
        self.rc, self.stdout, self.stderr, self.logs = rc, stdout, stderr, logs

    def report(self):
        """Everything runsc said, for a failing test's message."""
        parts = ["rc=%s" % self.rc, "--- stdout\n" + self.stdout, "--- stderr\n" + self.stderr]
        parts += ["--- %s\n%s" % (name, text) for name, text in sorted(self.logs.items())]
        return "\n".join(parts)


def _unmount_under(path):
    """runsc bind-mounts a null-netns file into its state directory and leaves it
    mounted: detach every mount below `path` before deleting it."""
    prefix = os.path.realpath(path) + "/"
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        libc.umount2(p.encode(), MNT_DETACH)


class Runsc:
    def __init__(self, path):
        self.path = str(path)

    def run(self, bundle, flags=(), gofer=None, timeout=120, debug=True):
        """Runs the bundle's container to completion; `gofer` is the program runsc
        execs for its gofer (None: runsc's own). `debug`: --debug and one
        --debug-log file per component, returned in Result.logs."""
        env = {k: v for k, v in os.environ.items() if k != GOFER_ENV}
        if gofer:
            env[GOFER_ENV] = gofer
        work = Path(tempfile.mkdtemp(prefix="runsc-", dir="/tmp"))
        cid = "t" + uuid.uuid4().hex[:12]
        try:
            debug_flags = ["--debug", "--debug-log", str(work / "logs") + "/"] if debug else []
            argv = [self.path, "--root", str(work / "state"), "--network=none", *debug_flags,
                    *flags, "run", "--bundle", str(bundle), cid]
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                   env=env, timeout=timeout)
                rc, out, err = p.returncode, p.stdout, p.stderr
            except subprocess.TimeoutExpired as e:
                subprocess.run([self.path, "--root", str(work / "state"), "delete",
                                "--force", cid], capture_output=True, timeout=30)
                rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
            logs = {}
            if (work / "logs").is_dir():
                for f in (work / "logs").iterdir():
                    logs[f.name] = f.read_text(errors="replace")
            return Result(rc, out.decode(errors="replace"), err.decode(errors="replace"), logs)
        finally:
            _unmount_under(work)
            shutil.rmtree(work, ignore_errors=True)


def demo():
    """Builds runsc (cached), then runs a busybox container whose gofer is ours."""
    why = missing_prerequisites()
    if why:
        sys.exit("scripts/sandbox needs: " + "; ".join(why))
    from .runsc_build import build
    runsc = Runsc(build(quiet=False))
    gofer = gofer_command()
    with tempfile.TemporaryDirectory(prefix="gofer-sandbox-") as d:
        bundle, shared = Path(d, "bundle"), Path(d, "shared")
        shared.mkdir()
        make_rootfs(bundle / "rootfs")
        write_bundle(bundle, spec_template(runsc.path), [
            "/bin/sh", "-c",
            "echo \"hello from $(uname -sr) in a gVisor sandbox\"; ls -l /bin/busybox; "
            "echo written-in-the-sandbox > /shared/greeting; cat /shared/greeting"],
            mounts=[bind("/shared", shared)])
        print("$ %s=%s runsc --network=none run ..." % (GOFER_ENV, gofer), flush=True)
        r = runsc.run(bundle, gofer=gofer)
        sys.stdout.write(r.stdout)
        if r.rc != 0 or not (shared / "greeting").exists():
            sys.stdout.write(r.report())
            sys.exit("the sandbox failed (rc=%s)" % r.rc)
        print("host sees %s: %r" % (shared / "greeting", (shared / "greeting").read_text()))
        ours = [line for name, text in sorted(r.logs.items()) if name.endswith(".gofer.txt")
                for line in text.splitlines() if line.startswith("gofer[")]
        print("the gofer's log in runsc's --debug-log:" if ours else
              "runsc's --debug-log holds no line from gofer")
        for line in ours:
            print("  " + line[:160])


if __name__ == "__main__":
    demo()
