"""Unix sockets that only their owner can open.

Connecting to a unix socket takes write permission on its file, whose mode
comes from the umask when it is bound (and uvicorn widens its own to 0666).
Binding, restricting, and only then listening leaves no moment at which
another user could connect.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

OWNER_ONLY = 0o600


def owner_only_socket(path: Path) -> socket.socket:
    """A stream socket bound at `path`, mode 0600, not listening yet. A socket left at
    `path` by an earlier process is replaced; any other file there is not (bind fails)."""
    if path.is_socket():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chmod(path, OWNER_ONLY)
    except OSError:
        server.close()
        raise
    return server
