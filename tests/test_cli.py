"""`gofer serve` as a user runs it."""
import errno
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import gofer as gofer_pkg
from gofer import _wire as w
from gofer import cli, runsc_gofer
from gofer.client import Client
from runsc_start import gofer_script
from test_service import connect

NO_ID = 0xFFFFFFFF


def gofer(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gofer", *args], capture_output=True,
                          text=True, timeout=30, **kw)


def start_serve(*args):
    """A `gofer serve` that is listening (it says so on stderr)."""
    p = subprocess.Popen([sys.executable, "-m", "gofer", "serve", *args],
                         stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "gofer: serving" in line:
            return p
    p.kill()
    p.wait()
    raise AssertionError("gofer serve did not start:\n" + "".join(seen))


def test_serve_reads_a_file_and_stops_cleanly_on_ctrl_c(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    p = start_serve(str(tree), "--socket", sock)
    try:
        with Client.connect(sock) as c:
            _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
            fd, h = c.open_at(f.control_fd, os.O_RDONLY)
            os.close(h)
            assert c.pread(fd, 0, 100) == b"hello, gofer\n"
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
    assert "stopped" in p.stderr.read()
    assert not os.path.exists(sock)


def test_sigterm_stops_with_a_client_still_connected(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    p = start_serve(str(tree), "--socket", sock)
    c = Client.connect(sock)
    p.terminate()
    assert p.wait(10) == 0
    with pytest.raises(OSError):
        c.fstat(c.root.control_fd)
    c.close()


@pytest.mark.parametrize("what, message", [
    ("missing", "does not exist"),
    ("file", "is not a directory"),
])
def test_bad_directory(tmp_path, what, message):
    target = tmp_path / what
    if what == "file":
        target.write_text("x")
    r = gofer("serve", str(target), "--socket", str(tmp_path / "s"))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_socket_in_use_and_stale_socket(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    busy = socket.socket(socket.AF_UNIX)
    busy.bind(sock)
    busy.listen(1)
    r = gofer("serve", str(tree), "--socket", sock)
    assert r.returncode == 2 and "in use" in r.stderr
    busy.close()                        # leaves a stale socket file behind
    p = start_serve(str(tree), "--socket", sock)
    p.terminate()
    assert p.wait(10) == 0
    (tmp_path / "plain").write_text("x")
    r = gofer("serve", str(tree), "--socket", str(tmp_path / "plain"))
    assert r.returncode == 2 and "not a socket" in r.stderr


# -- the command line -------------------------------------------------------------

LONG = "/tmp/" + "s" * 115                       # 120 bytes: more than a sun_path holds


@pytest.mark.parametrize("args, message", [
    # gofer's own global flags and commands
    ([], "no command"),
    (["--bogus"], "unknown flag: --bogus"),
    (["--bogus", "serve"], "unknown flag: --bogus"),
    (["---x", "serve"], "bad flag syntax: ---x"),
    (["--log-level"], "flag needs a value: --log-level"),
    (["--log-level=loud", "serve"], "invalid value 'loud' for --log-level"),
    (["bogus"], "unknown command 'bogus'"),
    (["--root", "gofer", "spec"], "unknown command 'spec'"),     # "gofer" is --root's value
    (["--root", "/var/run/runsc"], "no command"),
    (["--root", "/var/run/runsc", "serve", "D", "--socket", "S"], "--root is a runsc flag"),
    # gofer serve
    (["serve"], "missing required flag: --socket"),
    (["serve", "--bogus"], "unknown flag: --bogus"),
    (["serve", "D", "--socket", "S", "--bogus"], "unknown flag: --bogus"),
    (["serve", "D", "--socket", "S", "E"], "serve takes one DIR, not 2 arguments: D E"),
    (["serve", "D", "--socket", "S", "--seccomp", "log"], "not 2 arguments: D log"),
    (["serve", "D", "--socket", LONG], "is 120 bytes long; a Unix socket's path is at most 107"),
    (["serve", "D", "--socket", ""], "for --socket: needs a path"),
    (["serve", "D", "--extension", "memfs", "--socket", "S"], "DIR or --extension NAME, not both"),
    (["serve", "D", "--socket", "S", "--seccomp=maybe"], "'maybe' is not a seccomp mode"),
    (["serve", "D", "--socket", "S", "--log-level", "loud"], "invalid value 'loud' for --log-level"),
    (["serve", "D", "--socket", "S", "--socket-mode", "1777"], "a socket mode is 0 to 0777"),
    # gofer gofer, refused before it reads anything
    (["gofer"], "gofer gofer takes one CONTAINER_ID after its flags, not 0"),
    (["gofer", "--bogus", "c"], "unknown flag: --bogus"),
    (["gofer", "c", "--bundle", "B"], "not 3 arguments: c --bundle B"),   # flags end at the ID
    (["gofer", "--spec-fd", "x", "c"], "invalid value 'x' for --spec-fd"),
    (["gofer", "--apply-caps", "false", "c"], "not 2 arguments: false c"),  # Go booleans take =
    (["gofer", "--seccomp=maybe", "c"], "'maybe' is not a seccomp mode"),
    (["--log-fd=x", "gofer", "c"], "invalid value 'x' for --log-fd"),
    (["--fdlimit=lots", "gofer", "c"], "invalid value 'lots' for --fdlimit"),
    (["gofer", "--bundle", "B", "c"], "no --io-fds given"),
    # runsc's global flags, with a space: accepted, and no warning before the error
    (["--root", "/var/run/runsc", "gofer"], "takes one CONTAINER_ID after its flags, not 0"),
    (["--root", "/r", "gofer", "--rpc-fd=3", "--bogus", "c"], "unknown flag: --bogus"),
    (["--root", "/r", "gofer", "--rpc-fd=3", "--bundle", "B", "c"], "no --io-fds given"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path, args, message):
    r = gofer(*args, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r
    assert r.stderr.startswith("gofer: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "S")


def test_a_gofer_gofer_failure_is_said_once(tmp_path):
    """On stderr when runsc gave no log FD; else only on the log FD (under
    runsc, stderr is /dev/null)."""
    args = ["gofer", "--bundle", str(tmp_path / "nowhere"), "--io-fds=0", "--setup-root=false",
            "c"]
    r = gofer(*args)
    assert r.returncode == 128, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("gofer: fatal: cannot read"), r.stderr
    log_r, log_w = os.pipe()
    r = subprocess.run([sys.executable, "-m", "gofer", "--log-fd=%d" % log_w, *args],
                       capture_output=True, text=True, timeout=30, pass_fds=(log_w,))
    os.close(log_w)
    with os.fdopen(log_r) as f:
        log = f.read()
    assert (r.returncode, r.stderr) == (128, ""), r
    fatal = [line for line in log.splitlines() if "fatal" in line]
    assert len(fatal) == 1 and "ERROR: fatal: cannot read" in fatal[0], log


def test_a_log_fd_that_is_not_open_is_said_on_stderr():
    r = gofer("--log-fd=99", "gofer", "--bundle", "B", "--io-fds=0", "c")
    assert r.returncode == 128 and r.stderr == "gofer: fatal: --log-fd=99: Bad file descriptor\n"


@pytest.mark.parametrize("args", [["--version"], ["serve", "--version"],
                                  ["gofer", "--version"], ["-version"]])
def test_version_before_or_after_the_command(args):
    r = gofer(*args)
    assert (r.returncode, r.stdout, r.stderr) == (0, "gofer %s\n" % gofer_pkg.__version__, "")


def test_help_lists_both_commands_and_every_flag_has_help():
    r = gofer("--help")
    assert r.returncode == 0 and r.stderr == ""
    commands = r.stdout.split("commands:")[1].split("\n\n")[0]
    assert [line.split()[0] for line in commands.splitlines() if line[2:3].isalpha()] == [
        "serve", "gofer"]
    for flag in ("--log-level", "--debug", "--version", "--help"):
        assert flag in r.stdout
    for args in (["-h"], ["serve", "--help"], ["gofer", "-help"]):
        assert gofer(*args).returncode == 0
    assert all(f.help for f in cli.serve_flags()._flags)
    assert all(f.help for f in runsc_gofer.build_flags([])._flags)
    assert all(f.help for f in cli.global_flags()._flags if not f.dest.startswith("runsc:"))


def test_global_flags_before_or_after_serve(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    # --log-level after the command: the seccomp filter's info line shows.
    srv = Serve(str(tree), "--socket", sock, "--seccomp", "--log-level", "info")
    assert "seccomp: allowing" in srv.stop()
    # -debug (Go's spelling, as runsc's) before it, and --seccomp=off: no filter.
    p = subprocess.Popen([sys.executable, "-m", "gofer", "-debug", "serve", str(tree), "--socket",
                          sock, "--seccomp=off"], stderr=subprocess.PIPE, text=True)
    assert "gofer: serving" in p.stderr.readline()
    p.terminate()
    assert p.wait(10) == 0
    assert "seccomp" not in p.stderr.read()


# Costly modules serving does not need: `gofer._log` stands in for logging,
# seccomp gives pyseccomp sonames instead of ctypes.util (subprocess, shutil),
# extensions are found without importlib.metadata and loaded without importlib,
# flags are parsed by gofer.goflag, sockets and signals go through their C
# modules, threads through _thread, and gofer.lisafs.MID is made without enum.
NOT_ON_THE_START_PATH = {"logging", "ctypes.util", "subprocess", "shutil", "tempfile",
                         "importlib", "importlib.metadata", "warnings", "dataclasses", "inspect",
                         "traceback", "argparse", "socket", "signal", "selectors", "json", "re",
                         "typing", "resource", "grp", "enum"}
# Nor, with no extension installed that imports them, threading and functools.
NOT_ON_THE_PLAIN_START_PATH = NOT_ON_THE_START_PATH | {"threading", "functools"}


def test_the_start_path_leaves_out_what_serving_does_not_need(tree, tmp_path):
    """From spawn to a Mount answered (seccomp filter included), per
    CPython's own import log."""
    sock = str(tmp_path / "g.sock")
    p = subprocess.Popen([sys.executable, "-X", "importtime", *gofer_script(), "serve", str(tree),
                          "--socket", sock, "--seccomp"], stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if "gofer: serving" in line:
            break
    Client.connect(sock).close()
    p.terminate()
    assert p.wait(10) == 0, "".join(lines)
    imported = {line.split("|")[2].strip() for line in lines if line.startswith("import time:")}
    assert "gofer.seccomp" in imported and "gofer._server" in imported
    assert imported & NOT_ON_THE_PLAIN_START_PATH == set()


# What the example extensions need only once they serve a mount.
SERVING_ONLY = {"logging", "cryptography", "hashlib", "uuid", "configparser", "boto3", "botocore",
                "socket"}


def test_installed_extensions_load_without_what_only_serving_needs():
    """`gofer gofer` loads every installed extension at every start, and
    most claim nothing: the examples import their crypto, hashing and
    logging only when they claim a mount."""
    code = ("import json, sys\n"
            "from gofer import extension\n"
            "names = [e.name for e in extension.load_entry_points()]\n"
            "print(json.dumps([names, sorted(sys.modules)]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    names, modules = json.loads(out)
    assert {"crypt", "memfs", "s3", "tiered"} <= set(names)
    assert {m.partition(".")[0] for m in modules} & SERVING_ONLY == set()


# -- the socket, and clients that take every FD ---------------------------------

class Serve:
    """A `gofer serve` whose stderr is collected line by line while it runs."""

    def __init__(self, *args, **popen_kw):
        self.p = subprocess.Popen([sys.executable, "-m", "gofer", "serve", *args],
                                  stderr=subprocess.PIPE, text=True, **popen_kw)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.p.stderr))
        self.reader.start()
        try:
            self.wait_for("gofer: serving")
        except BaseException:
            self.p.kill()
            self.p.wait()
            raise

    def wait_for(self, text, timeout=30):
        """The first line that has `text`; fails if none comes (or the server exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.p.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError("gofer serve never said %r:\n%s" % (text, "".join(self.lines)))

    def stop(self):
        """Stops the server; returns its whole stderr. It must have been up."""
        assert self.p.poll() is None, "gofer serve exited on its own:\n" + "".join(self.lines)
        self.p.terminate()
        assert self.p.wait(30) == 0
        self.reader.join(30)
        return "".join(self.lines)


def test_the_socket_is_owner_only_and_served_files_keep_their_modes(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    srv = Serve(str(tree), "--socket", sock, preexec_fn=lambda: os.umask(0))
    try:
        st = os.lstat(sock)
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, os.getuid())
        with Client.connect(sock) as c:           # umask 0 is for what clients create
            c.call(w.MKDIR_AT, dir_fd=c.root.control_fd, uid=NO_ID, gid=NO_ID, mode=0o777,
                   name=b"d")
        assert stat.S_IMODE(os.lstat(tree / "d").st_mode) == 0o777
    finally:
        srv.stop()


def test_the_socket_is_widened_only_as_asked(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    srv = Serve(str(tree), "--socket", sock, "--socket-mode", "0660", "--socket-group", "12345",
                preexec_fn=lambda: os.umask(0o077))
    try:
        st = os.lstat(sock)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, 12345)
    finally:
        srv.stop()
    assert gofer("serve", str(tree), "--socket", sock, "--socket-mode", "1777").returncode == 2
    r = gofer("serve", str(tree), "--socket", sock, "--socket-group", "no-such-group")
    assert r.returncode == 2 and "no group named no-such-group" in r.stderr


@pytest.mark.parametrize("allowed", [True, False])
def test_allow_uid(tree, tmp_path, allowed):
    sock = str(tmp_path / "g.sock")
    uid = os.getuid() if allowed else os.getuid() + 1
    srv = Serve(str(tree), "--socket", sock, "--allow-uid", str(uid), "--allow-uid", "54321",
                "--seccomp")
    try:
        if allowed:
            with connect(sock) as c:
                assert c.fstat(c.root.control_fd).ino == os.stat(tree).st_ino
        else:
            with pytest.raises(ConnectionError):
                connect(sock)
            srv.wait_for("refused")
    finally:
        log = srv.stop()
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert refusals == ([] if allowed else [
        "gofer[%d]: WARNING: refused a client with uid %d (pid %d): not an allowed uid"
        % (srv.p.pid, os.getuid(), os.getpid())])


NOFILE = 256


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def take_every_fd(c):
    """Walks to new FDIDs until the server answers EMFILE; returns how many."""
    for n in range(10 * NOFILE):
        try:
            c.walk(c.root.control_fd, [b"sub"])
        except OSError as e:
            assert e.errno == errno.EMFILE
            return n
    raise AssertionError("no FD limit")


def read_file(c):
    _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
    fd, h = c.open_at(f.control_fd, os.O_RDONLY)
    os.close(h)
    return c.pread(fd, 0, 100)


def test_serve_under_seccomp_survives_a_stop_and_continue(tree, tmp_path):
    """Ctrl-Z then fg: the signal thread enters sigwait() again, under the filter
    (rt_sigtimedwait; without it the kernel killed the server with SIGSYS)."""
    sock = str(tmp_path / "g.sock")
    srv = Serve(str(tree), "--socket", sock, "--seccomp=kill")
    srv.p.send_signal(signal.SIGSTOP)
    os.waitpid(srv.p.pid, os.WUNTRACED)             # stopped for sure
    srv.p.send_signal(signal.SIGCONT)
    with connect(sock) as c:
        assert read_file(c) == b"hello, gofer\n"
    assert "Traceback" not in srv.stop()


def test_a_client_taking_every_fd_it_may_leaves_the_rest_to_others(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    srv = Serve(str(tree), "--socket", sock, preexec_fn=low_nofile)
    try:
        hog = connect(sock)
        assert take_every_fd(hog) <= NOFILE // 2          # its connection's cap
        with connect(sock) as other:
            assert read_file(other) == b"hello, gofer\n"
        hog.close()
    finally:
        log = srv.stop()
    assert "Traceback" not in log


def test_clients_that_take_every_fd_together_are_waited_out(tree, tmp_path):
    sock = str(tmp_path / "g.sock")
    srv = Serve(str(tree), "--socket", sock, "--seccomp", preexec_fn=low_nofile)
    hogs = []
    try:
        # Each takes what its cap allows, until one is stopped short: the
        # process has no FD left.
        taken = []
        for _ in range(10):
            hogs.append(connect(sock))
            taken.append(take_every_fd(hogs[-1]))
            if taken[-1] < taken[0]:
                break
        else:
            raise AssertionError("the process never ran out of FDs: %r" % taken)
        late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        late.settimeout(30)
        late.connect(sock)                          # queued: accept() has no FD for it
        srv.wait_for("cannot accept a client: Too many open files")
        hogs.pop(0).close()                         # FDs come back, one by one...
        try:
            with Client(late) as c:                 # ...and the queued client is answered:
                assert read_file(c) == b"hello, gofer\n"
        except OSError as e:                        # accepted before enough had come back
            assert e.errno == errno.EMFILE
        for _ in range(300):                        # once they are back, clients are served
            try:
                with connect(sock) as c:
                    assert read_file(c) == b"hello, gofer\n"
                break
            except OSError as e:
                assert e.errno == errno.EMFILE
                time.sleep(0.1)
        else:
            raise AssertionError("no client served after a hog left")
    finally:
        for h in hogs:
            h.close()
        log = srv.stop()
    assert "Traceback" not in log
