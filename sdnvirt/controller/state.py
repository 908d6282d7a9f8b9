"""The controller's desired state, behind one small store interface.

Desired state is the validated topology (segments, hosts, tenant networks,
guests and their logical ports), what each host's OVSDB says is bound where,
and, for each logical port, the one host where it is active. A port is bound
on two hosts while it migrates: the destination is prepared (its flows are
installed) while the source stays active, until the switch-over. The store
lives in memory for now; its interface is what a durable database will
implement later.

A change is derived from the view before it: only the indexes of the ports and
networks it touches are recomputed, and it says which owners' flows may differ
and on which bridges. The indexes are persistent maps (immutables' HAMT, the
structure behind Python's contextvars): a changed index shares all but the
changed entries' paths with the one before, where a dict of 100,000 ports
would be copied whole (1.4 ms warm, 15 ms in fresh memory) and freed whole.
So a switch-over costs what its ports and their networks cost, not a pass over
the fabric (bench/scale.py measures it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol, TypeVar

from immutables import Map

from sdnvirt.model.topology import Guest, Network, Nic, Topology
from sdnvirt.vswitch.ports import Binding, HostPorts

OwnerKey = tuple[str, str]  # ("pipeline", "defaults") | ("network", "tenant/net") | ("port", port id)
PIPELINE_OWNER: OwnerKey = ("pipeline", "defaults")

K = TypeVar("K")
V = TypeVar("V")


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
    """Everything the compiler needs, as one consistent snapshot.

    The indexes below are computed on first use from the three fields; a view derived
    from another (see `_Derivation`) is given them, built from the other's, so that they
    are never computed from scratch on a change. Views are never changed: indexes are
    persistent maps, shared by the views that have the same one and sharing the
    entries they have in common with those of the view before.
    """

    topology: Topology
    ports: dict[str, HostPorts] = field(default_factory=dict)
    active: Map[str, str] = field(default_factory=Map)  # port id -> the host where it is active

    def __post_init__(self) -> None:
        if not isinstance(self.active, Map):  # given as a dict: made persistent once, here
            object.__setattr__(self, "active", Map(self.active))

    @cached_property
    def logical_ports(self) -> Map[str, LogicalPort]:
        return Map({nic.port_id: _logical_port(self.topology, guest, nic)
                    for guest in self.topology.guests.values() for nic in guest.nics})

    @cached_property
    def bound(self) -> Map[str, dict[str, Binding]]:
        """Where each port id the hosts show is bound, known to the topology or not: port id -> host -> binding."""
        found: dict[str, dict[str, Binding]] = {}
        for host, ports in self.ports.items():
            for binding in ports.bindings:
                found.setdefault(binding.port_id, {})[host] = binding
        return Map(found)

    @cached_property
    def placements(self) -> Map[str, dict[str, Binding]]:
        """Where each known logical port is bound: port id -> host -> binding."""
        return Map({p: where for p, where in self.bound.items() if p in self.logical_ports})

    def active_binding(self, port_id: str) -> Binding | None:
        host = self.active.get(port_id)
        return self.placements.get(port_id, {}).get(host) if host else None

    @cached_property
    def ports_by_network(self) -> Map[str, list[LogicalPort]]:
        ports: dict[str, list[LogicalPort]] = {}
        for port in sorted(self.logical_ports.values(), key=lambda p: p.id):
            ports.setdefault(port.network.key, []).append(port)
        return Map(ports)

    @cached_property
    def network_hosts(self) -> Map[str, frozenset[str]]:
        """Hosts that carry each network: any port of it is bound there, active or prepared."""
        return Map({n: hosts for n in self.ports_by_network if (hosts := self._carrying(n))})

    @cached_property
    def active_hosts(self) -> Map[str, frozenset[str]]:
        """Hosts where some port of each network is active: its flood list's tunnels."""
        return Map({n: hosts for n in self.ports_by_network if (hosts := self._active_in(n))})

    @cached_property
    def host_networks(self) -> Map[str, frozenset[str]]:
        """The networks each host carries (network_hosts, the other way round)."""
        networks: dict[str, set[str]] = {}
        for network, hosts in self.network_hosts.items():
            for host in hosts:
                networks.setdefault(host, set()).add(network)
        return Map({host: frozenset(n) for host, n in networks.items()})

    @cached_property
    def tunnels(self) -> Map[str, dict[str, int]]:
        """host -> remote host -> the ofport of the tunnel towards it."""
        return Map({host: tunnels for host, ports in self.ports.items() if (tunnels := _tunnels(ports))})

    def tunnel(self, host: str, remote: str) -> int | None:
        return self.tunnels.get(host, {}).get(remote)

    def owners_on(self, host: str) -> set[OwnerKey]:
        """Every owner that may have flows on the host's bridge."""
        networks = self.host_networks.get(host, frozenset())
        owners: set[OwnerKey] = {PIPELINE_OWNER}
        owners.update(("network", n) for n in networks)
        owners.update(("port", p.id) for n in networks for p in self.ports_by_network.get(n, []))
        return owners

    def _carrying(self, network: str) -> frozenset[str]:
        return frozenset(h for p in self.ports_by_network.get(network, []) for h in self.placements.get(p.id, {}))

    def _active_in(self, network: str) -> frozenset[str]:
        return frozenset(self.active[p.id] for p in self.ports_by_network.get(network, []) if p.id in self.active)


