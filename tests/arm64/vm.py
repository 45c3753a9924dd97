"""An arm64 Debian machine for the aarch64 stage (scripts/test-arm64).

The root is Debian bookworm's arm64 packages unpacked by ``mmdebstrap
--variant=extract`` (no maintainer scripts run, so nothing executes arm64
code on the host), with the little they would have done that we need done
here: busybox's applets for a shell and coreutils, ``cc``. It boots under
qemu-system-aarch64 (TCG: a real arm64 kernel, so seccomp filters load, which
qemu-user refuses) with Debian's arm64 kernel and a busybox initrd of ours
that mounts the root read-only over 9p, plus a read-write 9p "job" directory,
runs ``/job/run`` and powers off. Cached in ``~/.cache/gofer/arm64/<key>/vm``
(tests/gobuild.py); the key hashes the package list and this file.

    python3 -m tests.arm64.vm                 # builds if needed, prints the path
"""
import gzip
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.gobuild import BuildError, cached, main

MIRROR = "http://deb.debian.org/debian"
# What builds gofer's wheel (its cache key in tests/arm64/stage.py), then the rest.
TOOLCHAIN = ["python3-dev", "gcc", "libc6-dev", "make", "cmake", "ninja-build"]
PACKAGES = TOOLCHAIN + ["python3", "python3-venv", "libc-bin", "libseccomp2", "busybox-static",
                        "ca-certificates", "linux-image-arm64"]
