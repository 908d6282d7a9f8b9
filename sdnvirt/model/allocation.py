"""Addresses and ids the file leaves out, chosen so that they stay put across edits.

A VNI or MAC is derived from names alone, and addresses are handed out in
file order after the ones the file gives, so adding a network or a guest at
the end moves nothing that already exists: running guests keep their
addresses and the flows that name them stay valid.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from hashlib import sha256
from itertools import count
from typing import TypeVar

from netaddr import EUI, IPAddress, IPNetwork, mac_unix_expanded

from sdnvirt.model.problems import Problem
from sdnvirt.model.schema import VNI_MAX, Draft, NicSpec
from sdnvirt.model.source import FieldPath, Source

# Derived VNIs stay clear of the low numbers people pick by hand.
VNI_POOL = range(4096, VNI_MAX + 1)

NicKey = tuple[str, int]  # (guest, nic index)
K = TypeVar("K")


@dataclass(frozen=True)
class Allocation:
    """Every address and id of the topology, as the file gives it or as derived here."""

    gateways: dict[str, IPAddress]  # by segment
    host_addresses: dict[str, IPAddress]  # by host
    vnis: dict[str, int]  # by "tenant/network"
    nic_ips: dict[NicKey, IPAddress]
    macs: dict[NicKey, EUI]
    problems: tuple[Problem, ...]  # pools that ran out


def _digest(seed: str) -> bytes:
    return sha256(seed.encode()).digest()


def vni_for(network: str, taken: Container[int]) -> int:
    """Hash "tenant/network" into the pool; on a clash, take the next free VNI."""
    start = int.from_bytes(_digest(network)[:8], "big")
    candidates = (VNI_POOL[(start + step) % len(VNI_POOL)] for step in range(len(VNI_POOL)))
    return next(vni for vni in candidates if vni not in taken)


def allocate_vnis(given: Mapping[str, int | None]) -> dict[str, int]:
    """VNIs by "tenant/network"; the missing ones derived in name order, around the given ones."""
    taken = {vni for vni in given.values() if vni is not None}
    vnis = {}
    for network in sorted(given):
        vni = given[network]
        vnis[network] = vni if vni is not None else vni_for(network, taken)
        taken.add(vnis[network])
    return {network: vnis[network] for network in given}


def mac_for(topology: str, guest: str, index: int, taken: Container[EUI]) -> EUI:
    """02 and five bytes of a hash of the names: locally administered, unicast; rehashed on a clash."""
    seeds = (f"{topology}/{guest}/{index}" + (f"/{n}" if n else "") for n in count())
    macs = (EUI(int.from_bytes(b"\x02" + _digest(seed)[:5], "big"), dialect=mac_unix_expanded) for seed in seeds)
    return next(mac for mac in macs if mac not in taken)


def allocate_macs(topology: str, nics: Mapping[NicKey, NicSpec]) -> dict[NicKey, EUI]:
    """MACs by NIC; a derived one never equals one given anywhere in the file."""
    taken = {nic.mac for nic in nics.values() if nic.mac is not None}
    macs = {}
    for (guest, index), nic in nics.items():
        macs[guest, index] = nic.mac if nic.mac is not None else mac_for(topology, guest, index, taken)
        taken.add(macs[guest, index])
    return macs


Pools = Mapping[str, tuple[IPNetwork, IPAddress]]  # pool name -> (subnet, its gateway)
Member = tuple[K, FieldPath, str, IPAddress | None]  # (key, path of the field, pool name, given address)


def allocate_addresses(
    source: Source, pools: Pools, members: list[Member[K]]
) -> tuple[dict[K, IPAddress], list[Problem]]:
    """Given addresses stay; each other member gets its pool's lowest free one, in file order.

    Members of an unknown pool get nothing: the checks report the dangling reference.
    """
    taken = {pool: {gateway} for pool, (_, gateway) in pools.items()}
    for _, _, pool, given in members:
        if given is not None and pool in taken:
            taken[pool].add(given)
    addresses: dict[K, IPAddress] = {}
    problems = []
    for key, path, pool, given in members:
        if pool not in pools:
            continue
        subnet = pools[pool][0]
        address = given if given is not None else next((a for a in subnet.iter_hosts() if a not in taken[pool]), None)
        if address is None:
            problems.append(source.problem(path, f"no free address in {subnet}"))
            continue
        taken[pool].add(address)
        addresses[key] = address
    return addresses, problems


def allocate(draft: Draft) -> Allocation:
    """Fill in every address and id of the items that passed their model."""
    segments, networks = draft.segments.valid, draft.networks
    nics = {(guest, index): nic for guest, vm in draft.vms.valid.items() for index, nic in enumerate(vm.nics)}
    host_addresses, host_problems = allocate_addresses(
        draft.source,
        {name: (segment.subnet, segment.router_address) for name, segment in segments.items()},
        [(name, ("hosts", name, "address"), host.segment, host.address) for name, host in draft.hosts.valid.items()],
    )
    nic_ips, nic_problems = allocate_addresses(
        draft.source,
        {key: (network.subnet, network.router_address) for key, network in networks.items()},
        [(key, ("vms", key[0], "nics", key[1], "ip"), nic.network, nic.ip) for key, nic in nics.items()],
    )
    return Allocation(
        gateways={name: segment.router_address for name, segment in segments.items()},
        host_addresses=host_addresses,
        vnis=allocate_vnis({key: network.vni for key, network in networks.items()}),
        nic_ips=nic_ips,
        macs=allocate_macs(draft.name, nics),
        problems=(*host_problems, *nic_problems),
    )
