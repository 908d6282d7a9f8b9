"""A `netns` guest's machine: the namespace that stands in for a VM.

The lab makes and removes the namespace (and records it); the controller wires
it, as it runs a VM: `vm start` plugs its NICs into its host's bridge, `vm
shutdown` unplugs them, and a migration moves them (controller/guests/netns.py).
"""

from __future__ import annotations

from sdnvirt.lab import naming
from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.model.topology import Guest, Topology


class NetnsGuest:
    def __init__(self, topology: Topology, guest: Guest):
        self.topology = topology
        self.guest = guest
        self.namespace = naming.guest_namespace(topology.name, guest.name)

    def build(self, record: LabRecord) -> None:
        lab_netns.create(record, self.namespace)

    def remove(self, record: LabRecord) -> None:
        netns.remove(self.namespace)
        record.forget_namespace(self.namespace)
