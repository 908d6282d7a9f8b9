"""The controller's store: the view in memory, every change also in the northbound database.

What the controller decides (where each port is active) and what it learns
(the bindings each host's OVSDB shows) is written to the database, so a
controller started after a crash knows what its predecessor knew. Writes go
out on a thread of their own, in order: the flows never wait for the database.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sdnvirt.controller.state import MemoryStore, ViewChange
from sdnvirt.model.topology import Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.ports import HostPorts

LOG = logging.getLogger(__name__)


class NorthboundStore(MemoryStore):
    def __init__(self, northbound: Northbound, topology: Topology):
        super().__init__(topology, remembered=northbound.active())
        self.northbound = northbound
        self._writes: queue.Queue[Callable[[], None]] = queue.Queue()
        threading.Thread(target=self._write_loop, name="northbound-writes", daemon=True).start()

    def set_host_ports(self, ports: HostPorts) -> ViewChange:
        before = self.view().active
        change = super().set_host_ports(ports)
        rows = [{"port_id": b.port_id, "host": b.host, "interface": b.interface, "ofport": b.ofport,
                 "mac": b.mac, "vm_id": b.vm_id, "ready_at": b.ready_at}
                for b in ports.bindings]
        self.write(lambda: self.northbound.set_bindings(ports.host, rows))
        self._remember(before, change)
        return change

    def activate(self, port_ids: list[str], host: str) -> ViewChange:
        before = self.view().active
        change = super().activate(port_ids, host)
        self._remember(before, change)
        return change

    def set_topology(self, topology: Topology) -> ViewChange:
        before = self.view().active
        change = super().set_topology(topology)
        self._remember(before, change)
        return change

    def _remember(self, before: dict[str, str], change: ViewChange) -> None:
        moved = {p: h for p, h in change.view.active.items() if before.get(p) != h}
        if moved:
            self.write(lambda: self.northbound.set_active(moved))

    def write(self, change: Callable[[], None]) -> None:
        """Write to the database after every write asked for before."""
        self._writes.put(change)

    def _write_loop(self) -> None:
        while True:
            write = self._writes.get()
            try:
                write()
            except Exception as error:  # the database is away: the next change writes the state again
                LOG.warning("northbound write failed: %s", error)
