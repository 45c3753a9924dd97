"""The seccomp allowlist (gofer.seccomp) and `gofer serve --seccomp`.

A filter cannot be removed, so everything that installs one runs in a
subprocess; only rule building and validation run in the test process.
"""
import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

pyseccomp = pytest.importorskip("pyseccomp")

from gofer import _wire as w
from gofer import seccomp
from gofer.client import Client
from gofer.extension import Extension

NO_ID = 0xFFFFFFFF
SIGSYS_RC = -signal.SIGSYS


# ------------------------------------------------------------------ helpers

@pytest.fixture
def short_tmp():
    """A short directory (socket paths must fit in sun_path's 108 bytes)."""
    d = tempfile.mkdtemp(prefix="gsc-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_tree(base):
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "file.txt"), "wb") as f:
        f.write(b"hello, gofer\n")
    with open(os.path.join(root, "sub", "inner.bin"), "wb") as f:
        f.write(bytes(range(256)) * 400)          # 100 KiB: the GIL-free read path
    os.symlink("sub", os.path.join(root, "link"))
    return root


class Served:
    """A `gofer serve` process; its stderr goes to a file."""

    def __init__(self, base, *flags):
        self.sock = os.path.join(base, "g.sock")
        self.err_path = os.path.join(base, "serve.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gofer", "--log-level", "info", "serve", *flags,
             "--socket", self.sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err, cwd=base, preexec_fn=no_core_dumps)
        deadline = time.monotonic() + 20
        while "gofer: serving" not in self.stderr():
            assert self.proc.poll() is None, "gofer serve exited early:\n" + self.stderr()
            assert time.monotonic() < deadline, "gofer serve did not start:\n" + self.stderr()
            time.sleep(0.02)

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.err.close()
        return rc