def _logical_port(topology: Topology, guest: Guest, nic: Nic) -> LogicalPort:
    return LogicalPort(nic.port_id, guest.name, topology.networks[nic.network], str(nic.mac).lower(), str(nic.ip))


def _tunnels(ports: HostPorts) -> dict[str, int]:
    return {t.remote: t.ofport for t in ports.tunnels}


@dataclass(frozen=True)
class ViewChange:
    """What a change of desired state touches: the owners whose flows may differ now
    (None: every owner), the hosts whose bridges they may differ on (None: every host),
    and the ports newly active where (to be remembered)."""

    view: FabricView
    owners: frozenset[OwnerKey] | None
    hosts: frozenset[str] | None = None
    moved: Mapping[str, str] = field(default_factory=dict)

    @property
    def activated(self) -> frozenset[str]:
        """The hosts where ports became active: their bridges are programmed first."""
        return frozenset(self.moved.values())

    def __bool__(self) -> bool:
        return self.owners is None or bool(self.owners)

    def reaches(self, host: str) -> bool:
        """The change may alter the flows of the host's bridge."""
        return bool(self) and (self.hosts is None or host in self.hosts)


def resolve_active(previous: Mapping[str, str], placements: Mapping[str, dict[str, Binding]]) -> dict[str, str]:
    """Where each bound port is active: it stays where it was while it is still bound
    there; a newly bound port is active where it is bound; where the active binding went
    away, or nobody knows (a controller that just started), the binding made ready first."""
    return {port_id: _active_host(previous.get(port_id), where) for port_id, where in placements.items()}


def _active_host(previous: str | None, where: dict[str, Binding]) -> str:
    if previous in where:
        return previous
    return min(where, key=lambda h: (where[h].ready_at is None, where[h].ready_at or 0.0, h))


def same_for(old: FabricView, new: FabricView, owners: Iterable[OwnerKey]) -> bool:
    """The owners' flows compile the same, on every host, from both views."""
    if old is new:
        return True
    if old.topology is not new.topology or (old.tunnels is not new.tunnels and old.tunnels != new.tunnels):
        return False
    ports = {name for kind, name in owners if kind == "port"}
    networks = {name for kind, name in owners if kind == "network"}
    networks |= {old.logical_ports[p].network.key for p in ports if p in old.logical_ports}
    ports |= {p.id for n in networks for p in old.ports_by_network.get(n, [])}
    return (all(_signature(old, p) == _signature(new, p) for p in ports)
            and all(old.network_hosts.get(n) == new.network_hosts.get(n)
                    and old.active_hosts.get(n) == new.active_hosts.get(n) for n in networks))


def _updated(index: Map[K, V], changes: Mapping[K, V | None]) -> Map[K, V]:
    """The index with the changes made (None removes a key); the same index if none differs."""
    if all(index.get(k) == v for k, v in changes.items()):
        return index
    with index.mutate() as result:
        for key, value in changes.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = value
        return result.finish()


