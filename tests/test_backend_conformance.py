"""The conformance kit (gofer.testing) on the three example backends, each
for what it claims (its supported_messages()), over the socket and over
channels: gofer-crypt on a host directory, gofer-tiered in front of memfs
and of gofer-s3, and gofer-s3 on a fresh bucket of the real S3 server of
tests/backends (SeaweedFS on loopback)."""
import os

import gofer_memfs
import pytest
from gofer_crypt.fs import CryptConnection
from gofer_tiered import Cache, TieredConnection

from gofer.testing import claimed_checks, conformance_tests, run_check

_cache_fds = []


@pytest.fixture(scope="module", autouse=True)
def _close_cache_fds():
    yield
    while _cache_fds:
        os.close(_cache_fds.pop())


def tiered(inner, workdir):
    """gofer-tiered in front of `inner`, its cache in workdir."""
    path = os.path.join(workdir, "cache")
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _cache_fds.append(fd)
    return TieredConnection(inner, Cache(fd, 1 << 20))


def s3(endpoint, bucket):
    """gofer-s3 with its default settings (a 5 s stat cache among them)."""
    from gofer_s3 import load_config
    from gofer_s3.store import S3Connection, Store
    return S3Connection(Store(load_config(environ={"GOFER_S3_ENDPOINT": endpoint,
                                                   "GOFER_S3_BUCKET": bucket})))


test_crypt = conformance_tests(lambda workdir: CryptConnection(workdir, bytes(range(32))))
test_tiered_memfs = conformance_tests(
    lambda workdir: tiered(gofer_memfs.MemConnection(), workdir))

# The S3 backends need the server's fixture: the kit's pieces, parametrized
# here (asking what they claim needs no server).
S3_CHECKS = claimed_checks(lambda w: s3("http://127.0.0.1:1", "probe"))
TIERED_S3_CHECKS = claimed_checks(lambda w: tiered(s3("http://127.0.0.1:1", "probe"), w))
transports = pytest.mark.parametrize("channels", [False, True], ids=["socket", "channels"])


def name(check):
    return check.__name__[len("check_"):]


@transports
@pytest.mark.parametrize("check", S3_CHECKS, ids=name)
def test_s3(check, channels, bucket):
    run_check(check, lambda workdir: s3(*bucket), channels)


@transports
@pytest.mark.parametrize("check", TIERED_S3_CHECKS, ids=name)
def test_tiered_s3(check, channels, bucket):
    run_check(check, lambda workdir: tiered(s3(*bucket), workdir), channels)


def test_what_each_backend_claims():
    """Which checks run: what each backend's storage can do (gofer-s3 keeps
    no modes or times: docs/backends.md)."""
    crypt = [name(c) for c in claimed_checks(lambda w: CryptConnection(w, bytes(32)))]
    assert crypt == ["stat", "walk", "open", "create", "read_write", "mkdir", "symlink",
                     "rename", "rename_dir", "unlink", "getdents", "setstat", "modes", "times",
                     "statfs"], crypt
    assert [name(c) for c in S3_CHECKS] == ["stat", "walk", "open", "create", "read_write",
                                            "mkdir", "rename", "rename_dir", "unlink", "getdents",
                                            "setstat", "allocate", "statfs"]
