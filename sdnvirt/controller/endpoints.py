"""How the controller reaches each host: its OVSDB server, its bridge's controller
target, its libvirtd, and where a VM's files live there.

In a lab these are unix sockets and folders in the lab's folder; the
controller code does not care which, it only ever uses these three standard
doors of a host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdnvirt.compute.hypervisor import libvirt_uri
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import CONTROLLER_MANAGEMENT_ADDRESS
from sdnvirt.model.topology import Topology
from sdnvirt.vswitch.names import OPENFLOW_PORT, OVSDB_PORT


@dataclass(frozen=True)
class HostEndpoints:
    ovsdb: str  # OVSDB remote, e.g. unix:/run/sdnvirt/demo/hosts/hv1/ovs/db.sock
    openflow_target: str  # what the host's bridge connects to
    libvirt: str  # libvirt URI
    migration_address: str  # where the host's libvirtd and QEMU take a migration
    vm_files: Path  # where a VM's console log and agent socket are on that host

    def console_log(self, vm: str) -> Path:
        return self.vm_files / f"{vm}.console.log"

    def agent_socket(self, vm: str) -> Path:
        return self.vm_files / f"{vm}.agent.sock"


def lab_endpoints(paths: LabPaths, topology: Topology) -> dict[str, HostEndpoints]:
    """Read again whenever the topology changes: the lab records a new host's management
    address before the controller hears of the host."""
    record = LabRecord.load(paths.record)
    management = record.management
    if record.ssl:  # over the management network, as on real hosts
        ovsdb = {name: f"ssl:{management.get(name, '')}:{OVSDB_PORT}" for name in topology.hosts}
        openflow = dict.fromkeys(topology.hosts, f"ssl:{CONTROLLER_MANAGEMENT_ADDRESS}:{OPENFLOW_PORT}")
    else:
        ovsdb = {name: f"unix:{paths.host(name).ovsdb_socket}" for name in topology.hosts}
        openflow = {name: f"unix:{paths.host(name).controller_socket}" for name in topology.hosts}
    return {
        name: HostEndpoints(ovsdb=ovsdb[name], openflow_target=openflow[name],
                            libvirt=libvirt_uri(paths.host(name).libvirt_socket),
                            migration_address=management.get(name, ""),
                            vm_files=paths.host(name).vms)
        for name in topology.hosts
    }
