"""The host inventory a lab gives its controller (see controller/inventory.py): unix
sockets in the lab folder, or with `--ssl` the hosts' management addresses and
the name in each host's certificate."""

from __future__ import annotations

from sdnvirt.compute.hypervisor import libvirt_uri
from sdnvirt.controller.inventory import HostEndpoints, Inventory, write_inventory
from sdnvirt.lab import naming
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.pki import LabPki
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import CONTROLLER_MANAGEMENT_ADDRESS
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.vswitch.names import OPENFLOW_PORT, OVSDB_PORT


def write_lab_inventory(paths: LabPaths, record: LabRecord, topology: Topology) -> None:
    """Every host of the topology, each with its management address already in the record."""
    hosts = {name: _endpoints(paths, record, topology, name) for name in topology.hosts}
    guests = {name: naming.guest_namespace(topology.name, name)
              for name, guest in topology.guests.items() if guest.kind == GuestKind.NETNS}
    write_inventory(paths.inventory, Inventory(hosts, guests))


def _endpoints(paths: LabPaths, record: LabRecord, topology: Topology, host: str) -> HostEndpoints:
    address, folder = record.management[host], paths.host(host)
    if record.ssl:  # over the management network, as on real hosts
        ovsdb, openflow = f"ssl:{address}:{OVSDB_PORT}", f"ssl:{CONTROLLER_MANAGEMENT_ADDRESS}:{OPENFLOW_PORT}"
        certificate = LabPki.certificate_name(host)
    else:
        ovsdb, openflow = f"unix:{folder.ovsdb_socket}", f"unix:{folder.controller_socket}"
        certificate = None
    return HostEndpoints(ovsdb=ovsdb, openflow_target=openflow, libvirt=libvirt_uri(folder.libvirt_socket),
                         migration_address=address, vm_files=folder.vms, openflow_certificate_name=certificate,
                         netns=naming.host_namespace(topology.name, host))
