"""The controller's desired state, behind one small store interface.

Desired state is the validated topology (segments, hosts, tenant networks,
guests and their logical ports) plus what each host's OVSDB says is bound
where. It lives in memory for now; the store interface is what a durable
database will implement later, so nothing else changes when it does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from sdnvirt.model.topology import Guest, Network, Nic, Topology
from sdnvirt.vswitch.ports import Binding, HostPorts


@dataclass(frozen=True)
class LogicalPort:
    """A guest NIC as the fabric sees it: one MAC and IP on one tenant network."""

    id: str
    guest: str
    network: Network
    mac: str
    ip: str


@dataclass(frozen=True)
class FabricView:
    """Everything the compiler needs: the model and what each host's OVSDB shows."""

    topology: Topology
    ports: dict[str, HostPorts] = field(default_factory=dict)

    @cached_property
    def logical_ports(self) -> dict[str, LogicalPort]:
        return {nic.port_id: _logical_port(self.topology, guest, nic)
                for guest in self.topology.guests.values() for nic in guest.nics}

    @cached_property
    def bindings(self) -> dict[str, Binding]:
        """Where each known logical port is bound (the first host, by name, if several)."""
        found: dict[str, Binding] = {}
        for host in sorted(self.ports):
            for binding in self.ports[host].bindings:
                if binding.port_id in self.logical_ports:
                    found.setdefault(binding.port_id, binding)
        return found

    def tunnel(self, host: str, remote: str) -> int | None:
        ports = self.ports.get(host)
        return next((t.ofport for t in ports.tunnels if t.remote == remote), None) if ports else None

    def bound_ports(self, network: str) -> list[tuple[LogicalPort, Binding]]:
        return [(port, self.bindings[pid]) for pid, port in sorted(self.logical_ports.items())
                if port.network.key == network and pid in self.bindings]


def _logical_port(topology: Topology, guest: Guest, nic: Nic) -> LogicalPort:
    return LogicalPort(nic.port_id, guest.name, topology.networks[nic.network], str(nic.mac).lower(), str(nic.ip))


class StateStore(Protocol):
    def view(self) -> FabricView:
        """A consistent snapshot of everything the flow compiler needs."""

    def set_host_ports(self, ports: HostPorts) -> None:
        """Record what a host's OVSDB shows now."""

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every change."""


class MemoryStore:
    """The in-memory StateStore."""

    def __init__(self, topology: Topology):
        self._lock = threading.Lock()
        self._view = FabricView(topology)
        self._subscribers: list[Callable[[], None]] = []

    def view(self) -> FabricView:
        with self._lock:
            return self._view

    def set_host_ports(self, ports: HostPorts) -> None:
        with self._lock:
            if self._view.ports.get(ports.host) == ports:
                return
            self._view = FabricView(self._view.topology, {**self._view.ports, ports.host: ports})
        self._notify()

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def _notify(self) -> None:
        for callback in self._subscribers:
            callback()
