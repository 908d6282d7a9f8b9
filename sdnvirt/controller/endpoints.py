"""How the controller reaches each host: its OVSDB server and its bridge's controller target.

In a lab these are unix sockets in the lab's folder; the controller code does
not care which, it only ever uses these three standard doors of a host.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnvirt.lab.paths import LabPaths
from sdnvirt.model.topology import Topology


@dataclass(frozen=True)
class HostEndpoints:
    ovsdb: str  # OVSDB remote, e.g. unix:/run/sdnvirt/demo/hosts/hv1/ovs/db.sock
    openflow_target: str  # what the host's bridge connects to


def lab_endpoints(paths: LabPaths, topology: Topology) -> dict[str, HostEndpoints]:
    return {
        name: HostEndpoints(ovsdb=f"unix:{paths.host(name).ovsdb_socket}",
                            openflow_target=f"unix:{paths.host(name).controller_socket}")
        for name in topology.hosts
    }
