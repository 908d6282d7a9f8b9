"""The resolved topology: every name checked, every address and id allocated.

The rest of sdnvirt works only on these objects, never on raw YAML, so each
part can rely on references being valid and values being filled in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from netaddr import EUI, IPAddress, IPNetwork

# Namespace for the logical port ids (uuid5 of "topology/vm/nic-index"), so a
# NIC keeps its port id across runs of the same file.
LOGICAL_PORT_NAMESPACE = uuid.UUID("6f1c2d0e-5b7a-4c39-9a51-3e0d7f6a2b10")


class GuestKind(StrEnum):
    NETNS = "netns"
    QEMU = "qemu"


@dataclass(frozen=True)
class Segment:
    """An underlay L2 domain; segments are routed to each other."""

    name: str
    subnet: IPNetwork
    gateway: IPAddress


@dataclass(frozen=True)
class Host:
    """A hypervisor: one integration bridge, one address in its segment."""

    name: str
    segment: str
    address: IPAddress


@dataclass(frozen=True)
class Network:
    """A tenant network: one L2 broadcast domain carried over VXLAN."""

    tenant: str
    name: str
    subnet: IPNetwork
    vni: int

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"


@dataclass(frozen=True)
class Nic:
    """A guest interface; its logical port is what the controller binds."""

    index: int
    network: str  # Network.key
    ip: IPAddress
    mac: EUI
    port_id: str  # logical port id, written as iface-id on the OVS Interface

    @property
    def interface(self) -> str:
        """Its name inside the guest."""
        return f"eth{self.index}"


@dataclass(frozen=True)
class Guest:
    name: str
    host: str
    kind: GuestKind
    memory: int  # MiB
    vcpus: int
    nics: tuple[Nic, ...]
    autostart: bool = True  # qemu guests: started by `lab up`


@dataclass(frozen=True)
class Topology:
    name: str
    source: Path | None
    segments: dict[str, Segment] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)  # by Network.key
    guests: dict[str, Guest] = field(default_factory=dict)

    @property
    def tenants(self) -> list[str]:
        return sorted({n.tenant for n in self.networks.values()})

    def nics_on(self, network: str) -> list[tuple[Guest, Nic]]:
        return [(g, n) for g in self.guests.values() for n in g.nics if n.network == network]


def logical_port_id(topology: str, guest: str, index: int) -> str:
    return str(uuid.uuid5(LOGICAL_PORT_NAMESPACE, f"{topology}/{guest}/{index}"))


def guest_uuid(topology: str, guest: str) -> str:
    """The guest's domain UUID (libvirt's vm-id), stable across runs of the same file."""
    return str(uuid.uuid5(LOGICAL_PORT_NAMESPACE, f"{topology}/{guest}"))
