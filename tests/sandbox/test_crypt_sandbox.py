"""Issue 15: gofer-crypt serving a bind mount of a real runsc sandbox.

The container writes, reads back, md5sums, lists, patches in place,
truncates and renames files on /mnt/secret, which the crypt extension
serves from a host directory with a key file the sandbox never sees. The
host directory then holds ciphertext only, which decrypts (with the key,
on the host) to exactly what the container wrote. runsc runs with its
default directfs (on) and with --directfs=false: the mount's hint turns
directfs off for it, and no host FD reaches the sandbox either way.
"""
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gofer_crypt.cipher import host_size, load_key
from gofer_crypt.fs import EncryptedFile

from . import harness

LINES = "".join("SECRET-LINE-%d\n" % i for i in range(3000)).encode()
PATCHED = LINES[:5000] + b"PATCH" + LINES[5005:]
SCRIPT = """\
cd /mnt/secret || exit 1
echo "the secret line" > a.txt
i=0; while [ $i -lt 3000 ]; do echo "SECRET-LINE-$i"; i=$((i+1)); done > big.txt
cat a.txt
md5sum big.txt
mkdir d
mv big.txt d/moved.txt
printf PATCH | dd of=d/moved.txt bs=1 seek=5000 conv=notrunc 2>/dev/null
md5sum d/moved.txt
truncate -s 4 a.txt
cat a.txt; echo
ls -lR /mnt/secret
echo done
"""
NAME = "secret"


def crypt_annotations(source, key):
    """The crypt extension claims /mnt/secret; gVisor's mount hint keeps the
    mount shared and turns directfs off for it (it has no host FD to give)."""
    hint = "dev.gvisor.spec.mount.%s." % NAME
    return {"dev.gofer.crypt.mounts": "/mnt/secret", "dev.gofer.crypt.key": str(key),
            hint + "source": str(source), hint + "type": "bind", hint + "share": "shared",
            hint + "directfs": "off"}


@pytest.fixture(params=[[], ["--directfs=false"]], ids=["directfs-default", "directfs-false"])
def run(request, runsc, spec_template, gofer_cmd):
    top = Path(tempfile.mkdtemp(prefix="gofer-crypt-", dir="/tmp"))
    try:
        rootfs = harness.make_rootfs(top / "bundle" / "rootfs")
        (rootfs / "mnt" / "secret").mkdir(parents=True)
        (rootfs / "crypt.sh").write_text(SCRIPT)
        (top / "secret").mkdir()
        key = top / "key"                        # outside everything the sandbox mounts
        key.write_bytes(os.urandom(32))
        harness.write_bundle(top / "bundle", spec_template, ["/bin/sh", "/crypt.sh"],
                             mounts=[harness.bind("/mnt/secret", top / "secret")],
                             annotations=crypt_annotations(top / "secret", key))
        result = runsc.run(top / "bundle", request.param, gofer=gofer_cmd)
        yield top, key, result
    finally:
        shutil.rmtree(top, ignore_errors=True)


def plaintext(path, key):
    f = EncryptedFile(os.open(path, os.O_RDONLY), load_key(key))
    try:
        return f.read(0, 1 << 30)
    finally:
        f.close()


def test_workload_in_a_sandbox(run):
    top, key, result = run
    out = result.stdout.splitlines()
    why = result.report()
    assert result.rc == 0 and out[-1] == "done", why
    assert out[0] == "the secret line", why
    assert out[1] == "%s  big.txt" % hashlib.md5(LINES).hexdigest(), why
    assert out[2] == "%s  d/moved.txt" % hashlib.md5(PATCHED).hexdigest(), why
    assert out[3] == "the ", why
    listing = [line.split() for line in out[4:-1]]
    files = {fields[-1]: int(fields[4]) for fields in listing if len(fields) >= 9}
    assert files["a.txt"] == 4 and files["moved.txt"] == len(PATCHED), why
    assert "big.txt" not in files and "d" in files, why
    # The gofer log says who served the mount.
    gofer_log = "".join(t for n, t in result.logs.items() if n.endswith(".gofer.txt"))
    assert any("/mnt/secret" in line and "crypt" in line for line in gofer_log.splitlines())

    # On the host: plain names, encrypted contents that decrypt to what was written.
    secret = top / "secret"
    assert sorted(os.listdir(secret)) == ["a.txt", "d"]
    assert os.listdir(secret / "d") == ["moved.txt"]
    assert plaintext(secret / "a.txt", key) == b"the "
    assert plaintext(secret / "d" / "moved.txt", key) == PATCHED
    assert os.stat(secret / "d" / "moved.txt").st_size == host_size(len(PATCHED))
    for path in (secret / "a.txt", secret / "d" / "moved.txt"):
        raw = path.read_bytes()
        for needle in (b"SECRET", b"LINE-1", b"PATCH", b"the "):
            assert needle not in raw, (path, needle)


def test_without_the_directfs_hint_the_mount_fails_closed(runsc, spec_template, gofer_cmd,
                                                           tmp_path):
    """With directfs on for the mount, the sentry insists on a host FD of the
    mount point; the crypt backend gives none, so the sandbox does not start
    rather than see ciphertext."""
    rootfs = harness.make_rootfs(tmp_path / "bundle" / "rootfs")
    (rootfs / "mnt" / "secret").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "key").write_bytes(os.urandom(32))
    annotations = {k: v for k, v in crypt_annotations(tmp_path / "secret",
                                                      tmp_path / "key").items()
                   if not k.endswith(".directfs")}
    harness.write_bundle(tmp_path / "bundle", spec_template, ["/bin/echo", "started"],
                         mounts=[harness.bind("/mnt/secret", tmp_path / "secret")],
                         annotations=annotations)
    result = runsc.run(tmp_path / "bundle", [], gofer=gofer_cmd)
    assert result.rc != 0 and "started" not in result.stdout, result.report()
    assert "did not return host FD" in "".join(result.logs.values()), result.report()