class _Derivation:
    """A view derived from the one before a change, recomputing the indexes of what the
    change touched only, and the ViewChange that says what it touched."""

    def __init__(self, old: FabricView, topology: Topology, ports: dict[str, HostPorts],
                 logical_ports: Map[str, LogicalPort], ports_by_network: Map[str, list[LogicalPort]]):
        self.old, self.topology, self.ports = old, topology, ports
        self.logical_ports, self.ports_by_network = logical_ports, ports_by_network
        self.bound: dict[str, dict[str, Binding] | None] = {}  # port id -> where it is bound now (None: nowhere)
        self.activated: dict[str, str] = {}  # port id -> the host where it is made active
        self.ports_touched: set[str] = set()  # logical ports whose flows may differ
        self.networks_touched: set[str] = set()  # networks whose own flows may differ
        self.tunnels_changed: set[str] = set()  # hosts whose tunnels differ

    def made(self, remembered: Mapping[str, str]) -> ViewChange:
        """The new view and what differs: bindings, then where ports are active, then the
        networks' hosts; the owners whose flows may differ, and the hosts they are on."""
        old = self.old
        bound = _updated(old.bound, self.bound)
        placements = _updated(old.placements, {p: bound.get(p) if p in self.logical_ports else None
                                               for p in self.ports_touched | set(self.bound)})
        active_changes: dict[str, str | None] = {}
        for port in self.ports_touched | set(self.bound) | set(self.activated):
            where = placements.get(port)
            if not where:
                active_changes[port] = None
            elif self.activated.get(port) in where:
                active_changes[port] = self.activated[port]
            else:
                active_changes[port] = _active_host(_previous(port, where, old.active, remembered), where)
        active = _updated(old.active, active_changes)
        moved = {p: h for p, h in active_changes.items() if h is not None and old.active.get(p) != h}

        ports = {p for p in set(self.bound) | set(self.activated) | self.ports_touched
                 if p in self.ports_touched or _signature(old, p) != (_where(placements, p), active.get(p))}
        networks = set(self.networks_touched)
        networks |= {self.logical_ports[p].network.key for p in ports if p in self.logical_ports}
        networks |= {old.logical_ports[p].network.key for p in ports if p in old.logical_ports}

        new = FabricView(self.topology, self.ports, active)
        index = {"logical_ports": self.logical_ports, "ports_by_network": self.ports_by_network,
                 "bound": bound, "placements": placements}
        new.__dict__.update(index)  # what cached_property reads first: the indexes given, not computed
        carried = {n: new._carrying(n) for n in networks}
        activity = {n: new._active_in(n) for n in networks}
        network_hosts = _updated(old.network_hosts, {n: h or None for n, h in carried.items()})
        active_hosts = _updated(old.active_hosts, {n: h or None for n, h in activity.items()})
        hosts_changed = {n for n in networks if old.network_hosts.get(n) != network_hosts.get(n)}
        host_networks = _updated(old.host_networks, _host_networks_changes(old, network_hosts, hosts_changed))
        tunnels = _updated(old.tunnels, {h: _tunnels(self.ports[h]) or None for h in self.tunnels_changed})
        new.__dict__.update(network_hosts=network_hosts, active_hosts=active_hosts, host_networks=host_networks,
                            tunnels=tunnels)

        # A host that starts or stops carrying a network gains or loses every port of it.
        ports |= {p.id for n in hosts_changed for p in new.ports_by_network.get(n, [])}
        owners = {("port", p) for p in ports} | {("network", n) for n in networks}
        reached = {h for n in networks for v in (old, new) for h in v.network_hosts.get(n, ())}
        for host in self.tunnels_changed:  # a tunnel's ofport is in that host's flows only
            owners |= new.owners_on(host)
            reached.add(host)
        return ViewChange(new, frozenset(owners), frozenset(reached), moved)


def _previous(port_id: str, where: Mapping[str, Binding], active: Mapping[str, str],
              remembered: Mapping[str, str]) -> str | None:
    """Where the port was active: where a restarted controller's predecessor left it, once it is
    seen bound there (whichever host was read first), else where this store made it active."""
    host = remembered.get(port_id)
    return host if host in where else active.get(port_id)


def _where(placements: Mapping[str, dict[str, Binding]], port_id: str) -> tuple:
    where = placements.get(port_id, {})
    return tuple(sorted((h, b.ofport, b.interface) for h, b in where.items()))


def _signature(view: FabricView, port_id: str) -> tuple:
    """What a port's own flows depend on in the view, apart from the topology and tunnels."""
    return (_where(view.placements, port_id), view.active.get(port_id))


def _host_networks_changes(old: FabricView, network_hosts: Map[str, frozenset[str]],
                           networks: set[str]) -> dict[str, frozenset[str] | None]:
    """host_networks' entries for the hosts that start or stop carrying one of the networks."""
    changes: dict[str, frozenset[str] | None] = {}
    for network in networks:
        before, after = old.network_hosts.get(network, frozenset()), network_hosts.get(network, frozenset())
        for host in before ^ after:
            held = (changes[host] if host in changes else old.host_networks.get(host)) or frozenset()
            held = held | {network} if host in after else held - {network}
            changes[host] = held or None
    return changes


