"""A lab host: a namespace standing in for a hypervisor.

It gets what a real hypervisor has before sdnvirt arrives: a physical NIC in
its segment (inside the userspace bridge br-phy, which holds the host's
underlay address, as Open vSwitch's userspace tunnelling wants), routes to the
other segments, and its own Open vSwitch. The integration bridge is the
controller's to make.
"""

from __future__ import annotations

import os

from sdnvirt.lab import naming, netns
from sdnvirt.lab.netns import NetworkNamespace
from sdnvirt.lab.openvswitch import HostOpenvswitch
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import UNDERLAY_MTU, plug_host
from sdnvirt.model.topology import Host, Topology
from sdnvirt.vswitch.names import UNDERLAY_BRIDGE


class LabHost:
    def __init__(self, topology: Topology, host: Host, paths: LabPaths):
        self.topology = topology
        self.host = host
        self.namespace = naming.host_namespace(topology.name, host.name)
        self.paths = paths.host(host.name)
        self.lab_paths = paths
        self.openvswitch = HostOpenvswitch(host.name, self.namespace, self.paths)

    def build(self, record: LabRecord) -> None:
        record.add_namespace(self.namespace)
        netns.create(self.namespace)
        netns.set_sysctl(self.namespace, "net.ipv6.conf.all.disable_ipv6", "1")
        netns.set_sysctl(self.namespace, "net.ipv6.conf.default.disable_ipv6", "1")
        with NetworkNamespace(self.namespace) as ns:
            ns.loopback_up()
        plug_host(self.topology, self.host, self.namespace, naming.UNDERLAY_NIC)
        self.openvswitch.start(record)
        self._connect_underlay()
        # ovs-vswitchd only dials unix controllers inside its own run folder.
        os.symlink(self.lab_paths.openflow_socket, self.paths.controller_socket)

    def _connect_underlay(self) -> None:
        segment = self.topology.segments[self.host.segment]
        nic = naming.UNDERLAY_NIC
        self.openvswitch.vsctl(
            "add-br", UNDERLAY_BRIDGE, "--", "set", "Bridge", UNDERLAY_BRIDGE, "datapath_type=netdev",
            "--", "set", "Interface", UNDERLAY_BRIDGE, f"mtu_request={UNDERLAY_MTU}",
            "--", "add-port", UNDERLAY_BRIDGE, nic)
        with NetworkNamespace(self.namespace) as ns:
            ns.bring_up(nic)
            ns.bring_up(UNDERLAY_BRIDGE, mtu=UNDERLAY_MTU)
            ns.add_address(UNDERLAY_BRIDGE, str(self.host.address), segment.subnet.prefixlen)
            for other in self.topology.segments.values():
                if other.name != segment.name:
                    ns.add_route(str(other.subnet), str(segment.gateway))
        # The userspace datapath routes tunnels with its own table.
        for other in self.topology.segments.values():
            if other.name != segment.name:
                self.openvswitch.appctl("ovs/route/add", str(other.subnet), UNDERLAY_BRIDGE, str(segment.gateway))
