"""The stock backend: serves host directories like gVisor's fsgofer."""
from gofer.fsgofer._host import HostConnection, reopen, use_fd_directory  # noqa: F401