# Modules the initrd loads (with what they depend on) to mount the 9p shares.
MODULES = ["virtio_pci", "9pnet_virtio", "9p"]

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /dev /newroot
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod /$m || echo "initrd: insmod $m failed"; done
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,ro,cache=loose root /newroot || echo "initrd: no root"
mount -t 9p -o $o job /newroot/job || echo "initrd: no job"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs shm /newroot/dev/shm
mount -t tmpfs -o size=75% tmp /newroot/tmp
mount -t tmpfs run /newroot/run
ip link set lo up
echo "initrd: running /job/run"
chroot /newroot /bin/sh -c 'cd /job && exec /bin/sh ./run' </dev/console >/dev/console 2>&1
echo $? > /newroot/job/rc
sync
poweroff -f
"""


def cache_key():
    h = hashlib.sha256(" ".join(PACKAGES).encode() + b"\0" + Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def _run(argv, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BuildError("%s failed (%d):\n%s%s" % (" ".join(map(str, argv)), r.returncode,
                                                    r.stdout[-3000:], r.stderr[-3000:]))
    return r.stdout


def _module_closure(moddir):
    """The .ko paths (relative to moddir) of MODULES and their dependencies,
    each after what it depends on (read from the modules' `depends=`:
    depmod, a maintainer-script step, never ran)."""
    paths = {p.name[:-3].replace("-", "_"): p.relative_to(moddir)
             for p in moddir.rglob("*.ko")}
    order = []

    def visit(name):
        if name in order:
            return
        m = re.search(rb"depends=([^\0]*)\0", (moddir / paths[name]).read_bytes())
        for dep in filter(None, (m.group(1).decode().split(",") if m else [])):
            visit(dep.replace("-", "_"))
        order.append(name)

    for name in MODULES:
        visit(name)
    return [paths[n] for n in order]


def _initrd(fs, out):
    """A gzipped newc cpio: busybox, /init, the 9p/virtio modules."""
    [kver] = os.listdir(fs / "lib/modules")
    moddir = fs / "lib/modules" / kver
    mods = _module_closure(moddir)
    stage = out.with_name("initrd.d")
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "lib"):
        (stage / d).mkdir(parents=True)
    shutil.copy(fs / "bin/busybox", stage / "bin/busybox")
    for m in mods:
        shutil.copy(moddir / m, stage / "lib" / m.name)
    (stage / "modules").write_text("".join("lib/%s\n" % m.name for m in mods))
    (stage / "init").write_text(INIT)
    (stage / "init").chmod(0o755)
    listing = subprocess.run(["find", "."], cwd=stage, capture_output=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=stage, input=listing,
                          capture_output=True, check=True).stdout
    out.write_bytes(gzip.compress(cpio))
    shutil.rmtree(stage)


def _fix_up(fs):
    """What the maintainer scripts would have done that the stage needs."""
    # busybox's applets (sh, coreutils, ...) where no package put the real one.
    applets = _run(["qemu-aarch64", fs / "bin/busybox", "--list-full"]).split()
    for a in applets:
        dest = fs / a
        if not any((fs / d / dest.name).exists() or (fs / d / dest.name).is_symlink()
                   for d in ("bin", "sbin", "usr/bin", "usr/sbin")):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to("/bin/busybox")
    (fs / "usr/bin/cc").symlink_to("gcc")       # update-alternatives' link
    # libc-bin's trigger: the ld.so cache, where ctypes.util.find_library (so
    # pyseccomp) looks for libseccomp.so.2. ldconfig is static.
    _run(["qemu-aarch64", fs / "sbin/ldconfig", "-r", fs])
    # py3compile's bytecode: the root is read-only in the machine, where every
    # start would otherwise compile the stdlib anew (slow under emulation).
    # .pyc files are the same on every architecture of one Python minor version.
    # (Its status is ignored: a few test files in the stdlib are meant not to compile.)
    subprocess.run(["python3.11", "-m", "compileall", "-qq", "-j0", "-s", str(fs), "-p", "/",
                    str(fs / "usr/lib/python3.11"), str(fs / "usr/lib/python3/dist-packages")])
    for d in ("proc", "sys", "dev", "run", "tmp", "job", "root"):
        (fs / d).mkdir(exist_ok=True)
    (fs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                   "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (fs / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")


def build(quiet=True):
    """The cached machine directory: fs/ (the root), vmlinuz, initrd."""
    def make(tmp):
        tmp.mkdir()
        _run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64",
              "--include=" + ",".join(PACKAGES), "bookworm", tmp / "fs", MIRROR], timeout=3600)
        fs = tmp / "fs"
        _fix_up(fs)
        [kernel] = (fs / "boot").glob("vmlinuz-*")
        shutil.copy(kernel, tmp / "vmlinuz")
        _initrd(fs, tmp / "initrd")
    return cached("arm64", cache_key(), "vm", make, quiet)


# A Neoverse-N1 (the core of Graviton2 and Ampere Altra servers): "max" adds
# pointer authentication and SVE, which TCG emulates slowly, for nothing the
# gofer uses.
CPU = "neoverse-n1"


def boot(vm, job, timeout, out=sys.stdout, smp=2, mem="2G"):
    """Boots the machine with `job` (a host directory holding an executable
    shell script `run`) at /job; the console goes to `out`. Returns run's
    exit status, or raises BuildError if the machine did not finish within
    `timeout` seconds (it is killed: no VM outlives this call)."""
    rc_file = Path(job) / "rc"
    rc_file.unlink(missing_ok=True)
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", CPU, "-smp", str(smp), "-m", mem,
            "-nographic", "-no-reboot", "-nic", "none", "-kernel", vm / "vmlinuz", "-initrd", vm / "initrd",
            "-append", "console=ttyAMA0 quiet panic=-1 rdinit=/init",
            "-virtfs", "local,path=%s,mount_tag=root,security_model=passthrough,readonly=on"
            % (vm / "fs"),
            "-virtfs", "local,path=%s,mount_tag=job,security_model=passthrough" % job]
    proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError("the arm64 machine did not finish within %d s" % timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if not rc_file.exists():
        raise BuildError("the arm64 machine stopped before /job/run finished (qemu: %d)"
                         % proc.returncode)
    return int(rc_file.read_text())


if __name__ == "__main__":
    main(build, "arm64 vm")
