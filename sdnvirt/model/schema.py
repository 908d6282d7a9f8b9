"""The topology file's structure, as pydantic models and as a JSON schema.

The models are strict: a typo in a key or a value of the wrong type is an
error, never a guess, because a guessed network is worse than none. The same
models give the published JSON schema, so an editor flags what the loader
would reject.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from netaddr import EUI, AddrFormatError, IPAddress, IPNetwork, mac_unix_expanded
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from sdnvirt.model.source import Source
from sdnvirt.model.topology import GuestKind

_NAME = "[a-z][a-z0-9-]{0,14}"
NAME_PATTERN = f"^{_NAME}$"
NETWORK_REF_PATTERN = f"^{_NAME}/{_NAME}$"
# Six octets as OVS, libvirt and iproute2 print them.
MAC_PATTERN = "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
# Shorter, because the topology name prefixes namespace and folder names.
TOPOLOGY_NAME_PATTERN = "^[a-z][a-z0-9-]{0,11}$"
VNI_MAX = 2**24 - 1
# A longer prefix leaves no address for a guest or host after the gateway.
LONGEST_PREFIX = 30

T = TypeVar("T")


def _netaddr(parse: Callable[[str], T], value: object, expected: str) -> T:
    """Parse text with netaddr; any other value, or text it rejects, is expected-X."""
    if isinstance(value, str):
        try:
            return parse(value)
        except AddrFormatError:
            pass
    raise ValueError(f"expected {expected}")


def _ipv4_address(value: object) -> IPAddress:
    return _netaddr(lambda text: IPAddress(text, 4), value, "an IPv4 address such as 10.0.0.11")


def _ipv4_subnet(value: object) -> IPNetwork:
    subnet = _netaddr(lambda text: IPNetwork(text, version=4), value, "an IPv4 subnet such as 10.0.0.0/24")
    if subnet.ip != subnet.network:
        raise ValueError(f"{value} has host bits set; did you mean {subnet.cidr}?")
    if subnet.prefixlen > LONGEST_PREFIX:
        raise ValueError(f"/{subnet.prefixlen} leaves no room for hosts; expected /{LONGEST_PREFIX} or shorter")
    return subnet


def _mac_address(value: object) -> EUI:
    # netaddr alone would read "02:00:00" as a whole MAC, so the form is pinned first.
    if not isinstance(value, str) or not re.fullmatch(MAC_PATTERN, value):
        raise ValueError("expected a MAC address such as 02:00:00:00:00:01")
    mac = EUI(value, dialect=mac_unix_expanded)
    if mac.words[0] & 1:
        raise ValueError(f"{mac} is a multicast address; a NIC needs a unicast MAC")
    if int(mac) == 0:
        raise ValueError("the all-zero MAC address is not a NIC's address")
    return mac


def _network_ref(ref: str) -> str:
    if not re.fullmatch(NETWORK_REF_PATTERN, ref):
        raise ValueError(f"expected 'tenant/network', such as 'blue/web', not '{ref}'")
    return ref


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TopologyName = Annotated[str, StringConstraints(pattern=TOPOLOGY_NAME_PATTERN)]
NetworkRef = Annotated[
    str, AfterValidator(_network_ref), WithJsonSchema({"type": "string", "pattern": NETWORK_REF_PATTERN})
]
Ipv4Address = Annotated[IPAddress, PlainValidator(_ipv4_address), WithJsonSchema({"type": "string", "format": "ipv4"})]
Ipv4Subnet = Annotated[IPNetwork, PlainValidator(_ipv4_subnet), WithJsonSchema({"type": "string"})]
MacAddress = Annotated[EUI, PlainValidator(_mac_address), WithJsonSchema({"type": "string", "pattern": MAC_PATTERN})]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SegmentSpec(_Strict):
    """An underlay L2 domain; segments are routed to each other."""

    subnet: Ipv4Subnet = Field(description="Underlay subnet, such as 100.64.1.0/24.")
    gateway: Ipv4Address | None = Field(
        None, description="Address of the router between segments; default: the first usable address."
    )

    @property
    def router_address(self) -> IPAddress:
        return self.subnet[1] if self.gateway is None else self.gateway


class HostSpec(_Strict):
    """A hypervisor, reached by the others over the underlay."""

    segment: Name = Field(description="The segment the host's underlay interface is in.")
    address: Ipv4Address | None = Field(
        None, description="Underlay address, the host's VXLAN endpoint; default: the lowest free one in the segment."
    )


class NetworkSpec(_Strict):
    """A tenant network: one L2 broadcast domain, carried between hosts by VXLAN."""

    subnet: Ipv4Subnet = Field(
        description="Guest subnet; its first usable address is kept for the tenant's router. "
        "Tenants may reuse each other's subnets."
    )
    vni: int | None = Field(
        None, ge=1, le=VNI_MAX, description="VXLAN network identifier; default: derived from 'tenant/network'."
    )

    @property
    def router_address(self) -> IPAddress:
        """The first usable address, kept for the tenant's distributed router."""
        return self.subnet[1]


