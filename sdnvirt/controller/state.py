"""The controller's desired state, behind one small store interface.

Desired state is the validated topology (segments, hosts, tenant networks,
guests and their logical ports), what each host's OVSDB says is bound where,
and, for each logical port, the one host where it is active. A port is bound
on two hosts while it migrates: the destination is prepared (its flows are
installed) while the source stays active, until the switch-over. The store
lives in memory for now; its interface is what a durable database will
implement later.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from sdnvirt.model.topology import Guest, Network, Nic, Topology
from sdnvirt.vswitch.ports import Binding, HostPorts

OwnerKey = tuple[str, str]  # ("pipeline", "defaults") | ("network", "tenant/net") | ("port", port id)
PIPELINE_OWNER: OwnerKey = ("pipeline", "defaults")


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
    """Everything the compiler needs, as one consistent snapshot."""

    topology: Topology
    ports: dict[str, HostPorts] = field(default_factory=dict)
    active: dict[str, str] = field(default_factory=dict)  # port id -> the host where it is active

    @cached_property
    def logical_ports(self) -> dict[str, LogicalPort]:
        return {nic.port_id: _logical_port(self.topology, guest, nic)
                for guest in self.topology.guests.values() for nic in guest.nics}

    @cached_property
    def placements(self) -> dict[str, dict[str, Binding]]:
        """Where each known logical port is bound: port id -> host -> binding."""
        found: dict[str, dict[str, Binding]] = {}
        for host, ports in self.ports.items():
            for binding in ports.bindings:
                if binding.port_id in self.logical_ports:
                    found.setdefault(binding.port_id, {})[host] = binding
        return found

    def active_binding(self, port_id: str) -> Binding | None:
        host = self.active.get(port_id)
        return self.placements.get(port_id, {}).get(host) if host else None

    @cached_property
    def network_hosts(self) -> dict[str, frozenset[str]]:
        """Hosts that carry each network: any port of it is bound there, active or prepared."""
        hosts: dict[str, set[str]] = {}
        for port_id, where in self.placements.items():
            hosts.setdefault(self.logical_ports[port_id].network.key, set()).update(where)
        return {network: frozenset(h) for network, h in hosts.items()}

    @cached_property
    def active_hosts(self) -> dict[str, frozenset[str]]:
        """Hosts where some port of each network is active: its flood list's tunnels."""
        hosts: dict[str, set[str]] = {}
        for port_id, host in self.active.items():
            hosts.setdefault(self.logical_ports[port_id].network.key, set()).add(host)
        return {network: frozenset(h) for network, h in hosts.items()}

    @cached_property
    def ports_by_network(self) -> dict[str, list[LogicalPort]]:
        ports: dict[str, list[LogicalPort]] = {}
        for port in sorted(self.logical_ports.values(), key=lambda p: p.id):
            ports.setdefault(port.network.key, []).append(port)
        return ports

    def tunnel(self, host: str, remote: str) -> int | None:
        ports = self.ports.get(host)
        return next((t.ofport for t in ports.tunnels if t.remote == remote), None) if ports else None

    def owners_on(self, host: str) -> set[OwnerKey]:
        """Every owner that may have flows on the host's bridge."""
        networks = {n for n, hosts in self.network_hosts.items() if host in hosts}
        owners: set[OwnerKey] = {PIPELINE_OWNER}
        owners.update(("network", n) for n in networks)
        owners.update(("port", p.id) for n in networks for p in self.ports_by_network.get(n, []))
        return owners


def _logical_port(topology: Topology, guest: Guest, nic: Nic) -> LogicalPort:
    return LogicalPort(nic.port_id, guest.name, topology.networks[nic.network], str(nic.mac).lower(), str(nic.ip))


@dataclass(frozen=True)
class ViewChange:
    """What a change of desired state touches: the owners whose flows may differ now
    (None: every owner), and the hosts where ports became active (programmed first)."""

    view: FabricView
    owners: frozenset[OwnerKey] | None
    activated: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.owners is None or bool(self.owners)


