"""A SeaweedFS server (`weed server -s3`) on free loopback ports, for the
gofer-s3 and gofer-tiered tests; it can be stopped and started again on the
same ports and data directory (a store that goes away and comes back).

Fixtures (registered by tests/conftest.py):
- ``weed``: the session's WeedServer, started once (ready in ~15 s).
- ``bucket``: a fresh bucket on it for one test, (endpoint, name).
"""
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

START_TIMEOUT = 120.0
_PROBE_TIMEOUT = 2.0


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_client(endpoint, timeout=_PROBE_TIMEOUT):
    import botocore.config
    import botocore.session
    from botocore import UNSIGNED
    conf = botocore.config.Config(connect_timeout=timeout, read_timeout=timeout,
                                  retries={"max_attempts": 1}, signature_version=UNSIGNED,
                                  s3={"addressing_style": "path"})
    return botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, config=conf)


class WeedServer:
    def __init__(self, weed, workdir):
        self.weed, self.dir = str(weed), Path(workdir)
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        ports = free_ports(8)
        self.s3_port = ports[0]
        self.endpoint = "http://127.0.0.1:%d" % self.s3_port
        self.argv = [self.weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                     "-dir=%s" % (self.dir / "data"), "-s3", "-s3.port=%d" % ports[0],
                     "-s3.port.grpc=%d" % ports[1], "-master.port=%d" % ports[2],
                     "-master.port.grpc=%d" % ports[3], "-volume.port=%d" % ports[4],
                     "-volume.port.grpc=%d" % ports[5], "-filer.port=%d" % ports[6],
                     "-filer.port.grpc=%d" % ports[7], "-volume.max=0",
                     "-s3.port.iceberg=0", "-s3.port.lance=0",    # fixed ports otherwise
                     "-master.volumeSizeLimitMB=64"]
        self.proc = None
        self._starts = itertools.count()

    def log(self):
        text = []
        for p in sorted(self.dir.glob("weed-*.log")):
            text.append(p.read_text(errors="replace")[-4000:])
        return "\n".join(text)

    def start(self):
        log = open(self.dir / ("weed-%d.log" % next(self._starts)), "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        client = s3_client(self.endpoint)
        deadline = time.monotonic() + START_TIMEOUT
        probe = "ready-" + uuid.uuid4().hex[:8]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("weed exited (rc=%s):\n%s" % (self.proc.returncode, self.log()))
            try:
                # Ready when a bucket takes an object (the volume server is up
                # too); the bucket may be there from an earlier try whose
                # put timed out while the first volume was being made.
                try:
                    client.create_bucket(Bucket=probe)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=probe, Key="k", Body=b"x")
                return self
            except Exception:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("weed did not serve S3 within %ss:\n%s" % (START_TIMEOUT, self.log()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def client(self):
        return s3_client(self.endpoint, timeout=30)


@pytest.fixture(scope="session")
def weed():
    from .seaweedfs_build import BuildError, build
    if shutil.which("go") is None:
        pytest.skip("needs the `go` toolchain to build SeaweedFS (tests/backends/seaweedfs)")
    try:
        path = build()
    except BuildError as e:
        pytest.fail(str(e), pytrace=False)
    work = tempfile.mkdtemp(prefix="gofer-weed-")
    server = WeedServer(path, work)
    try:
        server.start()
    except RuntimeError as e:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def bucket(weed):
    """A fresh bucket: (endpoint, name). Restarts the server if a test left it stopped."""
    if weed.proc is None:
        weed.start()
    name = "t-" + uuid.uuid4().hex[:12]
    weed.client().create_bucket(Bucket=name)
    return weed.endpoint, name
