"""One host's Open_vSwitch database, through ovsdbapp.

ovsdbapp keeps a monitored in-memory copy of the database on its own thread;
commands go through its transactions. The controller learns the ports of the
integration bridge from that copy whenever a bridge, port or interface changes
(row events, see sdnvirt.ovsdb.watching), and only while the copy is complete
(never half-way through a reconnect), so a restarted ovsdb-server never looks
like a host that lost its ports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ovsdbapp.backend.ovs_idl import idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from sdnvirt.ovsdb.own_connection import OwnConnection
from sdnvirt.ovsdb.watching import TableEvent, WatchedConnection
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE
from sdnvirt.vswitch.ports import READY, READY_AT, HostPorts, host_ports

LOG = logging.getLogger(__name__)
# The columns the controller reads and writes, its commands' own included (ovsdbapp's transactions
# count Open_vSwitch's next_cfg against cur_cfg, and check a new interface's ofport). With every
# column watched, ovs-vswitchd's rewrite of each interface's statistics and status every few
# seconds was sent, parsed and matched too, and a host's first read cost several times as much.
WATCHED_COLUMNS = {
    "Open_vSwitch": ("bridges", "next_cfg", "cur_cfg"),
    "Bridge": ("name", "ports", "controller", "datapath_type", "fail_mode", "protocols", "other_config"),
    "Port": ("name", "interfaces"),
    "Interface": ("name", "type", "options", "external_ids", "ofport"),
    "Controller": ("target", "max_backoff"),
}
PORT_TABLES = ("Bridge", "Port", "Interface")  # where a change may change the bridge's ports


class PortsChanged(TableEvent):
    """A bridge, port or interface came, changed or went: the host's ports may differ now."""

    def __init__(self, table: str, host: HostOvsdb):
        super().__init__(table)
        self._host = host

    def run(self, event, row, old):
        self._host.publish()


class _HostApi(OwnConnection, impl_idl.OvsdbIdl):
    pass


class HostOvsdb:
    def __init__(self, host: str, remote: str, on_ports: Callable[[HostPorts], None], timeout: float = 10):
        self.host = host
        self.remote = remote
        self._on_ports = on_ports
        self._timeout = timeout
        self._publishing = threading.Lock()
        self._published: HostPorts | None = None
        self._stopped = False
        self._connection: WatchedConnection | None = None
        self.api: _HostApi | None = None

    def start(self) -> None:
        """Connect and read the database once; raises if the server does not answer in time."""
        helper = idlutils.get_schema_helper(self.remote, "Open_vSwitch")
        for table, columns in WATCHED_COLUMNS.items():
            helper.register_columns(table, list(columns))
        self._connection = WatchedConnection(self.remote, helper, [PortsChanged(t, self) for t in PORT_TABLES],
                                             self._timeout)
        self._connection.start()
        self.api = _HostApi(self._connection)
        self.publish()  # also when the bridge has no ports at all: that is news too

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

    def publish(self) -> None:
        """Hand on the bridge's ports if they differ from those last handed on. A burst of
        row changes (a reconnect reads every row again) publishes once, at its end."""
        if self._stopped or self._connection.events.notifications.qsize():
            return  # a later event publishes
        with self._publishing:
            ports = self.ports()
            if ports is not None and ports != self._published:
                self._published = ports
                self._on_ports(ports)

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

    def stop(self) -> None:
        self._stopped = True
        if self._connection:
            self._connection.stop(timeout=self._timeout)
