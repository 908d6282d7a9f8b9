"""The lab's underlay: every segment's L2 domain and the router between them.

One namespace holds a Linux bridge per segment, each with the segment's
gateway address, and forwards between them, so hosts in different segments
reach each other only through a router, as in a datacenter. It has no route
anywhere else.

Beside it, a management network, as datacenters keep one for live migration:
one flat L2 domain that every host joins with a second NIC, outside Open
vSwitch, so a migration's memory stream never competes with tenant traffic
in the userspace datapath.
"""

from __future__ import annotations

from netaddr import IPNetwork

from sdnvirt.lab import naming, netns
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux.netns import NetworkNamespace
from sdnvirt.model.topology import Host, Segment, Topology

UNDERLAY_MTU = 9000  # jumbo frames, so VXLAN adds no fragmentation to guest MTU 1500
MANAGEMENT_SUBNET = IPNetwork("198.18.0.0/16")  # RFC 2544's benchmarking range: never routed anywhere
MANAGEMENT_BRIDGE = "mgmt"
MANAGEMENT_NIC = "mgmt0"
# The controller's address there, in a lab brought up with `--ssl`: hosts take the lowest.
CONTROLLER_MANAGEMENT_ADDRESS = str(MANAGEMENT_SUBNET[-2])
API_PORT = 8443  # where the controller serves its API there (HTTPS, with a token)


def build_underlay(topology: Topology, record: LabRecord) -> None:
    name = naming.fabric_namespace(topology.name)
    netns.create(record, name, forwarding=True)
    for segment in topology.segments.values():
        add_segment(topology, segment)
    with NetworkNamespace(name) as ns:
        ns.add_bridge(MANAGEMENT_BRIDGE, mtu=UNDERLAY_MTU)
        ns.bring_up(MANAGEMENT_BRIDGE)


def add_segment(topology: Topology, segment: Segment) -> None:
    """The segment's L2 domain, with the router's leg in it."""
    with NetworkNamespace(naming.fabric_namespace(topology.name)) as ns:
        bridge = naming.segment_bridge(segment.name)
        ns.add_bridge(bridge, mtu=UNDERLAY_MTU)
        ns.bring_up(bridge)
        ns.add_address(bridge, str(segment.gateway), segment.subnet.prefixlen)


def remove_segment(topology: Topology, segment: str) -> None:
    with NetworkNamespace(naming.fabric_namespace(topology.name)) as ns:
        ns.delete_link(naming.segment_bridge(segment))


def plug_host(topology: Topology, host: Host, host_namespace: str, host_nic: str) -> None:
    """The host's physical NIC, cabled to its segment's bridge."""
    uplink = naming.segment_uplink(host.name)
    with NetworkNamespace(naming.fabric_namespace(topology.name)) as fabric:
        fabric.add_veth(uplink, host_namespace, host_nic, mtu=UNDERLAY_MTU)
        fabric.set_master(uplink, naming.segment_bridge(host.segment))
        fabric.bring_up(uplink)


def management_address(record: LabRecord, host: str) -> str:
    """A host's address on the management network: the lowest free one when it is new,
    the same for as long as the lab has the host (hosts come and go with `apply`)."""
    if host not in record.management:
        taken = set(record.management.values())
        record.management[host] = next(str(a) for a in MANAGEMENT_SUBNET.iter_hosts() if str(a) not in taken)
        record.save()
    return record.management[host]


def plug_management(lab: str, uplink: str, namespace: str, address: str) -> None:
    """Wire a host's namespace (or, with `--ssl`, the controller's) to the management network."""
    with NetworkNamespace(naming.fabric_namespace(lab)) as fabric:
        fabric.add_veth(uplink, namespace, MANAGEMENT_NIC, mtu=UNDERLAY_MTU)
        fabric.set_master(uplink, MANAGEMENT_BRIDGE)
        fabric.bring_up(uplink)
    with NetworkNamespace(namespace) as ns:
        ns.bring_up(MANAGEMENT_NIC)
        ns.add_address(MANAGEMENT_NIC, address, MANAGEMENT_SUBNET.prefixlen)


def gateway_macs(topology: Topology) -> dict[str, str]:
    """Each segment's router MAC, by segment name."""
    with NetworkNamespace(naming.fabric_namespace(topology.name)) as fabric:
        return {name: fabric.mac(naming.segment_bridge(name)) for name in topology.segments}
