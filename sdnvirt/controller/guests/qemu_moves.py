"""Moving a `qemu` guest: libvirt's live migration, peer to peer, or a cold move.

The network needs no orders from here during a live move: libvirt plugs the
destination port (the controller programs it, and libvirt's hook lets QEMU run
only then: the migration is copying from that moment), the source pausing the
VM switches the fabric over, and libvirt unplugs the source port when it is
done. A failed or cancelled live move never switched, or is switched back when
the VM resumes on the source; the destination's port goes with its QEMU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import libvirt

from sdnvirt.compute.domain import DomainFiles, rehome
from sdnvirt.compute.hypervisor import Hypervisor, libvirt_errors
from sdnvirt.compute.live_migration import completed_job, job_active, migrate_live
from sdnvirt.controller.guests.kind import GuestState
from sdnvirt.controller.migration.move import MoveCancelled, MoveRolledBack, MoveSteps
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State
from sdnvirt.errors import Conflict, Failed, SdnvirtError

LIVE_STATES = ("running", "paused")


class VmLives(Protocol):
    """What a move needs of the VMs' lives (QemuGuests)."""

    def state(self, name: str) -> GuestState: ...

    def hypervisor(self, host: str) -> Hypervisor: ...

    def start(self, name: str) -> GuestState: ...

    def shutdown(self, name: str) -> GuestState: ...


class QemuMoves:
    def __init__(self, guests: VmLives, files: Callable[[str, str], DomainFiles],
                 addresses: Callable[[], dict[str, str]]):
        self._guests = guests
        self._files = files
        self._addresses = addresses  # host -> where its libvirtd and QEMU take a migration

    def where(self, name: str, migration_kind: str) -> str:
        state = self._guests.state(name)
        if migration_kind == "live" and state.state not in LIVE_STATES:
            raise Conflict(f"vm {name} is {state.state}; only a running VM migrates live", "vm")
        if state.host is None:
            raise Conflict(f"vm {name} is not defined on any host; start it first", "vm")
        return state.host

    def check_move(self, migration: Migration) -> None:
        self._guests.hypervisor(migration.source)
        self._guests.hypervisor(migration.destination)

    def move(self, migration: Migration, steps: MoveSteps) -> None:
        if migration.kind == "offline":
            self._offline(migration, steps)
        else:
            self._live(migration, steps)

    def _live(self, migration: Migration, steps: MoveSteps) -> None:
        vm, destination = migration.vm, migration.destination
        steps.enter(State.PREPARING)
        domain = self._domain(migration.source, vm)
        address = self._addresses()[destination]
        files = self._files(destination, vm)
        steps.check_cancel()
        began = time.monotonic()
        try:
            # Copying begins once the destination port is programmed, switching when the
            # source pauses the VM: the driver hears of both from the hosts.
            migrate_live(domain, address, files)
        except libvirt.libvirtError as error:
            if steps.cancel.is_set():
                raise MoveCancelled(error.get_error_message()) from None
            raise Failed(f"vm {vm}: {error.get_error_message()}", "vm") from None
        migration.total_ms = round((time.monotonic() - began) * 1000, 1)
        steps.enter(State.SWITCHING)  # it runs on the destination: whatever signal was missed
        try:
            migration.hypervisor = completed_job(self._domain(destination, vm))
        except (SdnvirtError, libvirt.libvirtError):
            migration.hypervisor = {}  # the move is done; only libvirt's figures are missing
        migration.hypervisor_downtime_ms = migration.hypervisor.get("downtime")
        migration.total_ms = migration.hypervisor.get("time_elapsed", migration.total_ms)

    def _offline(self, migration: Migration, steps: MoveSteps) -> None:
        """Shut down, define on the destination, start there; started again on the source if
        the destination will not run it."""
        vm, source, destination = migration.vm, migration.source, migration.destination
        began = time.monotonic()
        steps.enter(State.PREPARING)
        stopped = self._guests.state(vm).state in LIVE_STATES
        if stopped:
            self._guests.shutdown(vm)
        try:
            steps.check_cancel()
            steps.enter(State.COPYING)
            domain = self._domain(source, vm)
            xml = rehome(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), self._files(destination, vm))
            target = self._guests.hypervisor(destination).connection()
            with libvirt_errors(vm):
                moved = target.defineXML(xml)
            steps.enter(State.SWITCHING)
            try:
                with libvirt_errors(vm):
                    moved.create()
            except Failed:
                with libvirt_errors(vm):
                    moved.undefine()
                raise
            with libvirt_errors(vm):
                domain.undefine()
        except BaseException as error:
            if not stopped:
                raise
            self._guests.start(vm)  # back where it was (its definition is still there)
            raise MoveRolledBack(f"{error}; vm {vm} was started again on {source}") from error
        migration.total_ms = round((time.monotonic() - began) * 1000, 1)

    def cancel_move(self, migration: Migration) -> None:
        """libvirt stops a live migration's job on the source (an offline move stops at its next step)."""
        if migration.kind != "live":
            return
        try:
            self._domain(migration.source, migration.vm).abortJob()
        except (SdnvirtError, libvirt.libvirtError):
            pass  # no job (any more): the move ends on its own, one way or the other

    def settle(self, migration: Migration) -> State | None:
        """How the hosts say it ended: not yet while either host runs a job for the VM (the
        source sending, the destination taking it in); then where the VM runs."""
        for host in (migration.source, migration.destination):
            try:
                domain = self._guests.hypervisor(host).domain(migration.vm)
                if domain is not None and job_active(domain):
                    return None
            except (SdnvirtError, libvirt.libvirtError):
                return None  # the host cannot say yet
        state = self._guests.state(migration.vm)
        if state.state not in LIVE_STATES:
            return None
        if state.host == migration.destination:
            return State.COMPLETED
        if state.host == migration.source:
            return State.CANCELLED if migration.cancel_requested else State.FAILED
        return None

    def _domain(self, host: str, vm: str) -> libvirt.virDomain:
        domain = self._guests.hypervisor(host).domain(vm)
        if domain is None:
            raise Conflict(f"vm {vm} is not on {host}", "vm")
        return domain

