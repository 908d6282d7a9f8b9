"""A lab host: a namespace standing in for a hypervisor.

It gets what a real hypervisor has before sdnvirt arrives: a physical NIC in
its segment (inside the userspace bridge br-phy, which holds the host's
underlay address, as Open vSwitch's userspace tunnelling wants), routes to the
other segments, and its own Open vSwitch. The integration bridge is the
controller's to make.
"""

from __future__ import annotations

import os
import time

from sdnvirt.lab import naming, netns
from sdnvirt.lab.libvirtd import HostLibvirtd
from sdnvirt.lab.openvswitch import HostOpenvswitch, SslListener
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.pki import LabPki
from sdnvirt.lab.process import LabProcessError
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import UNDERLAY_MTU, plug_host, plug_management
from sdnvirt.linux.netns import NetworkNamespace, run_in_namespace
from sdnvirt.model.topology import GuestKind, Host, Segment, Topology
from sdnvirt.vswitch.names import UNDERLAY_BRIDGE

TUNNEL_LISTEN_WAIT = 5.0  # seconds


class LabHost:
    def __init__(self, topology: Topology, host: Host, paths: LabPaths, management: str,
                 pki: LabPki | None = None):
        self.topology = topology
        self.host = host
        self.management = management  # its address on the management network
        self.namespace = naming.host_namespace(topology.name, host.name)
        self.paths = paths.host(host.name)
        self.lab_paths = paths
        self.pki = pki
        ssl = SslListener(management, pki.host(host.name)) if pki is not None else None
        self.openvswitch = HostOpenvswitch(host.name, self.namespace, self.paths, ssl)
        self.libvirtd = HostLibvirtd(host.name, self.namespace, self.paths, management)

    def build(self, record: LabRecord) -> None:
        if self.pki is not None:
            self.pki.add_host(self.host.name)
        netns.create(record, self.namespace)
        plug_host(self.topology, self.host, self.namespace, naming.UNDERLAY_NIC)
        plug_management(self.topology.name, naming.management_uplink(self.host.name), self.namespace,
                        self.management)
        self.openvswitch.start(record)
        self._connect_underlay()
        # ovs-vswitchd only dials unix controllers inside its own run folder.
        os.symlink(self.lab_paths.openflow_socket, self.paths.controller_socket)
        if any(g.kind == GuestKind.QEMU for g in self.topology.guests.values()):
            self.libvirtd.start(record)

    def _connect_underlay(self) -> None:
        segment = self.topology.segments[self.host.segment]
        nic = naming.UNDERLAY_NIC
        self.openvswitch.vsctl(
            "add-br", UNDERLAY_BRIDGE, "--", "set", "Bridge", UNDERLAY_BRIDGE, "datapath_type=netdev",
            "--", "set", "Interface", UNDERLAY_BRIDGE, f"mtu_request={UNDERLAY_MTU}",
            "--", "add-port", UNDERLAY_BRIDGE, nic)
        with NetworkNamespace(self.namespace) as ns:
            # The NIC belongs to br-phy; the kernel must not answer ARP on it too.
            ns.bring_up(nic, arp=False)
            ns.bring_up(UNDERLAY_BRIDGE, mtu=UNDERLAY_MTU)
            ns.add_address(UNDERLAY_BRIDGE, str(self.host.address), segment.subnet.prefixlen)
        for other in self.topology.segments.values():
            self.route_to(other)

    def route_to(self, other: Segment) -> None:
        """Another segment is reached through this segment's router, by the kernel and by the
        userspace datapath, which routes tunnels with its own table."""
        segment = self.topology.segments[self.host.segment]
        if other.name == segment.name:
            return
        with NetworkNamespace(self.namespace) as ns:
            ns.add_route(str(other.subnet), str(segment.gateway))
        self.openvswitch.appctl("ovs/route/add", str(other.subnet), UNDERLAY_BRIDGE, str(segment.gateway))

    def unroute(self, other: Segment) -> None:
        """In this order: deleting a route from Open vSwitch's table also stops its userspace
        datapath from terminating tunnels on br-phy's address; the kernel's route change
        that follows makes it re-read its routes and listen there again."""
        self.openvswitch.appctl("ovs/route/del", str(other.subnet))
        with NetworkNamespace(self.namespace) as ns:
            ns.delete_route(str(other.subnet))
        deadline = time.monotonic() + TUNNEL_LISTEN_WAIT
        while not self._terminates_tunnels():
            if time.monotonic() > deadline:
                raise LabProcessError(f"{self.host.name}: Open vSwitch no longer terminates tunnels on "
                                      f"{self.host.address} after the route to {other.name} went")
            time.sleep(0.05)

    def _terminates_tunnels(self) -> bool:
        return str(self.host.address) in self.openvswitch.appctl("tnl/ports/show", "-v")

    def unreachable_peers(self) -> list[str]:
        """Other hosts that do not answer a ping over the underlay (all pinged at once)."""
        peers = {name: str(h.address) for name, h in self.topology.hosts.items() if name != self.host.name}
        if not peers:
            return []
        script = " ".join(f"(ping -n -q -c 3 -i 0.2 -W 1 {address} >/dev/null && echo {name}) &"
                          for name, address in peers.items()) + " wait"
        answered = run_in_namespace(self.namespace, ["sh", "-c", script], timeout=30).stdout.split()
        return sorted(set(peers) - set(answered))

    def underlay_mac(self) -> str:
        with NetworkNamespace(self.namespace) as ns:
            return ns.mac(UNDERLAY_BRIDGE)

    def set_tunnel_neighbours(self, neighbours: dict[str, str]) -> None:
        """Static next hops (IP -> MAC) for the userspace datapath's tunnels.

        It would learn them by snooping ARP, but drops the packet that makes it
        ask and forgets idle entries; a lab knows its underlay, so nothing is lost.
        """
        for address, mac in sorted(neighbours.items()):
            self.openvswitch.appctl("tnl/neigh/set", UNDERLAY_BRIDGE, address, mac)
