"""OpenFlow connections on a unix socket, handed to os-ken.

os-ken's own server listens on TCP; for a unix socket its Datapath trips on
setting TCP_NODELAY, which only TCP sockets have. Accepting here and passing
os-ken a socket that ignores TCP-level options is all it takes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from os_ken.controller.controller import datapath_connection_factory

LOG = logging.getLogger(__name__)


class _UnixStream:
    """A unix socket that accepts (and ignores) TCP-level socket options."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class UnixOpenFlowListener:
    def __init__(self, path: Path):
        self.path = path
        self._server: socket.socket | None = None

    def start(self) -> None:
        if self.path.is_socket():
            self.path.unlink()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._server.listen(128)
        threading.Thread(target=self._accept_loop, name="openflow-listener", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=datapath_connection_factory, args=(_UnixStream(conn), str(self.path)),
                             name="openflow-switch", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)