def activation(view: FabricView, port_ids: list[str], host: str) -> ViewChange:
    """The change that makes the ports active on `host`, where they must be bound (a switch-over),
    without making it: a store makes it, a switch-over prepares for it."""
    derivation = _Derivation(view, view.topology, view.ports, view.logical_ports, view.ports_by_network)
    derivation.activated = {p: host for p in port_ids
                            if host in view.placements.get(p, {}) and view.active.get(p) != host}
    if not derivation.activated:
        return ViewChange(view, frozenset())
    return derivation.made({})


def host_ports_change(view: FabricView, ports: HostPorts, remembered: Mapping[str, str]) -> ViewChange:
    """The change of a host's OVSDB showing `ports` now (a port newly bound where nothing says
    where it is active is active where `remembered` says, if it is bound there)."""
    host = ports.host
    before = view.ports.get(host, HostPorts(host))
    derivation = _Derivation(view, view.topology, {**view.ports, host: ports},
                             view.logical_ports, view.ports_by_network)
    was = {b.port_id: b for b in before.bindings}
    now = {b.port_id: b for b in ports.bindings}
    for port_id in set(was) | set(now):
        if was.get(port_id) != now.get(port_id):
            where = {h: b for h, b in view.bound.get(port_id, {}).items() if h != host}
            if port_id in now:
                where[host] = now[port_id]
            derivation.bound[port_id] = where or None
    if _tunnels(before) != _tunnels(ports):
        derivation.tunnels_changed.add(host)
    return derivation.made(remembered)


def topology_change(view: FabricView, topology: Topology, remembered: Mapping[str, str]) -> ViewChange:
    """The change of a new desired topology: ports of hosts gone from it are forgotten. Where
    only tenant networks and guests differ, what they touch; otherwise everything."""
    old = view.topology
    if (topology.name, topology.segments, topology.hosts) != (old.name, old.segments, old.hosts):
        ports = {h: p for h, p in view.ports.items() if h in topology.hosts}
        placements = FabricView(topology, ports).placements
        previous = {p: host for p, where in placements.items()
                    if (host := _previous(p, where, view.active, remembered)) is not None}
        new = FabricView(topology, ports, resolve_active(previous, placements))
        moved = {p: h for p, h in new.active.items() if view.active.get(p) != h}
        return ViewChange(new, None, moved=moved)
    networks = {n for n in set(old.networks) | set(topology.networks)
                if old.networks.get(n) != topology.networks.get(n)}
    guests = {g for g in set(old.guests) | set(topology.guests) if old.guests.get(g) != topology.guests.get(g)}
    guests |= {p.guest for n in networks for p in view.ports_by_network.get(n, [])}
    removed = {nic.port_id: view.logical_ports[nic.port_id] for g in guests if g in old.guests
               for nic in old.guests[g].nics}
    added = {nic.port_id: _logical_port(topology, topology.guests[g], nic) for g in guests if g in topology.guests
             for nic in topology.guests[g].nics}
    logical_ports = _updated(view.logical_ports, {p: added.get(p) for p in set(removed) | set(added)})
    networks |= {p.network.key for p in (*removed.values(), *added.values())}
    ports_by_network = _updated(view.ports_by_network, {
        n: sorted([p for p in view.ports_by_network.get(n, []) if p.id not in removed]
                  + [p for p in added.values() if p.network.key == n], key=lambda p: p.id) or None
        for n in networks})
    derivation = _Derivation(view, topology, view.ports, logical_ports, ports_by_network)
    derivation.ports_touched = set(removed) | set(added)
    derivation.networks_touched = networks
    return derivation.made(remembered)


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
    active there, which matters while it is bound on two hosts (a migration under
    way), whichever host's ports are read first. It holds until that host's first
    reading, or until the port is made active somewhere.
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
            if self._view.ports.get(ports.host) == ports:
                return ViewChange(self._view, frozenset())
            first_reading = ports.host not in self._view.ports
            change = self._made(host_ports_change(self._view, ports, self._remembered))
            if first_reading and self._remembered:
                self._remembered = {p: h for p, h in self._remembered.items() if h != ports.host}
            return change

    def set_topology(self, topology: Topology) -> ViewChange:
        """A new desired topology (a change applied); ports of hosts gone from it are forgotten."""
        with self._lock:
            return self._made(topology_change(self._view, topology, self._remembered))

    def activate(self, port_ids: list[str], host: str) -> ViewChange:
        with self._lock:
            for port_id in port_ids:
                self._remembered.pop(port_id, None)
            return self._made(activation(self._view, port_ids, host))

    def _made(self, change: ViewChange) -> ViewChange:
        self._view = change.view
        return change