def no_core_dumps():
    """SIGSYS dumps core by default: not in the test tree, please."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def errno_of(f, *a, **k):
    try:
        f(*a, **k)
    except OSError as e:
        return e.errno
    return 0


def exercise(c, root, tag):
    """Every RPC of the stock backend once, with the results checked."""
    top = c.root.control_fd
    c.fstat(top)
    status, inodes = c.walk(top, [b"sub", b"inner.bin"])
    assert status == w.WALK_SUCCESS
    assert len(c.walk_stat(top, [b"sub", b"inner.bin"])) == 2
    assert c.walk(top, [b"nope"])[0] == w.WALK_COMPONENT_DOES_NOT_EXIST
    fd, host = c.open_at(inodes[1].control_fd, os.O_RDONLY)
    if host is not None:
        os.close(host)
    assert c.pread(fd, 0, 1 << 20) == bytes(range(256)) * 400
    assert c.pread(fd, 256, 4) == bytes(range(4))

    d = c.call(w.MKDIR_AT, dir_fd=top, uid=NO_ID, gid=NO_ID, mode=0o755, name=tag)["child"]
    r, fds = c.call_fds(w.OPEN_CREATE_AT, dir_fd=d.control_fd, uid=os.getuid(),
                        gid=os.getgid(), mode=0o644, flags=os.O_RDWR, name=b"f")
    for x in fds:
        os.close(x)
    f, nfd = r["child"].control_fd, r["new_fd"]
    assert c.pwrite(nfd, 0, b"x" * 100) == 100
    assert c.pwrite(nfd, 0, b"y" * (200 << 10)) == 200 << 10
    assert c.pread(nfd, 0, 300 << 10) == b"y" * (200 << 10)
    c.call(w.FSYNC, fds=[nfd])
    c.call(w.FALLOCATE, fd=nfd, mode=0, offset=0, length=1 << 20)
    r2 = c.call(w.SETSTAT, fd=f, mask=w.STATX_MODE | w.STATX_SIZE | w.STATX_ATIME
                | w.STATX_MTIME | w.STATX_UID | w.STATX_GID, mode=0o600, uid=os.getuid(),
                gid=os.getgid(), size=5, atime_sec=1, atime_nsec=0, mtime_sec=2,
                mtime_nsec=w.UTIME_NOW)
    assert r2 == dict(failure_mask=0, failure_errno=0)
    host_f = os.path.join(root, tag.decode(), "f")
    assert os.stat(host_f).st_size == 5 and os.stat(host_f).st_mode & 0o777 == 0o600
    c.call(w.FSTATFS, fd=top)
    c.call(w.MKNOD_AT, dir_fd=d.control_fd, uid=NO_ID, gid=NO_ID, mode=0o100644, minor=0,
           major=0, name=b"n")
    s = c.call(w.SYMLINK_AT, dir_fd=d.control_fd, uid=NO_ID, gid=NO_ID, name=b"sl",
               target=b"f")["child"]
    assert c.call(w.READLINK_AT, fd=s.control_fd)["target"] == b"f"
    c.call(w.LINK_AT, dir_fd=d.control_fd, target=f, name=b"hard")
    assert os.stat(host_f).st_nlink == 2
    c.call(w.RENAME_AT, old_dir=d.control_fd, new_dir=d.control_fd, old_name=b"hard",
           new_name=b"hard2")
    c.call(w.RENAME_AT2, old_dir=d.control_fd, new_dir=d.control_fd, old_name=b"hard2",
           new_name=b"n", flags=2)                              # RENAME_EXCHANGE
    try:
        c.call(w.FSETXATTR, fd=f, flags=0, name=b"user.k", value=b"v")
    except OSError as e:
        assert e.errno in (errno.EOPNOTSUPP, errno.EPERM)     # no user xattrs here
    else:
        assert c.call(w.FGETXATTR, fd=f, buf_size=0, name=b"user.k")["value"] == b"v"
        assert b"user.k" in c.call(w.FLISTXATTR, fd=f, size=0)["xattrs"]
        c.call(w.FREMOVEXATTR, fd=f, name=b"user.k")
    assert errno_of(c.call, w.FGETXATTR, fd=f, buf_size=0, name=b"user.zz") in (
        errno.ENODATA, errno.EOPNOTSUPP)
    dfd, host = c.open_at(d.control_fd, os.O_RDONLY)
    if host is not None:
        os.close(host)
    names = {e.name for e in c.getdents64(dfd, 4096)}
    assert {b"f", b"n", b"hard2", b"sl"} <= names
    assert {e.name for e in c.getdents64(dfd, -4096)} == names   # restart from the top

    # Host sockets (--host-uds all): BindAt, Listen, Accept, Connect.
    b, fds = c.call_fds(w.BIND_AT, dir_fd=d.control_fd, uid=NO_ID, gid=NO_ID, mode=0o755,
                        sock_type=socket.SOCK_STREAM, name=b"sock")
    for x in fds:
        os.close(x)
    c.call(w.LISTEN, fd=b["bound_socket_fd"], backlog=4)
    peer = socket.socket(socket.AF_UNIX)
    peer.connect(os.path.join(root, tag.decode(), "sock"))
    _, fds = c.call_fds(w.ACCEPT, fd=b["bound_socket_fd"])
    assert len(fds) == 1
    conn = socket.socket(fileno=fds[0])
    peer.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    conn.close()
    _, fds = c.call_fds(w.CONNECT, fd=b["child"].control_fd, sock_type=socket.SOCK_STREAM)
    assert len(fds) == 1
    os.close(fds[0])
    # ConnectWithCreds switches this server thread's euid/egid and back.
    try:
        _, fds = c.call_fds(w.CONNECT_WITH_CREDS, fd=b["child"].control_fd,
                            sock_type=socket.SOCK_STREAM, uid=1234, gid=1234)
    except OSError as e:
        assert e.errno in (errno.EACCES, errno.EPERM), e
    else:
        for x in fds:
            os.close(x)
        _, fds = c.call_fds(w.ACCEPT, fd=b["bound_socket_fd"])
        for x in fds:
            os.close(x)
    peer.close()
    _, fds = c.call_fds(w.ACCEPT, fd=b["bound_socket_fd"])      # the Connect just made
    for x in fds:
        os.close(x)
    assert errno_of(c.call, w.ACCEPT, fd=b["bound_socket_fd"]) == errno.EAGAIN

    # Errors travel as errnos.
    assert errno_of(c.fstat, 99999) == errno.EBADF
    assert errno_of(c.call, w.UNLINK_AT, dir_fd=top, flags=0, name=b"nope") == errno.ENOENT
    assert errno_of(c.call, w.MKDIR_AT, dir_fd=top, uid=NO_ID, gid=NO_ID, mode=0o755,
                    name=b"sub") == errno.EEXIST
    for n in (b"f", b"n", b"hard2", b"sl", b"sock"):
        c.call(w.UNLINK_AT, dir_fd=d.control_fd, flags=0, name=n)
    c.call(w.UNLINK_AT, dir_fd=top, flags=0x200, name=tag)
    assert not os.path.exists(os.path.join(root, tag.decode()))
    c.close_fds(fd, nfd, dfd)


def violations(text):
    return [l for l in text.splitlines() if l.startswith("gofer: seccomp: syscall")]


# ------------------------------------------------------------------ gofer serve

@pytest.mark.parametrize("flag", ["--seccomp=kill", "--seccomp=log"])
def test_serve_under_the_filter_serves_every_rpc(short_tmp, flag):
    root = make_tree(short_tmp)
    srv = Served(short_tmp, root, "--host-uds", "all", flag)
    try:
        # The socket alone, then flipcall channels (the second batch of
        # Channel RPCs travels over the first channel).
        with Client.connect(srv.sock) as c:
            exercise(c, root, b"s")
        with Client.connect(srv.sock) as c:
            assert c.start_channels(2) == 2
            exercise(c, root, b"c1")
            c.start_channels(4)
            exercise(c, root, b"c2")
        # Concurrent connections, each with its threads.
        errs = []

        def worker(i):
            try:
                with Client.connect(srv.sock) as c:
                    if i % 2:
                        c.start_channels(2)
                    for k in range(2):
                        exercise(c, root, b"w%d_%d" % (i, k))
            except Exception as e:          # pragma: no cover - reported below
                errs.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert not errs, errs
        # A client that vanishes with its channels open.
        gone = Client.connect(srv.sock)
        gone.start_channels(2)
        gone.fstat(gone.root.control_fd)
        gone.sock.close()
        # One still connected, with channels, when the gofer is stopped.
        live = Client.connect(srv.sock)
        live.start_channels(2)
        live.fstat(live.root.control_fd)
        assert srv.proc.poll() is None, srv.stderr()
    finally:
        rc = srv.stop()
    err = srv.stderr()
    assert rc == 0, err
    assert "gofer: stopped" in err
    assert not violations(err), err
    assert "seccomp: allowing" in err
    assert not os.path.exists(srv.sock)
    live.close()


def test_connect_with_creds_without_host_uds_is_eperm_not_sigsys(short_tmp):
    """Regression (found by tests/security): ConnectWithCreds read and
    switched the thread's ids before checking --host-uds, calls the filter
    only allows with host UDS open; one request killed the gofer."""
    root = make_tree(short_tmp)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(root, "hole"))
    srv = Served(short_tmp, root, "--seccomp=kill")
    try:
        with Client.connect(srv.sock) as c:
            _, [hole] = c.walk(c.root.control_fd, [b"hole"])
            for uid in (0, 1000):
                assert errno_of(c.call, w.CONNECT_WITH_CREDS, fd=hole.control_fd, sock_type=1,
                                uid=uid, gid=uid) == errno.EPERM
            assert c.fstat(c.root.control_fd)
    finally:
        rc = srv.stop()
        listener.close()
    assert rc == 0, srv.stderr()


def test_serve_stops_on_ctrl_c_under_the_filter(short_tmp):
    root = make_tree(short_tmp)
    srv = Served(short_tmp, root, "--seccomp")
    with Client.connect(srv.sock) as c:
        _, [f] = c.walk(c.root.control_fd, [b"file.txt"])
        fd, h = c.open_at(f.control_fd, os.O_RDONLY)
        os.close(h)
        assert c.pread(fd, 0, 100) == b"hello, gofer\n"
        assert srv.stop(signal.SIGINT) == 0, srv.stderr()
    assert "gofer: stopped" in srv.stderr()


def _has_memfs():
    import importlib.metadata
    return any(ep.name == "memfs" for ep in
               importlib.metadata.entry_points(group="gofer.extensions"))


@pytest.mark.skipif(not _has_memfs(), reason="examples/memfs is not installed")
def test_serve_an_extension_under_the_filter(short_tmp):
    srv = Served(short_tmp, "--extension", "memfs", "--seccomp")
    try:
        with Client.connect(srv.sock) as c:
            c.start_channels(2)
            top = c.root.control_fd
            d = c.call(w.MKDIR_AT, dir_fd=top, uid=NO_ID, gid=NO_ID, mode=0o755,
                       name=b"d")["child"]
            r, fds = c.call_fds(w.OPEN_CREATE_AT, dir_fd=d.control_fd, uid=NO_ID, gid=NO_ID,
                                mode=0o644, flags=os.O_RDWR, name=b"f")
            for x in fds:
                os.close(x)
            assert c.pwrite(r["new_fd"], 0, b"m" * 70000) == 70000
            assert c.pread(r["new_fd"], 0, 1 << 20) == b"m" * 70000
            dfd, _ = c.open_at(d.control_fd, os.O_RDONLY)
            assert b"f" in {e.name for e in c.getdents64(dfd, 4096)}
            assert errno_of(c.fstat, 4242) == errno.EBADF
    finally:
        rc = srv.stop()
    assert rc == 0, srv.stderr()
    assert not violations(srv.stderr())


def test_serve_exits_cleanly_when_the_filter_cannot_go_on(short_tmp):
    root = make_tree(short_tmp)
    sock = os.path.join(short_tmp, "g.sock")
    code = textwrap.dedent('''
        import sys
        from gofer import cli, seccomp
        def refuse(args):
            raise ValueError("extension x: seccomp rule 'unmae': unknown syscall 'unmae'")
        seccomp.install_for_serve = refuse
        sys.exit(cli.main(["serve", sys.argv[1], "--socket", sys.argv[2], "--seccomp"]))
    ''')
    r = subprocess.run([sys.executable, "-c", code, root, sock], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "gofer: error: seccomp: extension x: seccomp rule 'unmae'" in r.stderr
    assert "Traceback" not in r.stderr and "serving" not in r.stderr
    assert not os.path.exists(sock)


def test_serve_without_host_uds_has_no_socket_syscalls():
    names = {n for n, _ in seccomp.rules()}
    assert not names & {"socket", "connect", "bind", "listen"}
    both = {n for n, _ in seccomp.rules(host_uds_open=True, host_uds_create=True)}
    assert {"socket", "connect", "bind", "listen"} <= both
    assert "connect" not in {n for n, _ in seccomp.rules(host_uds_create=True)}
    assert "bind" not in {n for n, _ in seccomp.rules(host_uds_open=True)}


# ------------------------------------------------------------------ extensions

# The helper: registers an extension whose seccomp_rules() come from the
# command line (JSON: names or [name, [[arg, op, a, b], ...]]), installs the
# filter with the registered extensions' rules, then makes one call.
HELPER = textwrap.dedent('''
    import errno, json, mmap, os, socket, sys, threading, time
    import pyseccomp
    from gofer import seccomp
    from gofer.extension import Extension, register

    spec = json.loads(sys.argv[1])

    def rule(r):
        if isinstance(r, str):
            return r
        return (r[0], [pyseccomp.Arg(*a) for a in r[1]])

    class Needy(Extension):
        name = "needy"
        def seccomp_rules(self):
            return [rule(r) for r in spec.get("rules", [])]

    register(Needy())
    seccomp.install(seccomp.extension_rules(), log=spec.get("log", False),
                    **spec.get("opts", {}))

    def spin():
        while True:
            time.sleep(0.0005)

    calls = {
        "uname": lambda: os.uname().sysname,
        "prio_process": lambda: os.getpriority(os.PRIO_PROCESS, 0),
        "prio_pgrp": lambda: os.getpriority(os.PRIO_PGRP, 0),
        "mmap_rw": lambda: len(mmap.mmap(-1, 4096)),
        "mmap_exec": lambda: len(mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)),
        "inet": lambda: socket.socket(socket.AF_INET).fileno() >= 0,
        "unix_dgram": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC).fileno() >= 0,
        "thread": lambda: [t.start() or t.join() for t in [threading.Thread(target=len, args=("",))]] and "joined",
        "daemons": lambda: [threading.Thread(target=spin, daemon=True).start() for _ in range(4)] and time.sleep(0.05),
        "nothing": lambda: None,
    }
    print("installed", flush=True)
    try:
        print("result:", calls[spec["call"]](), flush=True)
    except OSError as e:
        print("errno:", e.errno, flush=True)
''')


@pytest.fixture
def run_ext(tmp_path):
    script = tmp_path / "needy.py"
    script.write_text(HELPER)

    def run(call, rules=(), log=False, **opts):
        spec = dict(call=call, rules=list(rules), log=log, opts=opts)
        return subprocess.run([sys.executable, str(script), json.dumps(spec)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              preexec_fn=no_core_dumps)
    return run


def test_a_syscall_outside_the_allowlist_kills_with_sigsys(run_ext):
    r = run_ext("uname")
    assert r.returncode == SIGSYS_RC, (r.returncode, r.stdout, r.stderr)
    assert "installed" in r.stdout and "result:" not in r.stdout


def test_the_extension_declaring_the_syscall_works(run_ext):
    r = run_ext("uname", rules=["uname"])
    assert r.returncode == 0, r.stderr
    assert "result: Linux" in r.stdout


def test_extension_argument_filters(run_ext):
    rule = ["getpriority", [[0, pyseccomp.EQ, os.PRIO_PROCESS]]]
    r = run_ext("prio_process", rules=[rule])
    assert r.returncode == 0 and "result:" in r.stdout, r.stderr
    r = run_ext("prio_pgrp", rules=[rule])
    assert r.returncode == SIGSYS_RC, (r.returncode, r.stdout, r.stderr)


def test_log_mode_logs_and_answers_enosys(run_ext):
    r = run_ext("uname", log=True)
    assert r.returncode == 0, r.stderr
    assert "errno: %d" % errno.ENOSYS in r.stdout
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "uname")
    line = [l for l in violations(r.stderr)]
    assert len(line) == 1, r.stderr
    assert line[0].startswith("gofer: seccomp: syscall %d not allowed (pid " % nr), line
    assert line[0].endswith("): uname")
    pid = int(line[0].split("(pid ")[1].split(")")[0])
    assert pid > 0


def test_log_mode_is_quiet_for_allowed_syscalls(run_ext):
    r = run_ext("thread", rules=["uname"], log=True)
    assert r.returncode == 0 and "result: joined" in r.stdout, r.stderr
    assert not violations(r.stderr), r.stderr


def test_threads_start_and_daemon_threads_do_not_kill_the_exit(run_ext):
    # clone3 answers ENOSYS and glibc falls back to clone, whose flags we
    # check. Daemon threads that want the GIL while the interpreter exits go
    # through pthread_exit, which needs libgcc_s preloaded.
    r = run_ext("thread")
    assert r.returncode == 0 and "result: joined" in r.stdout, r.stderr
    r = run_ext("daemons")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


def test_no_rule_allows_executable_mappings(run_ext):
    # Python's anonymous mmap is MAP_SHARED|MAP_ANONYMOUS: not on the stock
    # list, so an extension wanting it asks for mmap...
    r = run_ext("mmap_rw")
    assert r.returncode == SIGSYS_RC, (r.returncode, r.stdout, r.stderr)
    r = run_ext("mmap_rw", rules=["mmap"])
    assert r.returncode == 0 and "result: 4096" in r.stdout, r.stderr
    # ...and still gets no PROT_EXEC.
    r = run_ext("mmap_exec", rules=["mmap"])
    assert r.returncode == SIGSYS_RC, (r.returncode, r.stdout, r.stderr)


def test_socket_is_unix_only(run_ext):
    r = run_ext("unix_dgram", host_uds_open=True)
    assert r.returncode == 0 and "result: True" in r.stdout, r.stderr
    r = run_ext("inet", host_uds_open=True)
    assert r.returncode == SIGSYS_RC, (r.returncode, r.stdout, r.stderr)


def test_a_bad_extension_rule_stops_before_any_filter(run_ext):
    r = run_ext("nothing", rules=["no_such_syscall"])
    assert r.returncode == 1
    assert "ValueError" in r.stderr and "no_such_syscall" in r.stderr
    assert "extension needy" in r.stderr
    assert "installed" not in r.stdout


# ------------------------------------------------------------------ rule checks

@pytest.mark.parametrize("bad, words", [
    (["no_such_syscall"], ["no_such_syscall", "unknown syscall"]),
    ([42], ["42"]),
    ([("read", ["not an Arg"])], ["read", "not an Arg"]),
    ([("read", "x")], ["read", "list"]),
    ([("read", [pyseccomp.Arg(7, pyseccomp.EQ, 0)])], ["read", "index"]),
    ([("read", [pyseccomp.Arg(0, 99, 0)])], ["read", "operator"]),
    ([("read", [pyseccomp.Arg(0, pyseccomp.EQ, -1)])], ["read", "64-bit"]),
    ([("read", [pyseccomp.Arg(0, pyseccomp.EQ, 1), pyseccomp.Arg(0, pyseccomp.EQ, 2)])],
     ["read", "one argument"]),
    ([("mmap", [pyseccomp.Arg(2, pyseccomp.EQ, 7)])], ["mmap", "PROT_EXEC"]),
    ([("mprotect", [pyseccomp.Arg(2, pyseccomp.NE, 0)])], ["mprotect", "PROT_EXEC"]),
    ([("a", "b", "c")], ["('a', 'b', 'c')"]),
    ([("read", [(0, pyseccomp.EQ, 1)])], ["read", "not a pyseccomp.Arg"]),
])
def test_bad_rules_raise_value_error_naming_the_rule(bad, words):
    with pytest.raises(ValueError) as e:
        seccomp.rules(extra=bad)
    for word in words:
        assert word in str(e.value), str(e.value)


def test_bad_rules_from_an_extension_name_it():
    class Broken(Extension):
        name = "broken"

        def seccomp_rules(self):
            return "uname"                      # not a list

    with pytest.raises(ValueError) as e:
        seccomp.extension_rules([Broken()])
    assert "extension broken" in str(e.value)

    class Typo(Extension):
        name = "typo"

        def seccomp_rules(self):
            return ["unmae"]

    with pytest.raises(ValueError) as e:
        seccomp.rules(extra=seccomp.extension_rules([Typo()]))
    assert "extension typo" in str(e.value) and "unmae" in str(e.value)

    class Jit(Extension):
        name = "jit"

        def seccomp_rules(self):
            return ["uname", ("mprotect", [pyseccomp.Arg(2, pyseccomp.EQ, 5)])]

    with pytest.raises(ValueError) as e:
        seccomp.rules(extra=seccomp.extension_rules([Jit()]))
    assert "extension jit" in str(e.value) and "PROT_EXEC" in str(e.value)


def by_name(rule_list):
    out = {}
    for name, args in rule_list:
        out.setdefault(name, []).append(args)
    return out


def test_extension_rules_only_widen():
    stock = by_name(seccomp.rules())
    assert "uname" not in stock
    # A plain name on a filtered syscall: any arguments.
    wide = by_name(seccomp.rules(extra=["fcntl", "uname"]))
    assert wide["fcntl"] == [[]] and wide["uname"] == [[]]
    # A filtered rule adds an alternative; the stock ones stay.
    more = by_name(seccomp.rules(extra=[("fcntl", [pyseccomp.Arg(1, pyseccomp.EQ, 5)])]))
    assert len(more["fcntl"]) == len(stock["fcntl"]) + 1
    # mmap stays non-executable whatever an extension says.
    mm = by_name(seccomp.rules(extra=["mmap"]))["mmap"]
    assert len(mm) == 1 and [(a._arg, a._op, a._data_a, a._data_b) for a in mm[0]] == [
        (2, pyseccomp.MASKED_EQ, seccomp.PROT_EXEC, 0)]
    # clone3 is answered ENOSYS unless an extension allows it.
    assert "clone3" not in stock and "clone3" in by_name(seccomp.rules(extra=["clone3"]))


@pytest.mark.parametrize("arch, absent", [("x86_64", []), ("aarch64", ["poll", "unlink"])])
def test_filters_build_for_x86_64_and_arm64(arch, absent, tmp_path):
    rule_list = seccomp.rules(host_uds_open=True, host_uds_create=True)
    flt, have, lack = seccomp.build_filter(rule_list, arch=arch)
    assert sorted(lack) == absent
    assert set(have) | set(lack) == {n for n, _ in rule_list}
    out = tmp_path / "filter.pfc"
    with open(out, "w") as f:
        flt.export_pfc(f)
    pfc = out.read_text()
    token = seccomp.arch_token(arch)
    assert "if ($arch == %d)" % token in pfc
    for name in ("openat", "futex", "mmap", "clone", "recvmsg", "pwrite64"):
        nr = pyseccomp.resolve_syscall(token, name)
        assert '"%s" (%d)' % (name, nr) in pfc
    assert "action ERRNO(%d)" % errno.ENOSYS in pfc        # clone3
    for name in ("execve", "ptrace", "uname", "open", "kill"):
        assert '"%s"' % name not in pfc


def test_sigsys_handler_sets_the_return_register(tmp_path):
    # Independent of seccomp: a SIGSYS with si_code SYS_SECCOMP queued to our
    # own thread must make the syscall that delivered it fail with ENOSYS.
    script = tmp_path / "sigsys.py"
    script.write_text(textwrap.dedent('''
        import ctypes, os, signal, struct
        import pyseccomp
        from gofer import _sandbox

        def nr(name):
            return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)

        _sandbox.install_sigsys_handler({nr("uname"): "uname"})
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        # siginfo_t: signo, errno, code (SYS_SECCOMP = 1), then _sigsys:
        # call_addr, syscall, arch; 128 bytes in all.
        si = struct.pack("iii4xPiI", signal.SIGSYS, 0, 1, 0, nr("uname"), 0).ljust(128, b"\\0")
        buf = ctypes.create_string_buffer(si, 128)
        tid = libc.syscall(nr("gettid"))
        rc = libc.syscall(nr("rt_tgsigqueueinfo"), os.getpid(), tid, signal.SIGSYS, buf)
        print(rc, ctypes.get_errno(), _sandbox.trapped_count(), os.getpid(), nr("uname"))
    '''))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rc, err, count, pid, nr = r.stdout.split()
    assert (rc, err, count) == ("-1", str(errno.ENOSYS), "1"), (r.stdout, r.stderr)
    assert violations(r.stderr) == [
        "gofer: seccomp: syscall %s not allowed (pid %s): uname" % (nr, pid)], r.stderr


def _import_pyseccomp(path=None):
    code = ("import sys\nfrom gofer import seccomp\nsc = seccomp._sc()\n"
            "import typing\n"
            "print(sc.__file__, 'ctypes.util' in sys.modules, hasattr(typing, '__file__'), "
            "getattr(sc, 'PROTO', None) is getattr(typing, 'Protocol', 0))\n")
    env = dict(os.environ, PYTHONPATH=str(path)) if path else None
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_pyseccomp_is_imported_with_stand_ins_taken_away_after(tmp_path):
    # The real pyseccomp: imported with a stand-in ctypes.util and typing,
    # neither left behind (the `import typing` after it is the real one).
    f, util_left, real_typing, _ = _import_pyseccomp()
    assert f.endswith("pyseccomp.py") and util_left == "False" and real_typing == "True"
    # One that wants more of typing than the stand-in has: imported as it is.
    (tmp_path / "pyseccomp.py").write_text(
        "from typing import Protocol as PROTO\nSyscallFilter = object\n")
    f, _, _, got_protocol = _import_pyseccomp(tmp_path)
    assert f == str(tmp_path / "pyseccomp.py") and got_protocol == "True"
