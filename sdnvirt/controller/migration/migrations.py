"""Migrations: moving a VM to another host, live or cold, with a report for each.

The hypervisor side of a qemu guest's live migration is libvirt's, peer to
peer between the two hosts' libvirtds over the underlay. The network side
needs no orders from here: libvirt plugs the destination port (the
controller programs it, and libvirt's hook waits until it has), the
switch-over follows the VM's announcement or libvirt's resume event, and the
source port goes when libvirt unplugs it. A failed or cancelled migration
never switches, and the destination's port goes with its QEMU.

A netns guest is moved by the lab (it owns the namespaces); the controller
keeps its record and report the same way.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field

import libvirt

from sdnvirt.compute.domain import DomainFiles, rehome
from sdnvirt.compute.hypervisor import Hypervisor, HypervisorError
from sdnvirt.compute.live_migration import completed_job, migrate_live
from sdnvirt.compute.machines import MachineError, Machines
from sdnvirt.controller.migration.switchover import SwitchedOver, SwitchOver
from sdnvirt.controller.state import FabricView
from sdnvirt.model.topology import GuestKind, Topology

LOG = logging.getLogger(__name__)
SWITCH_OVER_WAIT = 5.0  # seconds a completed migration waits for its switch-over signal
SWITCH_OVER_QUEUE_WAIT = 30.0  # seconds an ordered switch-over may wait behind others (a storm)
RECOVERY_TIMEOUT = 300.0  # seconds a restarted controller waits for a migration it found under way
RECOVERY_POLL = 0.5  # seconds after libvirt finished, for the switch-over signal


class MigrationError(MachineError):
    pass


@dataclass
class Migration:
    id: int
    vm: str
    source: str
    destination: str
    kind: str  # "live" | "offline" | "netns"
    state: str = "running"  # running, completed, failed, cancelled
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    hypervisor_downtime_ms: float | None = None
    total_ms: float | None = None
    switchover_ms: float | None = None
    switchover_flow_mods: int | None = None
    trigger: str | None = None
    probe: dict | None = None
    hypervisor: dict | None = None  # libvirt's own figures for the job
    resumed_at: float | None = None  # time.monotonic(): libvirt says the VM runs on the destination
    switched_at: float | None = None  # time.monotonic(): every bridge points at the destination

    @property
    def switchover_after_resume_ms(self) -> float | None:
        """What the network added to the downtime (negative: the flows were ready first)."""
        if self.resumed_at is None or self.switched_at is None:
            return None
        return round((self.switched_at - self.resumed_at) * 1000, 3)

    @classmethod
    def from_report(cls, report: dict) -> Migration:
        """A migration as its report, kept in the database, tells it."""
        probe = {key: report.get(f"probe_{key}") for key in ("sent", "lost", "duplicates", "max_gap_ms",
                                                                "interval_ms")}
        return cls(report["id"], report["vm"], report["from"], report["to"], report["kind"], report["result"],
                   report["started_at"], report["finished_at"], report["error"], report["hypervisor_downtime_ms"],
                   report["total_ms"], report["switchover_ms"], report["switchover_flow_mods"], report["trigger"],
                   probe if probe["sent"] is not None else None, report["hypervisor"])

    def report(self) -> dict:
        probe = self.probe or {}
        return {
            "id": self.id, "vm": self.vm, "from": self.source, "to": self.destination, "kind": self.kind,
            "result": self.state, "error": self.error, "started_at": self.started_at,
            "finished_at": self.finished_at, "hypervisor_downtime_ms": self.hypervisor_downtime_ms,
            "total_ms": self.total_ms, "switchover_ms": self.switchover_ms,
            "switchover_flow_mods": self.switchover_flow_mods, "trigger": self.trigger,
            "switchover_after_resume_ms": self.switchover_after_resume_ms,
            "probe_sent": probe.get("sent"), "probe_lost": probe.get("lost"),
            "probe_duplicates": probe.get("duplicates"), "probe_max_gap_ms": probe.get("max_gap_ms"),
            "probe_interval_ms": probe.get("interval_ms"), "hypervisor": self.hypervisor,
        }


class Migrations:
    def __init__(self, topology: Topology, machines: Machines, hypervisors: dict[str, Hypervisor],
                 files: Callable[[str, str], DomainFiles], addresses: dict[str, str], switch_over: SwitchOver,
                 view: Callable[[], FabricView], history: list[dict], persist: Callable[[Migration], None]):
        self.topology = topology
        self._view = view  # the fabric now: where each port is bound and active
        self.machines = machines
        self.hypervisors = hypervisors
        self._files = files
        self._addresses = addresses  # host -> migration address
        self.switch_over = switch_over
        self._persist = persist  # into the northbound database, at every change of state
        self._lock = threading.Condition()
        self._all: dict[int, Migration] = {r["id"]: Migration.from_report(r) for r in history}
        self._ids = itertools.count(max(self._all, default=0) + 1)

    def use_topology(self, topology: Topology, addresses: dict[str, str]) -> None:
        self.topology = topology
        self._addresses = addresses

    # -- records --------------------------------------------------------------------------------

    def list(self) -> list[Migration]:
        with self._lock:
            return list(self._all.values())

    def get(self, migration_id: int) -> Migration:
        with self._lock:
            migration = self._all.get(migration_id)
        if migration is None:
            raise MigrationError(f"no migration {migration_id}", 404)
        return migration

    def running(self, vm: str) -> Migration | None:
        with self._lock:
            return next((m for m in self._all.values() if m.vm == vm and m.state == "running"), None)

    def attach_probe(self, migration_id: int, probe: dict) -> Migration:
        migration = self.get(migration_id)
        with self._lock:
            migration.probe = probe
        self._persist(migration)
        return migration

    def switched(self, event: SwitchedOver) -> None:
        """From the switch-over: the first one during a VM's migration is that migration's."""
        with self._lock:
            migration = next((m for m in self._all.values()
                              if m.vm == event.vm and m.state == "running" and m.trigger is None
                              and event.host == m.destination), None)
            if migration is not None:
                migration.trigger = event.trigger
                migration.switchover_ms = round(event.latency_ms, 3)
                migration.switchover_flow_mods = event.flow_mods
                migration.switched_at = event.completed
            self._lock.notify_all()
        if migration is not None:
            self._persist(migration)

    def resumed(self, vm: str, host: str, at: float) -> None:
        """From libvirt: the VM runs on `host` after a migration."""
        with self._lock:
            migration = next((m for m in self._all.values()
                              if m.vm == vm and m.state == "running" and m.destination == host), None)
            if migration is not None and migration.resumed_at is None:
                migration.resumed_at = at

    # -- starting and ending -------------------------------------------------------------------

    def start(self, vm: str, destination: str, offline: bool = False) -> Migration:
        guest = self.topology.guests.get(vm)
        if guest is None:
            raise MigrationError(f"no guest named {vm!r}", 404)
        if destination not in self.topology.hosts:
            raise MigrationError(f"no host named {destination!r}", 404)
        if self.running(vm) is not None:
            raise MigrationError(f"vm {vm} is migrating already")
        if guest.kind == GuestKind.NETNS:
            source, kind = self._view().active.get(guest.nics[0].port_id), "netns"
            if source is None:
                raise MigrationError(f"vm {vm} is not bound anywhere")
        else:
            state = self.machines.state(vm)
            if state.state not in ("running", "paused") and not (offline and state.host):
                raise MigrationError(f"vm {vm} is {state.state}; only a running VM migrates live")
            source, kind = state.host, "offline" if offline else "live"
        if source == destination:
            raise MigrationError(f"vm {vm} is on {destination} already")
        with self._lock:
            migration = Migration(next(self._ids), vm, source, destination, kind)
            self._all[migration.id] = migration
        self._persist(migration)
        if kind != "netns":
            run = self._live if kind == "live" else self._offline
            threading.Thread(target=self._guarded, args=(migration, run), name=f"migrate-{vm}",
                             daemon=True).start()
        return migration

    def finish_netns(self, migration_id: int, result: str, downtime_ms: float | None, total_ms: float | None,
                     error: str | None = None) -> Migration:
        """The lab moved a netns guest (or failed to): complete its record."""
        migration = self.get(migration_id)
        if migration.kind != "netns" or migration.state != "running":
            raise MigrationError(f"migration {migration_id} is not a netns migration under way")
        migration.hypervisor_downtime_ms, migration.total_ms = downtime_ms, total_ms
        if result == "completed":
            self._await_switch_over(migration)
        self._finish(migration, result, error)
        return migration

    def switch(self, migration_id: int) -> Migration:
        """The lab is about to move a netns guest: point every bridge at the destination first,
        as the source's pause does for a VM (what reaches the new port then waits for the guest)."""
        migration = self.get(migration_id)
        if migration.kind != "netns" or migration.state != "running":
            raise MigrationError(f"migration {migration_id} is not a netns migration under way")
        self._switch_now(migration, "lab-switch")
        return migration

    def wait(self, migration_id: int, timeout: float) -> Migration:
        deadline = time.monotonic() + timeout
        migration = self.get(migration_id)
        with self._lock:
            while migration.state == "running" and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
        return migration

    def cancel(self, vm: str) -> Migration:
        migration = self.running(vm)
        if migration is None:
            raise MigrationError(f"vm {vm} is not migrating")
        if migration.kind != "live":
            raise MigrationError(f"a {migration.kind} migration cannot be cancelled half-way")
        domain = self._domain(migration.source, vm)
        try:
            domain.abortJob()
        except libvirt.libvirtError as error:
            raise MigrationError(f"vm {vm}: cannot cancel: {error.get_error_message()}") from None
        return migration

    def _guarded(self, migration: Migration, run: Callable[[Migration], None]) -> None:
        try:
            run(migration)
        except (MachineError, HypervisorError, libvirt.libvirtError) as error:
            message = error.get_error_message() if isinstance(error, libvirt.libvirtError) else str(error)
            cancelled = isinstance(error, libvirt.libvirtError) and "cancel" in message.lower()
            LOG.warning("vm %s: migration to %s %s: %s", migration.vm, migration.destination,
                        "cancelled" if cancelled else "failed", message)
            self._finish(migration, "cancelled" if cancelled else "failed", message)

    def _live(self, migration: Migration) -> None:
        vm, destination = migration.vm, migration.destination
        began = time.monotonic()
        migrate_live(self._domain(migration.source, vm), self._addresses[destination],
                     self._files(destination, vm))
        migration.total_ms = round((time.monotonic() - began) * 1000, 1)
        migration.hypervisor = completed_job(self._domain(destination, vm))
        migration.hypervisor_downtime_ms = migration.hypervisor.get("downtime")
        migration.total_ms = migration.hypervisor.get("time_elapsed", migration.total_ms)
        self._await_switch_over(migration)
        self._finish(migration, "completed")

    def _offline(self, migration: Migration) -> None:
        """Shut down, move the definition, start on the destination; back on the source if it fails."""
        vm, source, destination = migration.vm, migration.source, migration.destination
        began = time.monotonic()
        if self.machines.state(vm).state in ("running", "paused"):
            self.machines.shutdown(vm)
        domain = self._domain(source, vm)
        xml = rehome(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), self._files(destination, vm))
        target = self.hypervisors[destination].connection()
        moved = target.defineXML(xml)
        try:
            moved.create()
        except libvirt.libvirtError:
            moved.undefine()
            self.machines.start(vm)
            raise
        domain.undefine()
        migration.total_ms = round((time.monotonic() - began) * 1000, 1)
        self._finish(migration, "completed")

    def _await_switch_over(self, migration: Migration) -> None:
        """The switch-over normally came before libvirt returned; if no signal did, switch now."""
        deadline = time.monotonic() + SWITCH_OVER_WAIT
        with self._lock:
            while migration.trigger is None and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
        if migration.trigger is None:
            self._switch_now(migration, "migration-completed")

    def _switch_now(self, migration: Migration, trigger: str) -> None:
        try:
            self.switch_over.now(migration.vm, migration.destination, trigger).result(timeout=SWITCH_OVER_QUEUE_WAIT)
        except FutureTimeout:
            raise MigrationError(f"vm {migration.vm}: the fabric did not switch over to {migration.destination} "
                                 f"within {SWITCH_OVER_QUEUE_WAIT:.0f} s", 504) from None
        except Exception as error:  # raised on the switch-over thread, logged there
            raise MigrationError(f"vm {migration.vm}: switch-over to {migration.destination} failed: {error}",
                                 502) from None

    def recover(self) -> None:
        """Finish or roll back every migration a previous controller left under way."""
        for migration in [m for m in self.list() if m.state == "running"]:
            threading.Thread(target=self._recover, args=(migration,), name=f"recover-{migration.vm}",
                             daemon=True).start()

    def _recover(self, migration: Migration) -> None:
        """Wait until the hypervisors (or the lab) settle where the VM runs; then that is the
        migration's outcome. libvirt goes on with a migration its caller left."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            host = self._settled_host(migration)
            if host == migration.destination:
                self.switch_over.now(migration.vm, host, "recovered").result(timeout=SWITCH_OVER_WAIT)
                self._finish(migration, "completed", "finished by a restarted controller")
                return
            if host == migration.source:
                self._finish(migration, "failed", "rolled back: the VM stayed on the source while the "
                                                  "controller restarted")
                return
            time.sleep(RECOVERY_POLL)
        self._finish(migration, "failed", f"still undecided {RECOVERY_TIMEOUT:.0f}s after a controller restart")

    def _settled_host(self, migration: Migration) -> str | None:
        """Where the VM runs, once no migration job moves it; None while that is not known."""
        if migration.kind == "netns":
            port = self.topology.guests[migration.vm].nics[0].port_id
            bound = set(self._view().placements.get(port, {}))
            return bound.pop() if len(bound) == 1 else None
        state = self.machines.state(migration.vm)
        if state.state != "running" or state.host is None:
            return None
        try:
            busy = self._domain(state.host, migration.vm).jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE
        except (MachineError, HypervisorError, libvirt.libvirtError):
            return None
        return None if busy else state.host

    def _domain(self, host: str, vm: str) -> libvirt.virDomain:
        domain = self.hypervisors[host].domain(vm)
        if domain is None:
            raise MigrationError(f"vm {vm} is not on {host}")
        return domain

    def _finish(self, migration: Migration, result: str, error: str | None = None) -> None:
        with self._lock:
            migration.state = result
            migration.error = error
            migration.finished_at = time.time()
            self._lock.notify_all()
        self._persist(migration)
        LOG.info("migration %d: %s", migration.id, asdict(migration))
