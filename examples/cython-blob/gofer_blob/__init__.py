"""gofer-blob: serves a fixed set of read-only blobs from memory, with the
hot paths (stat, read) in C. The template for extensions written in Cython."""
from gofer.extension import Extension
from gofer.lisafs import ConnectionOpts

from gofer_blob._blob import BlobConnection, BlobDir, BlobFile  # noqa: F401


class BlobExtension(Extension):
    """Claims the root under `gofer serve --extension blob`, and mounts of
    type "blob" in a spec; serves two demo blobs."""

    name = "blob"

    def new_connection(self, spec, mount, mount_path, readonly):
        if spec is not None and (mount is None or mount.get("type") != "blob"):
            return None
        blobs = {b"hello.txt": b"hello from cython\n", b"zeros": bytes(65536)}
        return BlobConnection(blobs), ConnectionOpts(readonly=True)
