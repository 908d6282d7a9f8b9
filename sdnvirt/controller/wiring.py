"""The controller's parts, wired together; nothing else.

Which part talks to which: the store and the fabric (flows), the hosts (their
OVSDB), the hypervisors (libvirt) and the guest kinds, the switch-over, the
migration driver and its watchdog, the topology updates, the read model, the
event stream. The daemon runs it; the API asks its parts, never this class.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sdnvirt.compute.domain import DomainFiles
from sdnvirt.compute.hypervisor import DomainEvent, Hypervisor, QemuEvent
from sdnvirt.compute.image import cached_image
from sdnvirt.controller.accounting.accountant import Accountant
from sdnvirt.controller.events import EventStream
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.listener import OpenFlowListener
from sdnvirt.controller.fabric.openflow_app import start_fabric_app
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.guests.netns import NetnsGuests
from sdnvirt.controller.guests.qemu import QemuGuests
from sdnvirt.controller.guests.registry import Guests
from sdnvirt.controller.hosts import Hosts
from sdnvirt.controller.inventory import Inventory
from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.driver import Migrations
from sdnvirt.controller.migration.switchover import SwitchedOver, SwitchOver
from sdnvirt.controller.migration.taps import TapCaptures
from sdnvirt.controller.migration.watchdog import Watchdog
from sdnvirt.controller.status import FabricStatus
from sdnvirt.controller.store import NorthboundStore
from sdnvirt.controller.topology_update import TopologyUpdates
from sdnvirt.errors import Unavailable
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.ports import Binding

LOG = logging.getLogger(__name__)


class Controller:
    def __init__(self, northbound: Northbound, inventory: Callable[[], Inventory], pipeline: Pipeline,
                 openflow_listeners: Sequence[OpenFlowListener] = ()):
        topology = northbound.topology()
        self.topology = topology
        self._read_inventory = inventory
        self.inventory = inventory()
        self.events = EventStream()
        self.store = NorthboundStore(northbound, topology)
        # The fabric tells the hosts what it programmed, the hosts tell the fabric what they hold.
        self.fabric = Fabric(self.store, pipeline, lambda host, owners: self.hosts.mark_ready(host, owners),
                             self._bridge_certificate)
        self.hosts = Hosts(topology, self.inventory.hosts, self.store, self.fabric, self.events,
                           self._interfaces_ready)
        self.listeners = list(openflow_listeners)
        self.hypervisors: dict[str, Hypervisor] = {}
        self.qemu = QemuGuests(topology, self.hypervisors, self._domain_files, self._migration_addresses,
                               self._vm_happened)
        self.guests = Guests(topology, {
            GuestKind.QEMU: self.qemu,
            GuestKind.NETNS: NetnsGuests(topology, self.hosts, self.store.view, lambda: self.inventory),
        })
        self._add_hypervisors(topology)
        self.switch_over = SwitchOver(self.store, self.fabric, self._switched,
                                      lambda vm, entry: self.migrations.mark(vm, entry))
        self.migrations = Migrations(topology, self.guests.kind_of, self.switch_over, self._migration_changed,
                                     northbound.migrations(), TapCaptures(self._capture_point))
        self.watchdog = Watchdog(self.migrations)
        self.topology_updates = TopologyUpdates(
            northbound, lambda: self.topology, self.use_topology, self.store.view,
            lambda name: self.guests.kind_of(name).nics_locked(name), self.migrations.migrating, self.events)
        self.accountant = Accountant(self.fabric, self.store.view, self.hypervisors, pipeline,
                                     northbound.accounts(), self._save_account)
        self.status = FabricStatus(lambda: self.topology, self.store, self.fabric, self.hosts, self.hypervisors,
                                   self.switch_over, pipeline, self.store.writer.status, self.accountant)

    def start(self) -> None:
        self._start_openflow()
        self.hosts.start()
        for hypervisor in self.hypervisors.values():
            self._connect(hypervisor)
        self.topology_updates.start()
        self.watchdog.start()
        self.accountant.start()

    def stop(self) -> None:
        self.accountant.stop()
        self.watchdog.stop()
        self.topology_updates.stop()
        for hypervisor in self.hypervisors.values():
            hypervisor.stop()
        for listener in self.listeners:
            listener.stop()
        self.fabric.stop()
        self.hosts.stop()

    def _start_openflow(self) -> None:
        start_fabric_app(self.fabric, self.switch_over.packet_in)
        for listener in self.listeners:
            listener.start()

    def _bridge_certificate(self, host: str) -> str | None:
        """The name the host's bridge must show in its certificate (None: it comes without SSL)."""
        endpoint = self.inventory.hosts.get(host)
        return endpoint.openflow_certificate_name if endpoint is not None else None

    # -- libvirt -------------------------------------------------------------------------------

    def _add_hypervisors(self, topology: Topology) -> list[Hypervisor]:
        """A libvirt connection to every host, once the topology has a qemu guest at all."""
        if not any(g.kind == GuestKind.QEMU for g in topology.guests.values()):
            return []
        added = [Hypervisor(host, self.inventory.hosts[host].libvirt, self._domain_event, self.qemu.host_connected,
                            self._qemu_event)
                 for host in sorted(topology.hosts) if host not in self.hypervisors]
        self.hypervisors.update({h.host: h for h in added})
        return added

    @staticmethod
    def _connect(hypervisor: Hypervisor) -> None:
        threading.Thread(target=hypervisor.connect_forever, name=f"libvirt-{hypervisor.host}", daemon=True).start()

    def _domain_event(self, event: DomainEvent) -> None:
        # A switch-over this event triggers goes first: nothing else may delay it.
        if event.resumed:
            self.switch_over.vm_resumed(event.domain, event.host, event.received)
        elif event.paused_for_migration:
            self.migrations.source_paused(event.domain, event.host, event.received)
        self.qemu.domain_event(event)
        self._vm_happened({"vm": event.domain, "host": event.host, "event": event.name, "state": event.state})
        self.migrations.mark(event.domain, flight.mark(flight.wall(event.received), "libvirt", event.name, event.host,
                                                       "migration" if event.paused_for_migration else None))
        if event.resumed:
            self.migrations.resumed(event.domain, event.host, event.received)
        elif event.suspended and not event.paused_for_migration:  # a save, say: its last figures before its tap goes
            guest = self.topology.guests.get(event.domain)
            self.accountant.settle([nic.port_id for nic in guest.nics] if guest else [], event.domain)

    def _qemu_event(self, event: QemuEvent) -> None:
        """QEMU's word, for the flight recorder of the VM's migration; its STOP is the first word of
        a migration's final pause (libvirt's own event for it comes milliseconds later)."""
        if event.name == "STOP":
            self.migrations.source_stopped(event.domain, event.host, event.received)
        self.migrations.mark(event.domain, flight.qemu_mark(event.name, event.at, event.host, event.data))

    def _vm_happened(self, data: dict) -> None:
        self.events.publish("vm", data)

    def _domain_files(self, host: str, vm: str) -> DomainFiles:
        image = cached_image()
        if image is None:
            raise Unavailable("no guest image is built: `sdnvirt image build` makes it", "vm")
        endpoint = self.inventory.hosts[host]
        return DomainFiles(image.kernel, image.initramfs, endpoint.console_log(vm), endpoint.agent_socket(vm))

    def _migration_addresses(self) -> dict[str, str]:
        return {host: endpoint.migration_address for host, endpoint in self.inventory.hosts.items()}

    # -- the fabric and migrations ------------------------------------------------------------------

    def _interfaces_ready(self, host: str, bindings: list[Binding]) -> None:
        self.migrations.destination_ready(host, {b.port_id for b in bindings})

    def _switched(self, event: SwitchedOver) -> None:
        self.accountant.settle(event.ports, event.vm)  # the source's last figures, while its ports exist
        self.migrations.switched(event)
        self.events.publish("switch-over", {"vm": event.vm, "host": event.host, "ports": list(event.ports),
                                            "trigger": event.trigger, "latency_ms": round(event.latency_ms, 2),
                                            "flow_mods": event.flow_mods})

    def _capture_point(self, vm: str, host: str) -> tuple[str | None, list[str]]:
        """Where a migration's captures run: the host's namespace (a lab's; None where the controller
        cannot enter it), and the guest's ports on that host's bridge."""
        endpoint = self.inventory.hosts.get(host)
        guest = self.topology.guests.get(vm)
        ports = self.store.view().ports.get(host)
        if endpoint is None or guest is None or ports is None:
            return None, []
        port_ids = {nic.port_id for nic in guest.nics}
        return endpoint.netns, [b.interface for b in ports.bindings if b.port_id in port_ids]

    def _save_account(self, name: str, figures: dict) -> None:
        self.store.write(lambda: self.store.northbound.save_account(name, figures), f"the account of {name}",
                         key=("account", name))

    def _migration_changed(self, report: dict) -> None:
        """Every transition of a migration, in order: into the database (its ordered writer)
        and onto the event stream."""
        self.store.write(lambda: self.store.northbound.save_migration(report["id"], report),
                         f"migration {report['id']} {report['state']}")
        self.events.publish("migration", report)

    # -- a new desired topology ---------------------------------------------------------------

    def use_topology(self, topology: Topology) -> None:
        """Hosts, networks and guests came or went: every part follows, touching only what changed."""
        self.inventory = self._read_inventory()
        self.topology = topology
        self.guests.use_topology(topology)
        self.migrations.use_topology(topology)
        self.fabric.use_hosts(topology)
        self.fabric.apply(self.store.set_topology(topology))
        self.hosts.use_topology(topology, self.inventory.hosts)
        for host in [h for h in self.hypervisors if h not in topology.hosts]:
            self.hypervisors.pop(host).stop()
        for hypervisor in self._add_hypervisors(topology):
            self._connect(hypervisor)
        LOG.info("topology applied: %d hosts, %d guests", len(topology.hosts), len(topology.guests))
