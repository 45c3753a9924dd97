"""Issue 15: gofer-s3 and gofer-tiered serving bind mounts of a real gVisor
sandbox, on a real S3 server (SeaweedFS, tests/backends).

One busybox container, our gofer, two mounts claimed through the spec:
/mnt/s3 (gofer-s3, the bucket's prefix s3/) and /mnt/tiered (gofer-tiered in
front of gofer-s3, prefix tiered/). In each the workload writes, reads back,
md5sums, lists (ls -lR) and renames; the host then checks the bucket.
runsc runs the gofer in the host's network namespace
(--gofer-network-namespace=host): its default, a new empty one, has no
loopback route to the store.
"""
import hashlib
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from . import harness

SEED = bytes(range(256)) * 12000                     # ~3 MB, put in the bucket by the host

WORKLOAD = r"""
for d in /mnt/s3 /mnt/tiered; do
  echo "== $d"
  cat $d/seed/input | md5sum
  mkdir -p $d/dir/sub
  echo "hello from the sandbox" > $d/dir/hello.txt
  cat $d/seed/input $d/seed/input > $d/dir/sub/big
  md5sum < $d/dir/sub/big
  cat $d/dir/hello.txt
  mv $d/dir/hello.txt $d/dir/renamed.txt
  mv $d/dir/sub $d/dir/moved
  ls -lR $d/dir
  cat $d/dir/renamed.txt
  test -e $d/dir/hello.txt || echo "hello.txt is gone"
done
echo "== done"
"""


def annotations(name, source, dest, backend):
    """The spec that gives a bind mount to `backend` (as memfs's in test_sandbox)."""
    hint = "dev.gvisor.spec.mount.%s." % name
    return {"dev.gofer.%s.mounts" % backend: dest, hint + "source": str(source),
            hint + "type": "bind", hint + "share": "shared", hint + "directfs": "off"}


@pytest.fixture
def run_workload(runsc, spec_template, gofer_cmd, bucket, weed, monkeypatch):
    endpoint, name = bucket
    client = weed.client()
    for prefix in ("s3", "tiered"):
        client.put_object(Bucket=name, Key=prefix + "/seed/input", Body=SEED)
    top = Path(tempfile.mkdtemp(prefix="gofer-backends-", dir="/tmp"))
    # The launcher's settings, which runsc passes on to the gofer: the cache
    # directory, and the endpoint, which tells gofer-s3 to load boto3 before
    # the gofer confines itself.
    monkeypatch.setenv("GOFER_TIERED_CACHE_DIR", str(top / "cache"))
    monkeypatch.setenv("GOFER_S3_ENDPOINT", endpoint)
    try:
        rootfs = harness.make_rootfs(top / "bundle" / "rootfs")
        mounts, notes = [], {"dev.gofer.s3.endpoint": endpoint, "dev.gofer.s3.bucket": name,
                             "dev.gofer.s3.ttl": "0"}
        for backend in ("s3", "tiered"):
            (rootfs / "mnt" / backend).mkdir(parents=True)
            (top / backend).mkdir()
            dest = "/mnt/" + backend
            mount = harness.bind(dest, top / backend)
            mount["options"].append("s3.prefix=" + backend)
            mounts.append(mount)
            notes.update(annotations(backend, top / backend, dest, backend))
        harness.write_bundle(top / "bundle", spec_template, ["/bin/sh", "-c", WORKLOAD],
                             mounts=mounts, annotations=notes)
        result = runsc.run(top / "bundle", ["--gofer-network-namespace=host"], gofer=gofer_cmd)
        yield result, client, name, top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_workload_on_s3_and_tiered_mounts(run_workload):
    result, client, bucket, top = run_workload
    why = result.report()[-6000:]
    assert result.rc == 0, why
    sections = harness.sections(result.stdout)
    assert "done" in sections, why
    seed_md5 = hashlib.md5(SEED).hexdigest()
    big_md5 = hashlib.md5(SEED + SEED).hexdigest()
    for backend in ("s3", "tiered"):
        lines = sections["/mnt/" + backend]
        assert lines[0].split()[0] == seed_md5, why            # read what the host put
        assert lines[1].split()[0] == big_md5, why             # read back what it wrote
        assert lines[2] == "hello from the sandbox", why
        listing = "\n".join(lines[3:])
        assert re.search(r"^/mnt/%s/dir:$" % backend, listing, re.M), listing
        assert re.search(r"^/mnt/%s/dir/moved:$" % backend, listing, re.M), listing
        assert re.search(r"-rw\S* .* %d .* big$" % len(SEED + SEED), listing, re.M), listing
        assert re.search(r"^-rw\S* .* renamed\.txt$", listing, re.M), listing
        assert lines[-2:] == ["hello from the sandbox", "hello.txt is gone"], why
        # What the bucket holds: the written files under the renamed names.
        keys = {o["Key"] for o in client.list_objects_v2(
            Bucket=bucket, Prefix=backend + "/")["Contents"]}
        assert keys >= {backend + "/dir/renamed.txt", backend + "/dir/moved/big"}, keys
        assert not keys & {backend + "/dir/hello.txt", backend + "/dir/sub/big"}, keys
        got = client.get_object(Bucket=bucket, Key=backend + "/dir/moved/big")["Body"].read()
        assert got == SEED + SEED
    # The bind mounts' host directories were never used: the store was.
    assert list((top / "s3").iterdir()) == [] and list((top / "tiered").iterdir()) == []
    # The tiered mount cached what it read and wrote.
    cached = {hashlib.md5(p.read_bytes()).hexdigest() for p in (top / "cache").glob("*.data")}
    assert {seed_md5, big_md5} <= cached
