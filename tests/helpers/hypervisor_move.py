"""A netns guest moved behind the controller's back, the way libvirt moves a VM it does not drive:
its destination port is plugged (and programmed by the controller), the guest swaps its links and
announces itself with RARP, the source port goes. Only the announcement tells the controller."""

from __future__ import annotations

import subprocess
import sys

from sdnvirt.controller.guests.netns_swap import staged_name
from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.linux.netns import NetworkNamespace, checksum_in_software, entering
from sdnvirt.model.topology import guest_uuid
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE, guest_port
from sdnvirt.vswitch.ports import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, READY, VM_ID

READY_TIMEOUT = 10  # seconds


def move_behind_the_controllers_back(lab: Lab, guest_name: str, source: str, destination: str) -> None:
    guest = lab.topology.guests[guest_name]
    hosts = lab.hosts()
    namespace = naming.guest_namespace(lab.name, guest_name)
    for nic in guest.nics:
        port = guest_port(nic.port_id)
        with NetworkNamespace(hosts[destination].namespace) as host_ns:
            host_ns.add_veth(port, namespace, staged_name(nic.index))
            host_ns.bring_up(port)
        checksum_in_software(namespace, staged_name(nic.index))  # as the netns guest kind wires a NIC
        ids = {IFACE_ID: nic.port_id, ATTACHED_MAC: str(nic.mac), IFACE_STATUS: "active",
               VM_ID: guest_uuid(lab.topology.name, guest_name)}
        hosts[destination].openvswitch.vsctl("add-port", INTEGRATION_BRIDGE, port, "--", "set", "Interface", port,
                                             *(f'external_ids:{key}="{value}"' for key, value in ids.items()))
    for nic in guest.nics:
        hosts[destination].openvswitch.vsctl(f"--timeout={READY_TIMEOUT}", "wait-until", "Interface",
                                             guest_port(nic.port_id), f"external_ids:{READY}=true")
    nics = [f"{nic.index},{nic.mac},{nic.ip}/{lab.topology.networks[nic.network].subnet.prefixlen}"
            for nic in guest.nics]
    swap = subprocess.run([*entering(namespace), sys.executable, "-m", "sdnvirt.controller.guests.netns_swap", *nics],
                          input="go\n", capture_output=True, text=True, timeout=30)
    assert swap.returncode == 0, swap.stderr
    for nic in guest.nics:
        hosts[source].openvswitch.vsctl("--if-exists", "del-port", INTEGRATION_BRIDGE, guest_port(nic.port_id))
