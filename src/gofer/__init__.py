"""gofer: a LISAFS file server for gVisor-style sandboxes."""
__version__ = "0.1.0"
