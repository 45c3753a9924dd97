"""Starts `gofer gofer` the way runsc's createGoferProcess starts its gofer:
the runsc global flags first (only those off their defaults), then `gofer`
with --bundle, --gofer-mount-confs, --spec-fd, --mounts-fd, --rpc-fd, one
--io-fds per served mount and --sync-chroot-fd; in new mount, IPC and UTS
namespaces, in a session of its own, stdio at /dev/null, logs on --log-fd.

The test plays the sentry: it holds the other end of every socket."""
import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000


def _enter_namespaces():
    # runsc also makes a PID namespace; that needs a fork after unshare, so a
    # launcher process in between, and changes nothing the gofer does.
    if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS):
        raise OSError(ctypes.get_errno(), "unshare")


def gofer_script():
    """What follows `python [flags]` to start gofer as its console script
    does, as runsc does (`-m gofer` would add runpy and importlib)."""
    script = Path(sys.executable).with_name("gofer")
    return [str(script)] if script.exists() else ["-m", "gofer"]


class RunscGofer:
    """A `gofer gofer` process and the sentry's ends of its sockets.

    `confs` are the --gofer-mount-confs (root first); `globals_` runsc global
    flags such as "--directfs=false"; `extra` more gofer flags. With
    `runsc_namespaces`, the gofer starts in namespaces of its own, as runsc
    starts it (needs root). `python_flags` go to the interpreter, and its
    stderr (not the gofer's log: that is --log-fd's) to `stderr`.
    """

    def __init__(self, bundle_dir, confs, extra=(), globals_=(), spec_path=None,
                 runsc_namespaces=False, python_flags=(), stderr=subprocess.DEVNULL):
        self.socks, child = [], []
        for _ in range(sum(c.startswith("lisafs") for c in confs)):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socks.append(ours)
            child.append(theirs)
        log_r, log_w = os.pipe()
        spec_fd = os.open(spec_path or os.path.join(bundle_dir, "config.json"), os.O_RDONLY)
        self._mounts_r, mounts_w = os.pipe()
        rpc_ours, rpc_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sync_ours, sync_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._keep = [rpc_ours]
        argv = [sys.executable, *python_flags, *gofer_script(), *globals_, "--log-fd=%d" % log_w,
                "gofer", "--bundle", str(bundle_dir), "--gofer-mount-confs=" + ",".join(confs),
                "--spec-fd=%d" % spec_fd, "--mounts-fd=%d" % mounts_w,
                "--rpc-fd=%d" % rpc_theirs.fileno(),
                *("--io-fds=%d" % s.fileno() for s in child),
                "--sync-chroot-fd=%d" % sync_theirs.fileno(), *extra, "test-container"]
        passed = [s.fileno() for s in child] + [log_w, spec_fd, mounts_w, rpc_theirs.fileno(),
                                                 sync_theirs.fileno()]
        self.proc = subprocess.Popen(
            argv, pass_fds=passed, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, start_new_session=True,
            preexec_fn=_enter_namespaces if runsc_namespaces else None)
        for s in child + [rpc_theirs, sync_theirs]:
            s.close()
        for fd in (log_w, spec_fd, mounts_w):
            os.close(fd)
        sync_ours.close()               # runsc: set-up may begin
        self._log = bytearray()
        self._reader = threading.Thread(target=self._read_log, args=(log_r,), daemon=True)
        self._reader.start()

    def _read_log(self, fd):
        with os.fdopen(fd, "rb", buffering=0) as f:
            while chunk := f.read(65536):
                self._log += chunk

    def mounts(self):
        """The mount list the gofer wrote to --mounts-fd."""
        with os.fdopen(self._mounts_r, "rb") as f:
            return json.loads(f.read())

    def log(self):
        """What the gofer has logged so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._reader.join(5)
        return bytes(self._log).decode(errors="replace")

    def finish(self, timeout=20):
        """Closes the sentry's sockets; returns (exit code, log)."""
        for s in self.socks + self._keep:
            s.close()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return rc, self.log()