class TenantSpec(_Strict):
    """A tenant: networks that share an address plan, isolated from other tenants."""

    networks: dict[Name, NetworkSpec] = Field(default_factory=dict)


class NicSpec(_Strict):
    """A guest interface, plugged into one tenant network."""

    network: NetworkRef = Field(description="The network as 'tenant/network'.")
    ip: Ipv4Address | None = Field(
        None, description="Default: the lowest free address of the network after its gateway."
    )
    mac: MacAddress | None = Field(
        None, description="Unicast MAC; default: a locally administered one derived from the names."
    )


_KIND_SCHEMA = {"enum": [kind.value for kind in GuestKind], "default": GuestKind.NETNS.value}


class VmSpec(_Strict):
    """A guest: a QEMU VM or a network namespace standing in for one."""

    host: Name = Field(description="The hypervisor the guest runs on.")
    kind: Annotated[GuestKind, Field(strict=False), WithJsonSchema(_KIND_SCHEMA)] = Field(
        GuestKind.NETNS, description="netns: a network namespace; qemu: a VM run by the host's libvirtd."
    )
    memory: int = Field(128, ge=32, le=65536, description="Memory in MiB.")
    vcpus: int = Field(1, ge=1, le=64, description="Virtual CPUs.")
    nics: list[NicSpec] = Field(min_length=1, description="Interfaces, in the guest's order.")
    autostart: bool = Field(
        True, description="qemu guests: start with the lab; false leaves it for `sdnvirt vm start`."
    )


class TopologyFile(_Strict):
    """A sdnvirt topology: underlay segments, hypervisors, tenant networks and guests."""

    model_config = ConfigDict(title="sdnvirt topology")

    name: TopologyName = Field(description="Short name; it prefixes the lab's namespaces and folders.")
    segments: dict[Name, SegmentSpec] = Field(default_factory=dict)
    hosts: dict[Name, HostSpec] = Field(default_factory=dict)
    tenants: dict[Name, TenantSpec] = Field(default_factory=dict)
    vms: dict[Name, VmSpec] = Field(default_factory=dict)


def topology_json_schema() -> dict[str, Any]:
    """The JSON schema of the file, for editors to check it as it is typed."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **TopologyFile.model_json_schema()}


Spec = TypeVar("Spec")


@dataclass(frozen=True)
class Section(Generic[Spec]):
    """One kind of item: those that passed their own model, and every name declared.

    A section that could not be read at all (not a mapping) declares every name,
    so that one mistake there is reported once, not again at each reference.
    """

    valid: dict[str, Spec]
    declared: frozenset[str]
    readable: bool = True

    def declares(self, name: str) -> bool:
        return name in self.declared or not self.readable


@dataclass(frozen=True)
class Draft:
    """The file read item by item, so one bad item hides nothing in the others."""

    source: Source
    name: str
    segments: Section[SegmentSpec]
    hosts: Section[HostSpec]
    tenants: Section[Section[NetworkSpec]]
    vms: Section[VmSpec]

    @property
    def networks(self) -> dict[str, NetworkSpec]:
        """Valid networks by 'tenant/network', in file order."""
        return {
            f"{tenant}/{name}": network
            for tenant, networks in self.tenants.valid.items()
            for name, network in networks.valid.items()
        }


_name = TypeAdapter(Name)


def _section(raw: object, read: Callable[[Any], Spec]) -> Section[Spec]:
    if not isinstance(raw, dict):
        return Section({}, frozenset(), readable=False)
    valid = {}
    for name, item in raw.items():
        try:
            valid[_name.validate_python(name)] = read(item)
        except ValidationError:
            continue
    return Section(valid, frozenset(str(name) for name in raw))


def _tenant(raw: object) -> Section[NetworkSpec]:
    return _section(raw.get("networks", {}) if isinstance(raw, dict) else None, NetworkSpec.model_validate)


def read_draft(source: Source) -> Draft:
    """Validate each segment, host, network and guest on its own model."""
    data = source.data if isinstance(source.data, dict) else {}
    name = data.get("name")
    return Draft(
        source=source,
        name=name if isinstance(name, str) else "",
        segments=_section(data.get("segments", {}), SegmentSpec.model_validate),
        hosts=_section(data.get("hosts", {}), HostSpec.model_validate),
        tenants=_section(data.get("tenants", {}), _tenant),
        vms=_section(data.get("vms", {}), VmSpec.model_validate),
    )
