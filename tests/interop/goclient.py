"""Python side of the JSON-lines protocol spoken by tests/interop/lisafs-driver.

The driver wraps gVisor's real Go LISAFS client. One request line in, one
response line out; the first line the driver prints is the mount result.

    with GoClient(driver, socket=path, channels=True) as gc:
        root = gc.root_fd
        ino = gc.call("walk", fd=root, name="file")["inode"]
        data = gc.call("pread", fd=..., count=4096)["data"]

Convenience conversions: a ``bytes`` argument ``k=b"..."`` is sent as ``k_b64``;
every ``*_b64`` field in a response also appears decoded under the bare name.
Ops (FDIDs are plain ints; uid/gid default to NoUID/NoGID = "leave as is"; an
Inode is {"fd", "stat"}; a stat has every lisafs.Statx field in snake_case):

  fstat          fd                                    -> stat
  setstat        fd, mask, [mode uid gid size atime_sec atime_nsec mtime_sec mtime_nsec]
                                                       -> failure_mask, failure_errno
  walk           fd, name                              -> inode (client maps statuses to
                                                          ENOENT / ENOTDIR)
  walk_multiple  fd, names                             -> status, inodes
  walk_stat      fd, names                             -> stats
  open_at        fd, flags, [host opts*]               -> open_fd, host_fd, host_*
  open_create_at fd, name, flags, mode, [uid gid host opts*]
                                                       -> inode, open_fd, host_fd, host_*
  close          fd, [flush=true]                      -> {} (client never reports errors)
  close_batch    fds, [flush=true]                     -> {} (flush only with the last)
  sync           fd | fds                              -> {} (ClientFD.Sync / SyncFDs)
  pread          fd, count, [offset]                   -> data, [eof]
  pwrite         fd, data, [offset]                    -> count
  mkdir_at       fd, name, mode, [uid gid]             -> inode
  mknod_at       fd, name, mode, [uid gid minor major] -> inode
  symlink_at     fd, name, target, [uid gid]           -> inode
  link_at        fd (dir), target (FDID), name         -> inode
  statfs         fd                                    -> statfs {type block_size blocks
                                                          blocks_free blocks_available files
                                                          files_free name_length}
  allocate       fd, length, [mode offset]             -> {}
  read_link_at   fd                                    -> target
  flush          fd                                    -> {} (no RPC if Flush unsupported)
  connect        fd, [sock_type euid egid sock opts**] -> host_fd, sent, recv
  unlink_at      fd, name, [flags]                     -> {}
  rename_at      fd, old_name, new_dir, new_name, [flags] -> {} (flags!=0: RenameAt2)
  getdents64     fd (open dir), [count=65536]          -> dirents [{ino dev_minor
                                                          dev_major off type name}]
  get_xattr      fd, name, [size=65536]                -> value
  set_xattr      fd, name, value, [flags]              -> {}
  list_xattr     fd, [size=65536]                      -> names
  remove_xattr   fd, name                              -> {}
  bind_at        fd, name, [sock_type mode uid gid]    -> inode, bound_fd, notification_fd
  listen         fd (bound_fd), [backlog=16]           -> {}
  accept         fd (bound_fd), [sock opts**]          -> host_fd, sent, recv
  close_bound    fd (bound_fd)                         -> {}
  is_supported   mid                                   -> supported
  raw            mid, payload, [want_fds]              -> payload, fds
  parallel       goroutines, repeat, requests, [summary]
                                                       -> ok_count, err_count, errnos,
                                                          results[goroutine][i]
                 (a request with autoclose=true has the FDIDs it returns closed at once)
  * host opts (a donated host FD is inspected, then closed): read_host=N,
    read_host_offset, write_host (bytes), write_host_offset -> host_stat {size mode
    ino dev_major dev_minor}, host_flags, host_data, host_written
  ** sock opts (the returned socket is used, then closed): send (bytes), recv=N,
    recv_timeout_ms=5000
The mount line: ok, root, mount_fd, max_message_size, supported (MIDs), channels.

Errors: ``GoError(errno, msg)`` when the driver answers ok=false (errno -1 means
a driver-side problem, not an errno from the server); ``GoDriverError`` when the
driver dies or does not answer within the timeout (a hung server fails the test
instead of hanging pytest).
"""

import base64
import json
import queue
import subprocess
import threading

DEFAULT_TIMEOUT = 30.0

# lisafs.WalkStatus values (pkg/lisafs/message.go).
WALK_SUCCESS, WALK_COMPONENT_DOES_NOT_EXIST, WALK_COMPONENT_SYMLINK = 0, 1, 2
NO_UID = NO_GID = 0xFFFFFFFF


