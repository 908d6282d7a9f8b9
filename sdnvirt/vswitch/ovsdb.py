"""One host's Open_vSwitch database, through ovsdbapp.

ovsdbapp keeps a monitored in-memory copy of the database on its own thread;
commands go through its transactions. The controller learns the ports of the
integration bridge from that copy whenever an Interface changes, and only
while the copy is complete (never half-way through a reconnect), so a
restarted ovsdb-server never looks like a host that lost its ports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ovsdbapp.backend.ovs_idl import connection, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from sdnvirt.vswitch.names import INTEGRATION_BRIDGE
from sdnvirt.vswitch.ports import READY, READY_AT, HostPorts, host_ports

LOG = logging.getLogger(__name__)
WATCHED_TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface", "Controller")


class _WatchedIdl(connection.OvsdbIdl):
    """An IDL that tells its owner when an interface or port changed."""

    on_change: Callable[[], None] = staticmethod(lambda: None)

    def notify(self, event, row, updates=None):
        if row._table.name in ("Interface", "Port", "Bridge"):
            self.on_change()


class OwnConnection:
    """ovsdbapp keeps one connection per API class; sdnvirt talks to many servers of one
    schema (every host's Open_vSwitch), so each API object keeps its own."""

    @property
    def ovsdb_connection(self) -> connection.Connection:
        return self._connection

    @ovsdb_connection.setter
    def ovsdb_connection(self, value: connection.Connection) -> None:
        self._connection = value


class _HostApi(OwnConnection, impl_idl.OvsdbIdl):
    pass


class HostOvsdb:
    def __init__(self, host: str, remote: str, on_ports: Callable[[HostPorts], None], timeout: float = 10):
        self.host = host
        self.remote = remote
        self._on_ports = on_ports
        self._timeout = timeout
        self._changed = threading.Event()
        self._stopped = False
        self._connection: connection.Connection | None = None
        self.api: _HostApi | None = None

    def start(self) -> None:
        """Connect and read the database once; raises if the server does not answer in time."""
        idl = _WatchedIdl.from_server(self.remote, "Open_vSwitch", helper_tables=WATCHED_TABLES)
        idl.on_change = self._changed.set
        self._connection = connection.Connection(idl=idl, timeout=self._timeout)
        self._connection.start()
        self.api = _HostApi(self._connection)
        threading.Thread(target=self._publish_loop, name=f"ovsdb-{self.host}", daemon=True).start()
        self._changed.set()

    @property
    def connected(self) -> bool:
        idl = self._connection.idl if self._connection else None
        return bool(idl and idl.state == idl.IDL_S_MONITORING)

    def ports(self) -> HostPorts | None:
        """The integration bridge's ports from the in-memory copy; None while it is incomplete."""
        idl = self._connection.idl
        with self._connection.lock:
            if idl.state != idl.IDL_S_MONITORING:
                return None
            bridges = [b for b in idl.tables["Bridge"].rows.values() if b.name == INTEGRATION_BRIDGE]
            interfaces = [(i.name, (i.ofport or [-1])[0], dict(i.external_ids))
                          for b in bridges for p in b.ports for i in p.interfaces]
        return host_ports(self.host, interfaces)

    def mark_ready(self, interfaces: list[str]) -> None:
        """Say on these interfaces that the bridge holds their flows (and since when).

        A plain transaction: ovsdbapp's usual one also waits for ovs-vswitchd to
        reconfigure, which a note in external_ids does not need.
        """
        now = f"{time.time():.6f}"
        with transaction.Transaction(self.api, self._connection, check_error=True) as txn:
            for name in interfaces:
                txn.add(self.api.db_set("Interface", name, ("external_ids", {READY: "true", READY_AT: now}),
                                        if_exists=True))

    def _publish_loop(self) -> None:
        last = None
        while not self._stopped:
            self._changed.wait()
            self._changed.clear()
            if self._stopped:
                return
            ports = self.ports()
            if ports is not None and ports != last:
                last = ports
                self._on_ports(ports)

    def stop(self) -> None:
        self._stopped = True
        self._changed.set()
        if self._connection:
            self._connection.stop(timeout=self._timeout)
