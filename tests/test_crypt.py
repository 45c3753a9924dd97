"""Issue 15: gofer-crypt's configuration (which mounts it claims, where its
key comes from) and its on-disk format's size arithmetic. Its file
operations are tested under gVisor's Go client (tests/interop/
test_gofer_crypt.py) and in a sandbox (tests/sandbox/test_crypt_sandbox.py)."""
import os

import pytest

from gofer import extension
from gofer.extension import ExtensionError
from gofer_crypt import CryptExtension
from gofer_crypt.cipher import (BLOCK_SIZE, HEADER_SIZE, SEALED_BLOCK, FileCipher, host_size,
                                plain_size)
from gofer_crypt.fs import CryptConnection, EncryptedFile


@pytest.fixture
def keys(tmp_path):
    one, two = tmp_path / "one.key", tmp_path / "two.key"
    one.write_bytes(b"\x01" * 32)
    two.write_text("02" * 32 + "\n")
    return one, two


def spec_with(tmp_path, one, **annotations):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mounts = [{"destination": "/a", "source": str(tmp_path / "a"), "type": "bind"},
              {"destination": "/b", "source": str(tmp_path / "b"), "type": "bind",
               "options": ["rbind", "gofer-crypt-key=%s" % one]},
              {"destination": "/c", "source": str(tmp_path), "type": "bind"}]
    return {"annotations": annotations, "mounts": mounts}


def test_claims_listed_mounts_with_their_keys(tmp_path, keys):
    one, two = keys
    spec = spec_with(tmp_path, one, **{"dev.gofer.crypt.mounts": "/a,/b",
                                       "dev.gofer.crypt.key": str(two)})
    ext = CryptExtension()
    ext.prepare(extension.PrepareContext(spec, "cid", None))
    a, b, c = spec["mounts"]
    impl, opts = ext.new_connection(spec, a, "/a", True)
    assert isinstance(impl, CryptConnection) and opts.readonly
    assert impl.key == b"\x02" * 32 and impl.root == a["source"]      # the annotation's key
    impl, opts = ext.new_connection(spec, b, "/b", False)
    assert impl.key == b"\x01" * 32 and not opts.readonly              # the mount option's
    assert ext.new_connection(spec, c, "/c", False) is None
    assert ext.new_connection(spec, None, "/", False) is None


def test_key_is_read_in_prepare(tmp_path, keys):
    """The key file is read before the gofer confines itself; afterwards it
    need not be reachable."""
    one, two = keys
    spec = spec_with(tmp_path, one, **{"dev.gofer.crypt.mounts": "/b"})
    ext = CryptExtension()
    ext.prepare(extension.PrepareContext(spec, "cid", None))
    one.unlink()
    assert ext.new_connection(spec, spec["mounts"][1], "/b", False)[0].key == b"\x01" * 32


@pytest.mark.parametrize("content", [b"short", b"z" * 64, b"\x00" * 33])
def test_bad_or_missing_key_stops_the_gofer(tmp_path, keys, content):
    bad = tmp_path / "bad.key"
    bad.write_bytes(content)
    for annotations in ({"dev.gofer.crypt.key": str(bad)}, {}):
        spec = {"annotations": dict(annotations, **{"dev.gofer.crypt.mounts": "/a"}),
                "mounts": [{"destination": "/a", "source": str(tmp_path), "type": "bind"}]}
        ext = CryptExtension()
        with pytest.raises(ExtensionError, match="crypt.*key"):
            extension.claim(spec, spec["mounts"][0], "/a", False, [ext])


def test_sizes():
    assert plain_size(0) == plain_size(HEADER_SIZE) == 0
    for size in (1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 10 * BLOCK_SIZE + 77):
        assert plain_size(host_size(size)) == size
    assert host_size(2 * BLOCK_SIZE) == HEADER_SIZE + 2 * SEALED_BLOCK


def test_header_binds_the_key():
    cipher, header = FileCipher.new_header(b"k" * 32)
    assert len(header) == HEADER_SIZE
    assert FileCipher.from_header(b"k" * 32, header).file_id == cipher.file_id
    with pytest.raises(OSError) as e:
        FileCipher.from_header(b"K" * 32, header)
    assert e.value.errno == 5
    sealed = cipher.seal(3, b"data", True)
    assert cipher.open(3, sealed, True) == b"data"
    for index, last in ((2, True), (3, False)):
        with pytest.raises(OSError):
            cipher.open(index, sealed, last)
    assert cipher.seal(0, b"x", True) != cipher.seal(0, b"x", True)      # fresh nonces


def test_fds_on_one_file_share_its_lock(tmp_path):
    """Writes are read-modify-writes of blocks: every FD on a file takes the same lock."""
    key = os.urandom(32)
    a = EncryptedFile.create(os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR), key)
    b = EncryptedFile(os.open(tmp_path / "f", os.O_RDWR), key)
    c = EncryptedFile.create(os.open(tmp_path / "g", os.O_CREAT | os.O_RDWR), key)
    try:
        assert a.lock is b.lock and a.lock is not c.lock
    finally:
        for f in (a, b, c):
            f.close()
