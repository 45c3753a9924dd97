"""Fixtures for interop tests: gVisor's Go client (and Go reference gofer) vs a server.

- ``lisafs_driver``: path of tests/interop/lisafs-driver, built once per session.
- ``refgofer``: path of bench/peers/refgofer (gVisor's stock fsgofer), built once.
- ``start_server(argv, socket_path)``: launch any server process and wait until its
  socket accepts; it is killed at teardown and its stderr is attached to failing
  test reports.
- ``go_client(socket_path, channels=False)``: a GoClient closed at teardown.
- ``sock_dir``: a short directory under /tmp for socket paths (sun_path is 108 bytes
  and pytest's tmp_path can be longer than that).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .goclient import GoClient

REPO = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT = 10.0
_PROCS = pytest.StashKey()  # per-test list of (label, callable returning stderr text)


def _go_build(pkg, out):
    # scripts/test-arm64 cross-compiles the Go programs on the host: the arm64
    # machine has no Go toolchain.
    prebuilt = os.environ.get("GOFER_GO_PREBUILT")
    if prebuilt:
        return str(Path(prebuilt) / Path(pkg).name)
    go = shutil.which("go")
    if go is None:
        pytest.fail("the `go` toolchain is not on PATH: interop tests build gVisor's "
                    "Go LISAFS client (go.mod at the repo root) and cannot run without it",
                    pytrace=False)
    # -mod=mod lets a fresh checkout fill go.sum gaps; -buildvcs=false keeps go from
    # shelling out to git to stamp VCS info (the repo is not ours to touch).
    r = subprocess.run([go, "build", "-mod=mod", "-buildvcs=false", "-o", str(out), pkg],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"go build {pkg} failed:\n{r.stdout}{r.stderr}", pytrace=False)
    return str(out)


@pytest.fixture(scope="session")
def lisafs_driver(tmp_path_factory):
    return _go_build("./tests/interop/lisafs-driver",
                     tmp_path_factory.mktemp("go") / "lisafs-driver")


@pytest.fixture(scope="session")
def refgofer(tmp_path_factory):
    return _go_build("./bench/peers/refgofer", tmp_path_factory.mktemp("go") / "refgofer")


def _track(request, label, stderr):
    request.node.stash.setdefault(_PROCS, []).append((label, stderr))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Show what the server and driver printed whenever a test fails.
    rep = (yield).get_result()
    if rep.failed:
        for label, stderr in item.stash.get(_PROCS, []):
            text = stderr()
            if text:
                rep.sections.append((f"stderr of {label}", text))


class ServerProc:
    def __init__(self, argv, socket_path, log_path, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.socket_path = str(socket_path)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)

    def stderr(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=SERVER_START_TIMEOUT):
        """Wait until the socket accepts a connection (a probe we close at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server {self.argv} exited with rc={self.proc.returncode} "
                            f"before listening:\n{self.stderr()}", pytrace=False)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(self.socket_path)
                    return self
                except OSError:
                    pass
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"server {self.argv} did not accept on {self.socket_path} within "
                    f"{timeout}s:\n{self.stderr()}", pytrace=False)

    def stop(self):
        """Terminate (then kill) the server; return its exit code before we did, or None."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return rc


@pytest.fixture
def sock_dir():
    d = tempfile.mkdtemp(prefix="gi-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start_server(request, tmp_path):
    """start_server(argv, socket_path, env=None, cwd=None) -> ServerProc, ready to accept."""
    procs = []

    def start(argv, socket_path, env=None, cwd=None):
        log = tmp_path / f"server-{len(procs)}.log"
        sp = ServerProc(argv, socket_path, log, env=env, cwd=cwd)
        procs.append(sp)
        _track(request, f"server {Path(sp.argv[0]).name} #{len(procs)}", sp.stderr)
        return sp.wait_ready()

    yield start
    died = [(sp, rc) for sp in procs if (rc := sp.stop()) is not None]
    if died:
        # A server must keep serving until we stop it; an early exit is a crash.
        sp, rc = died[0]
        pytest.fail(f"server {sp.argv} exited on its own (rc={rc}):\n{sp.stderr()}",
                    pytrace=False)


@pytest.fixture
def go_client(request, lisafs_driver):
    """go_client(socket_path=None, fd=None, channels=False, **kw) -> GoClient."""
    clients = []

    def make(socket_path=None, *, fd=None, channels=False, **kw):
        gc = GoClient(lisafs_driver, socket=socket_path, fd=fd, channels=channels, **kw)
        clients.append(gc)
        _track(request, f"lisafs-driver #{len(clients)}", gc.stderr)
        return gc

    yield make
    errors = []
    for gc in clients:
        try:
            gc.close()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


# -- shared servers for the suites that drive our gofer (see gofer_env.py) ----------

@pytest.fixture(params=[False, True], ids=["socket", "channels"])
def transport(request):
    """True: the client calls StartChannels (flipcall channels); False: socket only."""
    return request.param


@pytest.fixture(scope="session")
def server_pool(refgofer):
    """One server per (kind, readonly, host_uds, host_fifo) for the session; see gofer_env."""
    from .gofer_env import ServerPool, new_pool, rm_pool
    tmp = new_pool()
    pool = ServerPool(tmp, refgofer)
    yield pool
    died = pool.stop()
    rm_pool(tmp)
    if died:
        pytest.fail("shared server(s) exited on their own: " +
                    "\n".join(f"{k}:\n{log}" for k, log in died), pytrace=False)


@pytest.fixture
def open_side(request, server_pool, go_client, transport):
    """open_side(kind="gofer"|"ref"|"memfs", readonly=False, host_uds=None, host_fifo=None,
    setup=build_tree, channels=transport) -> Side on a fresh test directory.

    ``setup(host_dir)`` builds the tree on the host first (gofer/ref); for memfs
    the default tree is built over the protocol instead. The shared server must
    still be alive at teardown."""
    from .gofer_env import Side, build_tree, build_via_protocol
    used, log_start = [], {}

    def open_(kind="gofer", readonly=False, host_uds=None, host_fifo=None, setup=build_tree,
              channels=None):
        srv = server_pool.get(kind, readonly, host_uds, host_fifo)
        if srv not in used:
            used.append(srv)
            log_start[srv] = len(srv.proc.stderr())
            _track(request, f"shared {kind} server",
                   lambda srv=srv: srv.proc.stderr()[log_start[srv]:])
        gc = go_client(srv.socket, channels=transport if channels is None else channels)
        if kind == "memfs":  # each connection has its own empty tree; readonly stays empty
            top = gc.root_fd if readonly else gc.call(
                "mkdir_at", fd=gc.root_fd, name="t", mode=0o755)["inode"]["fd"]
            side = Side(kind, gc, top, None, srv)
            if setup is build_tree:
                build_via_protocol(side)
            elif setup is not None:
                setup(side)
            return side
        host = srv.new_dir()
        if setup is not None:
            setup(host)
        top = gc.call("walk", fd=gc.root_fd, name=host.name)["inode"]["fd"]
        side = Side(kind, gc, top, host, srv)

        def another(channels=None):
            """A second connection to the same server, on the same test directory."""
            gc2 = go_client(srv.socket, channels=transport if channels is None else channels)
            top2 = gc2.call("walk", fd=gc2.root_fd, name=host.name)["inode"]["fd"]
            return Side(kind, gc2, top2, host, srv)
        side.another = another
        return side

    yield open_
    for srv in used:
        if not srv.alive():
            pytest.fail(f"the shared {srv.kind} server died during this test:\n"
                        f"{srv.proc.stderr()}", pytrace=False)
    # A handler that raised something unexpected is a bug even if the test saw a
    # plausible errno. Known bugs are xfail tests, which may leave such lines.
    if request.node.get_closest_marker("xfail") is None:
        for srv in used:
            new = srv.proc.stderr()[log_start[srv]:]
            if srv.kind != "ref" and server_bugs(new):
                pytest.fail(f"the shared {srv.kind} server logged a bug:\n{new}",
                            pytrace=False)


def server_bugs(log):
    """Lines of our server's log that say a handler raised something unexpected
    (answered EREMOTEIO, in one line) or that something died with a traceback."""
    return [line for line in log.splitlines()
            if "Traceback" in line or "answering EREMOTEIO" in line]


@pytest.fixture
def ours(open_side):
    return open_side("gofer")


@pytest.fixture
def ref(open_side):
    return open_side("ref")
