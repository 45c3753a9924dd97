"""`gofer serve` as a user runs it."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from gofer.client import Client


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


def test_missing_arguments_print_usage():
    r = gofer("serve")
    assert r.returncode == 2 and "usage" in r.stderr