def resolve_active(previous: dict[str, str], placements: dict[str, dict[str, Binding]]) -> dict[str, str]:
    """Where each bound port is active: it stays where it was while it is still bound
    there; a newly bound port is active where it is bound; where the active binding went
    away, or nobody knows (a controller that just started), the binding made ready first."""
    active = {}
    for port_id, where in placements.items():
        host = previous.get(port_id)
        if host not in where:
            host = min(where, key=lambda h: (where[h].ready_at is None, where[h].ready_at or 0.0, h))
        active[port_id] = host
    return active


def activation(view: FabricView, port_ids: list[str], host: str) -> ViewChange:
    """The change that makes the ports active on `host`, where they must be bound (a switch-over),
    without making it: a store makes it, a switch-over prepares for it."""
    moved = {p: host for p in port_ids if host in view.placements.get(p, {}) and view.active.get(p) != host}
    if not moved:
        return ViewChange(view, frozenset())
    return changes_between(view, FabricView(view.topology, view.ports, {**view.active, **moved}))


def _signature(view: FabricView, port_id: str) -> tuple:
    where = view.placements.get(port_id, {})
    return (tuple(sorted((h, b.ofport, b.interface) for h, b in where.items())), view.active.get(port_id))


def changes_between(old: FabricView, new: FabricView) -> ViewChange:
    if old.topology is not new.topology or any(
            old.ports.get(h, HostPorts(h)).tunnels != new.ports.get(h, HostPorts(h)).tunnels
            for h in set(old.ports) | set(new.ports)):
        return ViewChange(new, None)
    ports = {p for p in set(old.placements) | set(new.placements) if _signature(old, p) != _signature(new, p)}
    carried = {n for n in set(old.network_hosts) | set(new.network_hosts)
               if old.network_hosts.get(n) != new.network_hosts.get(n)}
    flooded = {n for n in set(old.active_hosts) | set(new.active_hosts)
               if old.active_hosts.get(n) != new.active_hosts.get(n)}
    networks = {new.logical_ports[p].network.key for p in ports} | carried | flooded
    # A host that starts or stops carrying a network gains or loses every port of it.
    ports |= {p.id for n in carried for p in new.ports_by_network.get(n, [])}
    owners = frozenset({("port", p) for p in ports} | {("network", n) for n in networks})
    activated = frozenset(new.active[p] for p in ports if p in new.active and new.active[p] != old.active.get(p))
    return ViewChange(new, owners, activated)


class StateStore(Protocol):
    def view(self) -> FabricView:
        """A consistent snapshot of everything the flow compiler needs."""

    def set_host_ports(self, ports: HostPorts) -> ViewChange:
        """Record what a host's OVSDB shows now."""

    def activate(self, port_ids: list[str], host: str) -> ViewChange:
        """Make the ports active on `host`, where they must be bound (a switch-over)."""

    def set_topology(self, topology: Topology) -> ViewChange:
        """Replace the desired topology."""


class MemoryStore:
    """The in-memory StateStore.

    `remembered` is where ports were active before this store began (a restarted
    controller reads it from the database): a port that turns out bound there is
    active there, which matters while it is bound on two hosts.
    """

    def __init__(self, topology: Topology, remembered: dict[str, str] | None = None):
        self._lock = threading.Lock()
        self._view = FabricView(topology)
        self._remembered = dict(remembered or {})

    def view(self) -> FabricView:
        with self._lock:
            return self._view

    def set_host_ports(self, ports: HostPorts) -> ViewChange:
        with self._lock:
            old = self._view
            if old.ports.get(ports.host) == ports:
                return ViewChange(old, frozenset())
            self._view = self._placed(old.topology, {**old.ports, ports.host: ports})
            return changes_between(old, self._view)

    def set_topology(self, topology: Topology) -> ViewChange:
        """A new desired topology (a change applied): everything is compiled again, and
        only what differs is sent. Ports of hosts gone from it are forgotten."""
        with self._lock:
            ports = {h: p for h, p in self._view.ports.items() if h in topology.hosts}
            self._view = self._placed(topology, ports)
            return ViewChange(self._view, None)

    def activate(self, port_ids: list[str], host: str) -> ViewChange:
        with self._lock:
            change = activation(self._view, port_ids, host)
            self._view = change.view
            return change

    def _placed(self, topology: Topology, ports: dict[str, HostPorts]) -> FabricView:
        placements = FabricView(topology, ports).placements
        return FabricView(topology, ports, resolve_active({**self._remembered, **self._view.active}, placements))
