"""A `netns` guest: a namespace standing in for a VM, wired the way libvirt wires one.

Each NIC is a veth pair: the guest end carries the NIC's MAC and address,
the host end is added to the host's integration bridge as an OVS Interface
with the external_ids libvirt writes (iface-id, attached-mac, vm-id,
iface-status). The controller cannot tell it from a QEMU guest.

The guest end computes its own checksums (tx checksum offload off): Open
vSwitch's userspace datapath forwards what it reads from the host end as it
is, so an offloaded checksum would never be completed and every TCP segment
and UDP datagram would arrive broken. That is the guest's side to fix, as a
VM's is its virtual NIC (sdnvirt.compute.domain): turning it off on the host
end changes nothing (the guest's kernel already left the checksum
unfinished), and Open vSwitch 3.1's userspace-tso-enable only mends paths
within one host, not through its VXLAN tunnels (both tried).
"""

from __future__ import annotations

from sdnvirt.lab import naming
from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.host import LabHost
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import NetworkNamespace
from sdnvirt.model.topology import Guest, Nic, Topology, guest_uuid
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE
from sdnvirt.vswitch.ports import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, VM_ID


class NetnsGuest:
    def __init__(self, topology: Topology, guest: Guest, host: LabHost):
        self.topology = topology
        self.guest = guest
        self.host = host
        self.namespace = naming.guest_namespace(topology.name, guest.name)

    def build(self, record: LabRecord) -> None:
        lab_netns.create(record, self.namespace)
        for nic in self.guest.nics:
            self.plug(nic)

    def remove(self, record: LabRecord) -> None:
        """Unplugged from the bridge first, so the controller sees the ports go at once."""
        for nic in self.guest.nics:
            self.unplug(nic)
        netns.remove(self.namespace)
        record.forget_namespace(self.namespace)

    def unplug(self, nic: Nic) -> None:
        vif = naming.vif_name(nic.port_id)
        self.host.openvswitch.vsctl("--if-exists", "del-port", INTEGRATION_BRIDGE, vif)
        with NetworkNamespace(self.host.namespace) as host_ns:
            host_ns.delete_link(vif)

    def plug(self, nic: Nic) -> None:
        vif = naming.vif_name(nic.port_id)
        inside = naming.guest_nic_name(nic.index)
        network = self.topology.networks[nic.network]
        with NetworkNamespace(self.host.namespace) as host_ns:
            host_ns.add_veth(vif, self.namespace, inside)
            host_ns.bring_up(vif)
        with NetworkNamespace(self.namespace) as ns:
            ns.bring_up(inside, mac=str(nic.mac).lower())
            netns.checksum_in_software(self.namespace, inside)
            ns.add_address(inside, str(nic.ip), network.subnet.prefixlen)
        ids = {IFACE_ID: nic.port_id, ATTACHED_MAC: str(nic.mac).lower(),
               VM_ID: guest_uuid(self.topology.name, self.guest.name), IFACE_STATUS: "active"}
        self.host.openvswitch.vsctl(
            "add-port", INTEGRATION_BRIDGE, vif, "--", "set", "Interface", vif,
            *(f'external_ids:{key}="{value}"' for key, value in ids.items()))