class GoError(Exception):
    def __init__(self, errno, msg):
        super().__init__(f"[errno {errno}] {msg}")
        self.errno = errno
        self.msg = msg


class GoDriverError(AssertionError):
    """The driver crashed, hung, or spoke out of protocol."""


def _encode(v):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(x, (bytes, bytearray, memoryview)):
                out[k + "_b64"] = base64.b64encode(bytes(x)).decode()
            else:
                out[k] = _encode(x)
        return out
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _decode(v):
    if isinstance(v, dict):
        out = {k: _decode(x) for k, x in v.items()}
        for k, x in v.items():
            if k.endswith("_b64") and isinstance(x, str):
                out[k[:-4]] = base64.b64decode(x)
        return out
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _drain(stream, sink):
    for line in iter(stream.readline, b""):
        sink.append(line.decode(errors="replace"))
    stream.close()


class GoClient:
    """A running lisafs-driver connected to a server.

    ``socket``: path of a listening Unix stream socket; or ``fd``: a connected
    stream socket FD (inherited by the driver; the caller keeps its own copy).
    ``channels``: call StartChannels() after mounting (failure is fatal).
    """

    def __init__(self, driver, *, socket=None, fd=None, channels=False,
                 timeout=DEFAULT_TIMEOUT, env=None):
        if (socket is None) == (fd is None):
            raise ValueError("give exactly one of socket= or fd=")
        argv = [str(driver)]
        argv += ["-socket", str(socket)] if socket is not None else ["-fd", str(fd)]
        if channels:
            argv.append("-channels")
        self.timeout = timeout
        self.argv = argv
        self._stderr = []
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(fd,) if fd is not None else (), env=env)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=_drain, args=(self.proc.stderr, self._stderr), daemon=True).start()
        try:
            self.mount = self._read()
            if not self.mount.get("ok"):
                raise GoError(self.mount.get("errno"), "mount: " + str(self.mount.get("error")))
        except BaseException:
            self._kill()
            raise
        self.root = self.mount["root"]  # {"fd": FDID, "stat": {...}}
        self.root_fd = self.root["fd"]

    # -- protocol --------------------------------------------------------

    def _read_stdout(self):
        for line in iter(self.proc.stdout.readline, b""):
            self._lines.put(line)
        self._lines.put(None)  # EOF marker

    def _read(self, timeout=None):
        try:
            line = self._lines.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            self._kill()
            raise GoDriverError(
                f"lisafs-driver gave no answer within {self.timeout}s (server hung?)\n"
                + self.stderr()) from None
        if line is None:
            self.proc.wait()
            raise GoDriverError(
                f"lisafs-driver exited (rc={self.proc.returncode})\n" + self.stderr())
        try:
            return _decode(json.loads(line))
        except ValueError:
            raise GoDriverError(f"lisafs-driver printed a non-JSON line: {line!r}") from None

    def request(self, op, timeout=None, **args):
        """Send one request; return the response dict whether ok or not."""
        if self.proc.poll() is not None and self._lines.empty():
            raise GoDriverError(f"lisafs-driver is not running (rc={self.proc.returncode})\n"
                                + self.stderr())
        line = json.dumps(_encode(dict(args, op=op))) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise GoDriverError("lisafs-driver closed its stdin\n" + self.stderr()) from None
        return self._read(timeout)

    def call(self, op, timeout=None, **args):
        """Send one request; return the response dict, or raise GoError."""
        resp = self.request(op, timeout=timeout, **args)
        if not resp.get("ok"):
            raise GoError(resp.get("errno"), resp.get("error"))
        return resp

    def errno(self, op, **args):
        """The errno a request fails with, or 0 if it succeeds."""
        resp = self.request(op, **args)
        return 0 if resp.get("ok") else resp.get("errno")

    # -- lifecycle -------------------------------------------------------

    def stderr(self):
        return "".join(self._stderr)

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self, check=True):
        """EOF on stdin makes the driver close the client and exit 0."""
        if self.proc.returncode is None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                if check:
                    raise GoDriverError("lisafs-driver did not exit after EOF\n" + self.stderr())
        if check and self.proc.returncode != 0:
            raise GoDriverError(
                f"lisafs-driver exited with rc={self.proc.returncode}\n" + self.stderr())
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # Don't mask the test's own failure with a shutdown complaint.
        self.close(check=exc_type is None)


__all__ = ["GoClient", "GoError", "GoDriverError", "WALK_SUCCESS",
           "WALK_COMPONENT_DOES_NOT_EXIST", "WALK_COMPONENT_SYMLINK", "NO_UID", "NO_GID",
           "DEFAULT_TIMEOUT"]
