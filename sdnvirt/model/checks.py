"""What the schema cannot see: references between items, and addresses that clash.

Every check looks only at items that passed their own model, and a reference
to an item that failed its model counts as resolved, so each mistake in the
file is reported once, at its own place.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from netaddr import IPAddress, IPNetwork

from sdnvirt.model.problems import Problem
from sdnvirt.model.schema import Draft
from sdnvirt.model.source import FieldPath, format_path
from sdnvirt.model.topology import GuestKind


def check(draft: Draft) -> list[Problem]:
    """Every semantic problem of the draft, each at the field it is about."""
    return [
        *_dangling_references(draft),
        *_segment_problems(draft),
        *_host_problems(draft),
        *_network_problems(draft),
        *_nic_problems(draft),
        *_guest_problems(draft),
    ]


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {kind} '{name}' (known: {', '.join(sorted(known)) or 'none'})"


def _declared_networks(draft: Draft) -> Iterable[str]:
    return (f"{tenant}/{name}" for tenant, networks in draft.tenants.valid.items() for name in networks.declared)


def _declares_network(draft: Draft, ref: str) -> bool:
    tenant, _, network = ref.partition("/")
    if tenant not in draft.tenants.valid:
        return draft.tenants.declares(tenant)
    return draft.tenants.valid[tenant].declares(network)


def _dangling_references(draft: Draft) -> Iterable[Problem]:
    source = draft.source
    for name, host in draft.hosts.valid.items():
        if not draft.segments.declares(host.segment):
            yield source.problem(("hosts", name, "segment"), _unknown("segment", host.segment, draft.segments.declared))
    for name, vm in draft.vms.valid.items():
        if not draft.hosts.declares(vm.host):
            yield source.problem(("vms", name, "host"), _unknown("host", vm.host, draft.hosts.declared))
        for index, nic in enumerate(vm.nics):
            if not _declares_network(draft, nic.network):
                message = _unknown("network", nic.network, _declared_networks(draft))
                yield source.problem(("vms", name, "nics", index, "network"), message)


def _misplaced(address: IPAddress, subnet: IPNetwork) -> str | None:
    """Why no interface can have this address in subnet; None when one can."""
    if address not in subnet:
        return f"{address} is outside {subnet}"
    if address == subnet.network:
        return f"{address} is the network address of {subnet}"
    if address == subnet.broadcast:
        return f"{address} is the broadcast address of {subnet}"
    return None


def _repeats(draft: Draft, claims: Iterable[tuple[FieldPath, Hashable, str]]) -> Iterable[Problem]:
    """A value claimed twice: the later place is the problem, and it names the first."""
    first: dict[Hashable, FieldPath] = {}
    for path, key, what in claims:
        if key not in first:
            first[key] = path
            continue
        line, _ = draft.source.position(first[key])
        yield draft.source.problem(path, f"{what} is already used by {format_path(first[key])} (line {line})")


def _overlaps(draft: Draft, items: list[tuple[FieldPath, IPNetwork]]) -> Iterable[Problem]:
    """Each item whose subnet overlaps one before it in the file; CIDR blocks either nest or are apart."""
    for index, (path, subnet) in enumerate(items):
        for earlier_path, earlier in items[:index]:
            if subnet in earlier or earlier in subnet:
                message = f"{subnet} overlaps {earlier} of {format_path(earlier_path)}"
                yield draft.source.problem((*path, "subnet"), message)
                break


def _segment_problems(draft: Draft) -> Iterable[Problem]:
    segments = draft.segments.valid
    for name, segment in segments.items():
        why = None if segment.gateway is None else _misplaced(segment.gateway, segment.subnet)
        if why:
            yield draft.source.problem(("segments", name, "gateway"), why)
    yield from _overlaps(draft, [(("segments", name), segment.subnet) for name, segment in segments.items()])


def _host_problems(draft: Draft) -> Iterable[Problem]:
    placed = []
    for name, host in draft.hosts.valid.items():
        segment = draft.segments.valid.get(host.segment)
        if host.address is None or segment is None:
            continue
        path = ("hosts", name, "address")
        why = _misplaced(host.address, segment.subnet)
        if why is None and host.address == segment.router_address:
            why = f"{host.address} is the gateway of segment '{host.segment}'"
        if why:
            yield draft.source.problem(path, why)
        else:
            placed.append((path, host.address, str(host.address)))
    yield from _repeats(draft, placed)


def _network_problems(draft: Draft) -> Iterable[Problem]:
    vnis = []
    for tenant, networks in draft.tenants.valid.items():
        items = [(("tenants", tenant, "networks", name), network) for name, network in networks.valid.items()]
        yield from _overlaps(draft, [(path, network.subnet) for path, network in items])
        vnis += [((*path, "vni"), n.vni, f"VNI {n.vni}") for path, n in items if n.vni is not None]
    yield from _repeats(draft, vnis)


def _nic_problems(draft: Draft) -> Iterable[Problem]:
    networks = draft.networks
    ips, macs = [], []
    for name, vm in draft.vms.valid.items():
        for index, nic in enumerate(vm.nics):
            path = ("vms", name, "nics", index)
            if nic.mac is not None:
                macs.append(((*path, "mac"), nic.mac, str(nic.mac)))
            network = networks.get(nic.network)
            if nic.ip is None or network is None:
                continue
            why = _misplaced(nic.ip, network.subnet)
            if why is None and nic.ip == network.router_address:
                why = f"{nic.ip} is reserved for the tenant's router (the first usable address of {network.subnet})"
            if why:
                yield draft.source.problem((*path, "ip"), why)
            else:
                ips.append(((*path, "ip"), (nic.network, nic.ip), f"{nic.ip} in {nic.network}"))
    yield from _repeats(draft, ips)
    yield from _repeats(draft, macs)


def _guest_problems(draft: Draft) -> Iterable[Problem]:
    for name, vm in draft.vms.valid.items():
        if vm.kind == GuestKind.NETNS and not vm.autostart:
            yield draft.source.problem(("vms", name, "autostart"), "netns guests always start with the lab")
