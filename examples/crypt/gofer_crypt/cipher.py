"""The on-disk format of an encrypted file, and nothing else.

    header  MAGIC (8) | version (1) | log2 block size (1) | 0 (2) | file id (16) | tag (16)
    blocks  nonce (12) | ciphertext of up to BLOCK_SIZE bytes | GCM tag (16), back to back

Every file has its own key, HKDF-SHA256(master key, salt = file id), and each
block is sealed with AES-256-GCM under a fresh random nonce (a rewrite never
reuses one) and the associated data file id | block index | "last block".
So a block cannot be moved within a file or to another file, the file cannot
be cut at a block boundary, and a changed bit fails authentication: the
reader answers EIO, never garbage. The header's tag is the seal of the
header itself: with the wrong master key it fails first. The plaintext size
follows from the host size, so stat needs no decryption.

Not covered: replacing a whole file, or some of its blocks, by an older
version of themselves (no rollback protection), and the names, sizes and
times of files, which stay in the clear.
"""
import errno
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"GOFERCRY"
VERSION = 1
BLOCK_SHIFT = 12
BLOCK_SIZE = 1 << BLOCK_SHIFT                 # plaintext bytes per block
NONCE, TAG = 12, 16
SEALED_BLOCK = NONCE + BLOCK_SIZE + TAG        # a full block on disk
_PREFIX = struct.Struct("<8sBBH16s")
HEADER_SIZE = _PREFIX.size + TAG               # 44
_AAD = struct.Struct("<16sQB")
_HEADER_NONCE = bytes(NONCE)                   # used once per file key, for the header
KEY_SIZE = 32


def eio(what):
    return OSError(errno.EIO, "gofer-crypt: " + what)


def load_key(path):
    """The master key in file `path`: 32 raw bytes, or 64 hex digits."""
    with open(path, "rb") as f:
        data = f.read(256)
    if len(data) == KEY_SIZE:
        return data
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ValueError("key file %s holds neither 32 bytes nor 64 hex digits" % path)
    return key


def plain_size(host_size):
    """The plaintext size of a host file of `host_size` bytes (0 when it is
    too short to be one: reading it answers EIO)."""
    body = host_size - HEADER_SIZE
    if body <= 0:
        return 0
    full, rest = divmod(body, SEALED_BLOCK)
    return full * BLOCK_SIZE + max(rest - NONCE - TAG, 0)


def host_size(size):
    """The host size of a file holding `size` plaintext bytes."""
    full, rest = divmod(size, BLOCK_SIZE)
    return HEADER_SIZE + full * SEALED_BLOCK + (rest + NONCE + TAG if rest else 0)


class FileCipher:
    """Seals and opens the blocks of one file."""

    def __init__(self, master_key, file_id):
        self.file_id = file_id
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=file_id,
                   info=b"gofer-crypt v1 file key").derive(master_key)
        self.aead = AESGCM(key)

    @classmethod
    def new_header(cls, master_key):
        """(FileCipher, header bytes) of a new file."""
        file_id = os.urandom(16)
        prefix = _PREFIX.pack(MAGIC, VERSION, BLOCK_SHIFT, 0, file_id)
        c = cls(master_key, file_id)
        return c, prefix + c.aead.encrypt(_HEADER_NONCE, b"", prefix)

    @classmethod
    def from_header(cls, master_key, header):
        """The FileCipher of an existing file; EIO if the header is not one
        of ours, or was sealed with another key."""
        if len(header) != HEADER_SIZE:
            raise eio("not an encrypted file (too short)")
        magic, version, shift, _, file_id = _PREFIX.unpack_from(header)
        if magic != MAGIC or version != VERSION or shift != BLOCK_SHIFT:
            raise eio("not an encrypted file of format %d" % VERSION)
        c = cls(master_key, file_id)
        try:
            c.aead.decrypt(_HEADER_NONCE, header[_PREFIX.size:], header[:_PREFIX.size])
        except InvalidTag:
            raise eio("the file's header does not authenticate (wrong key?)") from None
        return c

    def seal(self, index, plain, last):
        nonce = os.urandom(NONCE)
        return nonce + self.aead.encrypt(nonce, plain, _AAD.pack(self.file_id, index, last))

    def open(self, index, sealed, last):
        if not NONCE + TAG < len(sealed) <= SEALED_BLOCK:          # no block is empty
            raise eio("block %d is cut short" % index)
        try:
            return self.aead.decrypt(sealed[:NONCE], sealed[NONCE:],
                                     _AAD.pack(self.file_id, index, last))
        except InvalidTag:
            raise eio("block %d does not authenticate" % index) from None


# Seal once at import, before the gofer's seccomp filter goes on: OpenSSL
# loads what it loads lazily (providers, configuration) now, not under it.
FileCipher.new_header(bytes(KEY_SIZE))[0].seal(0, b"", True)
