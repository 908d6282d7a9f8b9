"""The controller's store: the view in memory, every change also in the northbound database.

What the controller decides (where each port is active) and what it learns
(the bindings each host's OVSDB shows) is written to the database, so a
controller started after a crash knows what its predecessor knew. The writes
go through the northbound writer: in the order the changes were made here, each
retried until it lands, on a thread of their own, so the flows never wait for
the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from sdnvirt.controller.state import MemoryStore, ViewChange
from sdnvirt.model.topology import Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.northbound.writer import NorthboundWriter
from sdnvirt.vswitch.ports import HostPorts


class NorthboundStore(MemoryStore):
    def __init__(self, northbound: Northbound, topology: Topology):
        super().__init__(topology, remembered=northbound.active())
        self.northbound = northbound
        self.writer = NorthboundWriter()
        # A change and its writes are made under one lock, so the writes queue up in
        # the order the changes were made, whichever threads make them.
        self._changing = threading.Lock()

    def set_host_ports(self, ports: HostPorts) -> ViewChange:
        rows = [{"port_id": b.port_id, "host": b.host, "interface": b.interface, "ofport": b.ofport,
                 "mac": b.mac, "vm_id": b.vm_id, "ready_at": b.ready_at}
                for b in ports.bindings]
        with self._changing:
            change = super().set_host_ports(ports)
            self.write(lambda: self.northbound.set_bindings(ports.host, rows), f"the bindings of {ports.host}",
                       key=("bindings", ports.host))
            self._remember(change)
        return change

    def activate(self, port_ids: list[str], host: str) -> ViewChange:
        with self._changing:
            change = super().activate(port_ids, host)
            self._remember(change)
        return change

    def set_topology(self, topology: Topology) -> ViewChange:
        with self._changing:
            change = super().set_topology(topology)
            self._remember(change)
        return change

    def _remember(self, change: ViewChange) -> None:
        moved = dict(change.moved)
        if moved:
            self.write(lambda: self.northbound.set_active(moved), f"where ports {sorted(moved)} are active")

    def write(self, change: Callable[[], None], what: str = "a northbound change", key: Hashable | None = None) -> None:
        """Write to the database after every write asked for before, retried until it lands
        (see NorthboundWriter: a write sets a state; `key` lets a newer write of the same
        state replace one still waiting)."""
        self.writer.write(change, what, key)

    def drain(self, timeout: float) -> list[str]:
        """Before the controller stops: wait for every write to land, at most `timeout`
        seconds; what was not written."""
        return self.writer.drain(timeout)
