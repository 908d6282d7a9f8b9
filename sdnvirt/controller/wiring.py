"""The controller's parts, wired together: store, fabric, OVSDB watchers, os-ken.

This is what the daemon runs and what the REST API asks questions of.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from os_ken.base import app_manager

from sdnvirt.compute.domain import DomainFiles
from sdnvirt.compute.hypervisor import DomainEvent, Hypervisor
from sdnvirt.compute.image import cached_image
from sdnvirt.compute.machines import MachineError, Machines
from sdnvirt.controller.events import EventStream
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.cookies import owner_names
from sdnvirt.controller.fabric.flow_text import instructions_text, match_text, table_name
from sdnvirt.controller.fabric.listener import UnixOpenFlowListener
from sdnvirt.controller.fabric.openflow import read_flow
from sdnvirt.controller.fabric.openflow_app import FabricApp
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.inventory import HostEndpoints
from sdnvirt.controller.migration.migrations import Migration, Migrations
from sdnvirt.controller.migration.switchover import SwitchedOver, SwitchOver
from sdnvirt.controller.store import NorthboundStore
from sdnvirt.controller.topology_update import checked_changes
from sdnvirt.model.changes import Change
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.integration_bridge import BridgeSettings, ensure_integration_bridge, ensure_tunnels
from sdnvirt.vswitch.names import datapath_id
from sdnvirt.vswitch.ovsdb import HostOvsdb
from sdnvirt.vswitch.ports import HostPorts

LOG = logging.getLogger(__name__)
READY_TIMEOUT = 20.0  # seconds to wait for every host's OVSDB before programming anyway
RECONNECT_DELAY = 1.0
APPLY_TIMEOUT = 30.0


class TopologyNotApplied(RuntimeError):
    pass


class Controller:
    def __init__(self, northbound: Northbound, endpoints: Callable[[Topology], dict[str, HostEndpoints]],
                 pipeline: Pipeline, openflow_socket: Path | None = None):
        topology = northbound.topology()
        self.topology = topology
        self.northbound = northbound
        self._endpoints_of = endpoints
        self.endpoints = endpoints(topology)
        self.pipeline = pipeline
        self.events = EventStream()
        self.store = NorthboundStore(northbound, topology)
        self.fabric = Fabric(self.store, pipeline, self._mark_ready)
        self._marked: dict[str, set[tuple[str, int]]] = {h: set() for h in topology.hosts}
        self._markers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ready-markers")
        self.listener = UnixOpenFlowListener(openflow_socket) if openflow_socket else None
        self.ovsdbs: dict[str, HostOvsdb] = {}
        self._heard_from: set[str] = set()
        self._lock = threading.Lock()
        self._owners = owner_names(topology)
        self.started_at = time.time()
        self.hypervisors: dict[str, Hypervisor] = {}
        self._add_hypervisors(topology)
        self.machines = Machines(topology, self.hypervisors, self._domain_files)
        self.switch_over = SwitchOver(self.store, self.fabric, self._switched)
        self.migrations = Migrations(topology, self.machines, self.hypervisors, self._domain_files,
                                     {h: e.migration_address for h, e in self.endpoints.items()},
                                     self.switch_over, self.store.view, northbound.migrations(),
                                     self._persist_migration)
        self.generation = northbound.generation()
        self._applying = threading.Lock()
        self._topology_written = threading.Condition()
        self._topology_wanted = threading.Event()
        northbound.watch(self._northbound_changed)

    def start(self) -> None:
        self._start_openflow()
        for host in sorted(self.topology.hosts):
            self._attach_in_background(host)
        for hypervisor in self.hypervisors.values():
            threading.Thread(target=hypervisor.connect_forever, name=f"libvirt-{hypervisor.host}",
                             daemon=True).start()
        timer = threading.Timer(READY_TIMEOUT, self._ready_anyway)
        timer.daemon = True
        timer.start()
        threading.Thread(target=self._follow_topology, name="topology", daemon=True).start()
        self.migrations.recover()

    def _add_hypervisors(self, topology: Topology) -> list[Hypervisor]:
        """A libvirt connection to every host, once the topology has a qemu guest at all."""
        if not any(g.kind == GuestKind.QEMU for g in topology.guests.values()):
            return []
        added = [Hypervisor(host, self.endpoints[host].libvirt, self._domain_event)
                 for host in sorted(topology.hosts) if host not in self.hypervisors]
        self.hypervisors.update({h.host: h for h in added})
        return added

    def _start_openflow(self) -> None:
        manager = app_manager.AppManager.get_instance()
        manager.load_apps([FabricApp.__module__])
        contexts = manager.create_contexts()
        manager.instantiate_apps(**contexts, fabric=self.fabric, on_packet_in=self.switch_over.packet_in)
        manager.applications[FabricApp.__name__].handle_in_receive_threads()
        if self.listener is not None:
            self.listener.start()

    def _attach_in_background(self, host: str) -> None:
        threading.Thread(target=self._attach_host, args=(host,), name=f"attach-{host}", daemon=True).start()

    def _attach_host(self, host: str) -> None:
        """Connect to a host's OVSDB (retrying while it is away, and while the host is
        in the topology), then shape its bridge."""
        endpoint = self.endpoints[host]
        while host in self.topology.hosts:
            ovsdb = HostOvsdb(host, endpoint.ovsdb, self._ports_seen)
            try:
                ovsdb.start()
                ensure_integration_bridge(ovsdb.api, BridgeSettings(datapath_id(self.topology.name, host),
                                                                    endpoint.openflow_target))
                ensure_tunnels(ovsdb.api, self._tunnel_remotes(host))
                self.ovsdbs[host] = ovsdb
                LOG.info("host %s: OVSDB %s attached", host, endpoint.ovsdb)
                return
            except Exception as error:  # any failure to reach or shape the host: retry
                LOG.warning("host %s: OVSDB %s: %s; retrying", host, endpoint.ovsdb, error)
                ovsdb.stop()
                time.sleep(RECONNECT_DELAY)

    def _tunnel_remotes(self, host: str) -> dict[str, str]:
        return {name: str(h.address) for name, h in self.topology.hosts.items() if name != host}

    def _ports_seen(self, ports: HostPorts) -> None:
        if ports.host not in self.topology.hosts:
            return  # a host being removed
        before = self.store.view().ports.get(ports.host)
        self.fabric.apply(self.store.set_host_ports(ports))
        self._publish_bindings(ports.host, before.bindings if before else (), ports.bindings)
        with self._lock:
            self._heard_from.add(ports.host)
            everyone = self._heard_from >= set(self.topology.hosts)
        if everyone and not self.fabric.ready.is_set():
            LOG.info("every host's ports are known: programming bridges")
            self.fabric.ready.set()

    def _publish_bindings(self, host: str, before, after) -> None:
        def keyed(bindings) -> dict:
            return {(b.port_id, b.interface, b.ofport): b for b in bindings}

        old, new = keyed(before), keyed(after)
        ports = self.store.view().logical_ports
        for action, keys in (("bound", new.keys() - old.keys()), ("unbound", old.keys() - new.keys())):
            for port_id, interface, ofport in sorted(keys):
                port = ports.get(port_id)
                self.events.publish("binding", {"action": action, "host": host, "port": port_id,
                                                "guest": port.guest if port else None,
                                                "interface": interface, "ofport": ofport})

    def _mark_ready(self, host: str, programmed: frozenset) -> None:
        """Tell the host (its OVSDB) which VM interfaces its bridge now holds the flows of;
        libvirt's hook on that host waits for this before a VM may run there. The write
        happens on a thread of its own: a reconciler must never wait for an OVSDB."""
        self._markers.submit(self._write_ready_markers, host, programmed)

    def _write_ready_markers(self, host: str, programmed: frozenset) -> None:
        ovsdb = self.ovsdbs.get(host)
        ports = self.store.view().ports.get(host)
        if ovsdb is None or ports is None:
            return
        fresh = [b for b in ports.bindings if b.ready_at is None and ("port", b.port_id) in programmed
                 and (b.interface, b.ofport) not in self._marked[host]]
        if fresh:
            try:
                ovsdb.mark_ready([b.interface for b in fresh])
            except Exception as error:  # any OVSDB failure: the VM's start waits, then fails, and says so
                LOG.warning("host %s: could not mark %s ready: %s", host, [b.interface for b in fresh], error)
                return
            self._marked[host].update((b.interface, b.ofport) for b in fresh)

    def _ready_anyway(self) -> None:
        if not self.fabric.ready.is_set():
            missing = sorted(set(self.topology.hosts) - self._heard_from)
            LOG.warning("no OVSDB answer from %s after %.0fs: programming the others", missing, READY_TIMEOUT)
            self.fabric.ready.set()

    def _domain_event(self, event: DomainEvent) -> None:
        self.machines.domain_event(event)
        self.events.publish("vm", {"vm": event.domain, "host": event.host, "event": event.name,
                                   "state": event.state})
        if event.resumed:
            self.migrations.resumed(event.domain, event.host, event.received)
            self.switch_over.vm_resumed(event.domain, event.host, event.received)
        elif event.paused_for_migration:
            migration = self.migrations.running(event.domain)
            if migration is not None and migration.source == event.host:
                self.switch_over.source_paused(event.domain, migration.destination, event.received)

    # -- a new desired topology ---------------------------------------------------------------

    def apply_topology(self, text: str, filename: str, dry_run: bool = False) -> tuple[int, list[Change]]:
        """Check an edited topology file against what runs, write it to the database, and
        wait until the fabric follows; its generation and what changed."""
        with self._applying:
            running = {m.vm for m in self.migrations.list() if m.state == "running"}
            new, changes = checked_changes(self.topology, text, filename, self.store.view(),
                                         lambda vm: self.machines.state(vm).state, running)
            if dry_run or not changes:
                return self.generation, changes
            generation = self.northbound.load_topology(new, text)
            if not self.wait_for_generation(generation, APPLY_TIMEOUT):
                raise TopologyNotApplied(f"topology generation {generation} is in the database but the "
                                         f"controller did not apply it within {APPLY_TIMEOUT:.0f}s")
            return generation, changes

    def _northbound_changed(self, table: str) -> None:
        if table == "Topology":
            self._topology_wanted.set()

    def _follow_topology(self) -> None:
        """Make the fabric follow the database's topology whenever someone changes it."""
        while True:
            self._topology_wanted.wait()
            self._topology_wanted.clear()
            topology, generation = self.northbound.topology(), self.northbound.generation()
            if topology is not None and topology != self.topology:
                try:
                    self.use_topology(topology)
                except Exception as error:  # keep following: the next change may repair what this one broke
                    LOG.exception("applying topology generation %s failed", generation)
                    self.events.publish("topology", {"generation": generation, "applied": False,
                                                     "error": str(error)})
                else:
                    self.events.publish("topology", {"generation": generation, "applied": True,
                                                     "hosts": sorted(topology.hosts)})
            with self._topology_written:
                self.generation = max(self.generation, generation)
                self._topology_written.notify_all()

    def wait_for_generation(self, generation: int, timeout: float) -> bool:
        """Until the controller runs the database's topology of that generation (or a later one)."""
        deadline = time.monotonic() + timeout
        with self._topology_written:
            while self.generation < generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._topology_written.wait(remaining)
        return True

    def use_topology(self, topology: Topology) -> None:
        """Hosts, networks and guests came or went: follow, touching only what changed."""
        old = self.topology
        added = sorted(set(topology.hosts) - set(old.hosts))
        removed = sorted(set(old.hosts) - set(topology.hosts))
        self.endpoints = self._endpoints_of(topology)
        self.topology = topology
        self._owners = owner_names(topology)
        for host in added:
            self._marked[host] = set()
        self.machines.use_topology(topology)
        self.migrations.use_topology(topology, {h: e.migration_address for h, e in self.endpoints.items()})
        self.fabric.use_hosts(topology)
        self.fabric.apply(self.store.set_topology(topology))
        for host in removed:
            ovsdb = self.ovsdbs.pop(host, None)
            if ovsdb is not None:
                ovsdb.stop()
            hypervisor = self.hypervisors.pop(host, None)
            if hypervisor is not None:
                hypervisor.stop()
            self._heard_from.discard(host)
        for hypervisor in self._add_hypervisors(topology):
            threading.Thread(target=hypervisor.connect_forever, name=f"libvirt-{hypervisor.host}",
                             daemon=True).start()
        for host, ovsdb in list(self.ovsdbs.items()):
            try:
                ensure_tunnels(ovsdb.api, self._tunnel_remotes(host))
            except Exception as error:  # the host is away: its next attach makes the tunnels
                LOG.warning("host %s: tunnels not updated: %s", host, error)
        for host in added:
            self._attach_in_background(host)
        LOG.info("topology applied: hosts +%s -%s", added, removed)

    def _switched(self, event: SwitchedOver) -> None:
        self.migrations.switched(event)
        self.events.publish("switch-over", {"vm": event.vm, "host": event.host, "ports": list(event.ports),
                                            "trigger": event.trigger, "latency_ms": round(event.latency_ms, 2),
                                            "flow_mods": event.flow_mods})

    def _persist_migration(self, migration: Migration) -> None:
        report = migration.report()
        self.events.publish("migration", report)
        self.store.write(lambda: self.northbound.save_migration(migration.id, report))

    def _domain_files(self, host: str, vm: str) -> DomainFiles:
        image = cached_image()
        if image is None:
            raise MachineError("no guest image is built: `sdnvirt image build` makes it", 503)
        endpoint = self.endpoints[host]
        return DomainFiles(image.kernel, image.initramfs, endpoint.console_log(vm), endpoint.agent_socket(vm))

    def stop(self) -> None:
        for hypervisor in self.hypervisors.values():
            hypervisor.stop()
        if self.listener is not None:
            self.listener.stop()
        self.fabric.stop()
        for ovsdb in self.ovsdbs.values():
            ovsdb.stop()

    def status(self) -> dict:
        hosts = {}
        view = self.store.view()
        for host, sync in self.fabric.syncs.items():
            ovsdb = self.ovsdbs.get(host)
            ports = view.ports.get(host, HostPorts(host))
            hypervisor = self.hypervisors.get(host)
            hosts[host] = {
                "ovsdb_connected": bool(ovsdb and ovsdb.connected),
                "libvirt_connected": None if hypervisor is None else hypervisor.connected,
                "openflow_connected": sync.channel is not None,
                "in_sync": sync.in_sync,
                "sync_state": sync.state,
                "sync_error": sync.error,
                "bindings": len(ports.bindings),
                "tunnels": len(ports.tunnels),
                "syncs": sync.stats.syncs,
                "flow_mods_sent": sync.stats.flow_mods,
                "last_sync_flow_mods": sync.stats.last_flow_mods,
                "last_sync_ms": round(sync.stats.last_duration_ms, 3),
                "converge_ms": None if sync.stats.converge_ms is None else round(sync.stats.converge_ms, 3),
                "sync_failures": sync.stats.failures,
            }
        return {
            "topology": self.topology.name,
            "ready": self.fabric.ready.is_set(),
            "converged": all(h["openflow_connected"] and h["in_sync"] for h in hosts.values()),
            "uptime_s": round(time.time() - self.started_at, 1),
            "unknown_switches": self.fabric.unknown_switches,
            "switch_overs": vars(self.switch_over.counters),
            "northbound_writes": self.store.writer.status(),
            "hosts": hosts,
        }

    def flows(self, host: str) -> list[dict]:
        """The host's flows as the switch holds them now, with counters and owners."""
        channel = self.fabric.syncs[host].channel
        if channel is None:
            raise LookupError(f"host {host}'s bridge is not connected")
        entries = []
        for stats in sorted(channel.flow_stats(), key=lambda s: (s.table_id, -s.priority)):
            rule = read_flow(stats)
            entries.append({
                "table": table_name(self.pipeline, rule.table),
                "table_id": rule.table,
                "priority": rule.priority,
                "cookie": f"{rule.cookie:#018x}",
                "owner": self._owners.get(rule.cookie, "unknown"),
                "match": match_text(rule),
                "actions": instructions_text(rule, self.pipeline),
                "packets": stats.packet_count,
                "bytes": stats.byte_count,
            })
        return entries

    def bound_hosts(self, guest: str) -> list[str]:
        """The hosts where some NIC of the guest is bound now."""
        ports = {nic.port_id for nic in self.topology.guests[guest].nics}
        view = self.store.view()
        return sorted({b.host for p in view.ports.values() for b in p.bindings if b.port_id in ports})

    def port_security_drops(self) -> dict[str, dict[str, int]]:
        """Per host, per guest NIC: packets dropped for sending from a foreign MAC or IP."""
        violation = self.pipeline.table("port_security").priority("violation")
        drops: dict[str, dict[str, int]] = {}
        for host, sync in self.fabric.syncs.items():
            if sync.channel is None:
                continue
            drops[host] = {entry["owner"].removeprefix("port "): entry["packets"] for entry in self.flows(host)
                           if entry["table"] == "port_security" and entry["priority"] == violation}
        return drops
