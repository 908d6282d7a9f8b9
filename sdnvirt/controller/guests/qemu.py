"""The `qemu` guests of a topology, run through their hosts' libvirtds, all their life.

Each VM's state comes from libvirt's lifecycle events and from a look at every
domain whenever a libvirtd (re)connects, so `vm list` shows what the
hypervisors say, and since when, also after a connection was down. That look
also reconciles the host with the desired state: a domain of this topology that
is no longer in it (a change applied while the controller was down) is
destroyed and undefined, and a stopped one whose NICs changed is undefined, so
its next start defines it anew. Every operation either completes or leaves
nothing behind: a domain that cannot start is undefined again.
"""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import libvirt

from sdnvirt.compute.agent import AgentError, CommandResult, GuestAgent
from sdnvirt.compute.domain import DomainFiles, domain_xml
from sdnvirt.compute.hypervisor import DomainEvent, Hypervisor, libvirt_errors
from sdnvirt.controller.guests.kind import GuestState, Kind
from sdnvirt.controller.guests.qemu_moves import QemuMoves
from sdnvirt.controller.migration.move import MoveSteps
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State
from sdnvirt.errors import Conflict, Failed, Insufficient, NotFound, TimedOut, Unavailable
from sdnvirt.model.topology import Guest, GuestKind, Topology, guest_uuid

LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 30.0
REBOOT_TIMEOUT = 60.0
START_TIMEOUT = 30.0
SAVE_TIMEOUT = 120.0
BOOT_ID = "/proc/sys/kernel/random/boot_id"
MEMORY_MARGIN_MIB = 64  # QEMU's own overhead beyond the guest's memory
POLL = 0.05
CONSOLE_TAIL_BYTES = 1 << 20  # what is read of a console log, at most, from its end
AGENT_POWEROFF_WAIT = 3.0  # seconds for a guest whose agent took the poweroff to be off, before ACPI
AGENT_QUEUE_WAIT = 5.0  # seconds a request waits, beyond its own timeout, for the VM's agent to be free


def _after_reply(command: str) -> list[str]:
    """A command the guest runs just after its agent has answered (it stops the agent too)."""
    return ["sh", "-c", f"(sleep 0.2; {command}) </dev/null >/dev/null 2>&1 &"]


class QemuGuests(Kind):
    kind = GuestKind.QEMU
    migration_kinds = ("live", "offline")

    def __init__(self, topology: Topology, hypervisors: dict[str, Hypervisor],
                 files: Callable[[str, str], DomainFiles], addresses: Callable[[], dict[str, str]],
                 publish: Callable[[dict], None]):
        self.topology = topology
        self.hypervisors = hypervisors
        self._files = files  # (host, vm) -> where that VM's files are on that host
        self._publish = publish  # something happened to a VM that no libvirt event says
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._agent_locks = {name: threading.Lock() for name in self._names()}
        now = time.time()
        self._states = {name: GuestState(name, None, "absent", now) for name in self._names()}
        self._seen: dict[str, dict[str, str]] = {}  # vm -> host -> state libvirt last gave there
        self._moves = QemuMoves(self, files, addresses)

    def _names(self) -> list[str]:
        return [name for name, g in self.topology.guests.items() if g.kind == GuestKind.QEMU]

    def use_topology(self, topology: Topology) -> None:
        """VMs came or went. A VM gone is destroyed and undefined wherever it is; a VM whose
        definition changed (its NICs) is undefined while off, so its next start defines it anew."""
        old, self.topology = self.topology, topology
        now = time.time()
        with self._lock:
            for name in self._names():
                self._agent_locks.setdefault(name, threading.Lock())
                self._states.setdefault(name, GuestState(name, None, "absent", now))
        for name, guest in old.guests.items():
            if guest.kind != GuestKind.QEMU or topology.guests.get(name) == guest:
                continue
            self._undefine_everywhere(name)
            if name not in topology.guests:
                with self._lock:
                    self._states.pop(name, None)
                    self._seen.pop(name, None)
                    self._agent_locks.pop(name, None)

    def _undefine_everywhere(self, name: str) -> None:
        with self._lock:
            hosts = list(self._seen.get(name, {}))
        for host in hosts:
            hypervisor = self.hypervisors.get(host)
            try:
                domain = hypervisor.domain(name) if hypervisor is not None and hypervisor.connected else None
                if domain is not None:
                    _remove(domain, name)
            except (Unavailable, Failed) as error:  # the host is away: its next connection reconciles it
                LOG.warning("vm %s on %s not undefined: %s", name, host, error)

    # -- what the hypervisors say -------------------------------------------------------------

    def domain_event(self, event: DomainEvent) -> None:
        """Called for every lifecycle event and reboot of a domain of any host.

        During a migration the domain exists on two hosts (running on one, an incoming copy
        paused on the other) and their events interleave; the VM is where it runs, or else
        where it is paused, or else where it was seen last.
        """
        with self._changed:
            if event.domain not in self._states:
                return
            if event.rebooted:  # asked for, or the guest's kernel panicked (it boots with panic=-1)
                LOG.info("vm %s rebooted on %s", event.domain, event.host)
            seen = self._seen.setdefault(event.domain, {})
            seen.pop(event.host, None)
            if event.state != "undefined":
                state = event.state
                if state == "shut-off" and self._has_saved_image(event.host, event.domain):
                    state = "saved"
                seen[event.host] = state  # last inserted = seen last
            self._settle_state(event.domain)

    def _settle_state(self, name: str) -> None:
        """The VM's one state, from what each host last said; callers hold the lock."""
        host, state = _where(self._seen.get(name, {}))
        current = self._states[name]
        if (current.state, current.host) != (state, host):
            self._states[name] = GuestState(name, host, state, time.time())
            LOG.info("vm %s: %s on %s", name, state, host)
        self._changed.notify_all()

    def host_connected(self, host: str, domains: list[DomainEvent]) -> None:
        """A libvirtd (re)connected and listed its domains: that is what the host has now. A VM
        seen there before that is not listed vanished while the connection was down. Domains of
        this topology that it no longer has, or that changed while off, are removed."""
        listed = {event.domain for event in domains}
        for event in domains:
            self._reconcile(host, event)
        with self._changed:
            vanished = [name for name, seen in self._seen.items() if host in seen and name not in listed]
            for name in vanished:
                del self._seen[name][host]
                self._settle_state(name)
        for name in vanished:
            LOG.warning("vm %s vanished from %s while its libvirtd was not connected", name, host)
            self._publish({"vm": name, "host": host, "event": "vanished", "state": self.state(name).state})
        for event in domains:
            self.domain_event(event)

    def _reconcile(self, host: str, event: DomainEvent) -> None:
        """Remove a domain of this topology that the desired state no longer has (or has with
        other NICs while it is off). A domain that is not this topology's is left alone."""
        guest = self.topology.guests.get(event.domain)
        ours = event.uuid == guest_uuid(self.topology.name, event.domain)
        if not ours or (guest is not None and guest.kind == GuestKind.QEMU and event.state != "shut-off"):
            return
        hypervisor = self.hypervisors[host]
        try:
            domain = hypervisor.domain(event.domain)
            if domain is None:
                return
            if guest is None or guest.kind != GuestKind.QEMU:
                LOG.warning("vm %s on %s is no longer in the topology: removing it", event.domain, host)
                _remove(domain, event.domain)
            elif _nics_of(domain) != {(nic.port_id, str(nic.mac).lower()) for nic in guest.nics}:
                LOG.info("vm %s on %s: its NICs changed while it was off: undefined", event.domain, host)
                _remove(domain, event.domain)
        except (Unavailable, Failed) as error:
            LOG.warning("vm %s on %s not reconciled: %s", event.domain, host, error)

    def _has_saved_image(self, host: str, name: str) -> bool:
        try:
            domain = self.hypervisors[host].domain(name)
            return bool(domain and domain.hasManagedSaveImage())
        except (Unavailable, libvirt.libvirtError):
            return False

    def state(self, name: str) -> GuestState:
        self._guest(name)
        with self._lock:
            return self._states[name]

    def wait_for(self, name: str, states: set[str], timeout: float) -> GuestState:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._states[name].state not in states:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimedOut(f"vm {name} is still {self._states[name].state} after {timeout:.0f}s "
                                   f"(waited for {' or '.join(sorted(states))})", "vm")
                self._changed.wait(remaining)
            return self._states[name]

    # -- operations ---------------------------------------------------------------------------

    def _guest(self, name: str) -> Guest:
        guest = self.topology.guests.get(name)
        if guest is None or guest.kind != GuestKind.QEMU:
            raise NotFound(f"no qemu guest named {name!r}", "vm")
        return guest

    def located(self, name: str) -> tuple[Hypervisor, libvirt.virDomain]:
        state = self.state(name)
        if state.host is None:
            raise Conflict(f"vm {name} is not defined on any host; start it first", "vm")
        hypervisor = self.hypervisor(state.host)
        domain = hypervisor.domain(name)
        if domain is None:
            raise Conflict(f"vm {name} is gone from host {state.host}", "vm")
        return hypervisor, domain

    def hypervisor(self, host: str) -> Hypervisor:
        hypervisor = self.hypervisors[host]
        hypervisor.connection()  # Unavailable when its libvirtd is away
        return hypervisor

    def start(self, name: str) -> GuestState:
        guest = self._guest(name)
        current = self.state(name)
        if current.state in ("running", "paused"):
            raise Conflict(f"vm {name} is already {current.state} on {current.host}", "vm")
        host = current.host or guest.host
        hypervisor = self.hypervisor(host)
        free = hypervisor.free_memory_mib()
        if free < guest.memory + MEMORY_MARGIN_MIB:
            raise Insufficient(f"host {host} cannot give vm {name} {guest.memory} MiB: {free} MiB free", "vm")
        domain = hypervisor.domain(name)
        defined_here = domain is None
        try:
            if domain is None:
                domain = hypervisor.connection().defineXML(domain_xml(self.topology, guest, self._files(host, name)))
            domain.create()
        except libvirt.libvirtError as error:
            if defined_here and domain is not None:
                with libvirt_errors(name):
                    domain.undefine()
            raise Failed(f"vm {name} did not start on {host}: {error.get_error_message()}", "vm") from None
        return self.wait_for(name, {"running"}, timeout=START_TIMEOUT)

    def shutdown(self, name: str, timeout: float = SHUTDOWN_TIMEOUT) -> GuestState:
        """A clean power-off by the guest itself, waited for; never a silent destroy."""
        _, domain = self.located(name)
        if self.state(name).state != "running":
            raise Conflict(f"vm {name} is {self.state(name).state}, not running", "vm")
        try:
            self._agent_call(name, _after_reply("poweroff -f"), timeout=5)
            asked = True
        except (AgentError, Conflict, Unavailable):
            asked = False  # then ACPI at once
        if not (asked and self._off_within(name, AGENT_POWEROFF_WAIT)):
            with libvirt_errors(name):
                if domain.isActive():
                    domain.shutdown()  # ACPI, for a guest whose agent does not answer
        try:
            return self.wait_for(name, {"shut-off"}, timeout)
        except TimedOut:
            raise TimedOut(f"vm {name} did not power off within {timeout:.0f}s; it is still running "
                           f"(`sdnvirt vm destroy {name}` stops it hard)", "vm") from None

    def _off_within(self, name: str, seconds: float) -> bool:
        try:
            self.wait_for(name, {"shut-off"}, seconds)
            return True
        except TimedOut:
            return False

    def destroy(self, name: str) -> GuestState:
        _, domain = self.located(name)
        with libvirt_errors(name):
            if domain.isActive():
                domain.destroy()
        return self.wait_for(name, {"shut-off", "saved"}, timeout=START_TIMEOUT)

    def reboot(self, name: str, timeout: float = REBOOT_TIMEOUT) -> GuestState:
        """The guest reboots itself; answered once it runs its agent again (a new boot id).

        A guest whose agent does not answer is reset instead.
        """
        _, domain = self.located(name)
        try:
            before = self._agent_call(name, ["cat", BOOT_ID], timeout=5).output
        except AgentError:
            with libvirt_errors(name):
                domain.reset(0)
            return self.state(name)
        self._agent_call(name, _after_reply("reboot -f"), timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._agent_call(name, ["cat", BOOT_ID], timeout=2).output != before:
                    return self.state(name)
            except AgentError:
                time.sleep(POLL)
        raise TimedOut(f"vm {name} did not come back from its reboot within {timeout:.0f}s", "vm")

    def suspend(self, name: str) -> GuestState:
        _, domain = self.located(name)
        with libvirt_errors(name):
            domain.suspend()
        return self.wait_for(name, {"paused"}, timeout=10)

    def resume(self, name: str) -> GuestState:
        _, domain = self.located(name)
        with libvirt_errors(name):
            domain.resume()
        return self.wait_for(name, {"running"}, timeout=10)

    def save(self, name: str) -> GuestState:
        """Suspend to disk (libvirt's managed save): memory goes to a file, QEMU exits."""
        _, domain = self.located(name)
        with libvirt_errors(name):
            domain.managedSave(0)
        return self.wait_for(name, {"saved"}, timeout=SAVE_TIMEOUT)

    def restore(self, name: str) -> GuestState:
        _, domain = self.located(name)
        with libvirt_errors(name):
            saved = domain.hasManagedSaveImage()
        if not saved:
            raise Conflict(f"vm {name} has no saved state to restore", "vm")
        with libvirt_errors(name):
            domain.create()
        return self.wait_for(name, {"running"}, timeout=SAVE_TIMEOUT)

    def actions(self) -> dict[str, Callable[[str], GuestState]]:
        return {"destroy": self.destroy, "reboot": self.reboot, "suspend": self.suspend, "resume": self.resume,
                "save": self.save, "restore": self.restore}

    def nics_locked(self, name: str) -> str | None:
        """A VM's NICs are hardware: they change only while it is off."""
        state = self.state(name).state
        return state if state in ("running", "paused") else None

    def console(self, name: str, lines: int) -> str:
        """The last lines of the VM's serial console, read from the end of its log."""
        state = self.state(name)
        return _tail(self._files(state.host or self._guest(name).host, name).console_log, lines)

    def exec(self, name: str, command: list[str], timeout: float) -> CommandResult:
        if self.state(name).state != "running":
            raise Conflict(f"vm {name} is {self.state(name).state}, not running", "vm")
        return self._agent_call(name, command, timeout)

    def _agent_call(self, name: str, command: list[str], timeout: float) -> CommandResult:
        state = self.state(name)
        socket = self._files(state.host, name).agent_socket
        # QEMU serves one client per channel: requests to one VM take turns.
        if not self._agent_locks[name].acquire(timeout=timeout + AGENT_QUEUE_WAIT):
            raise Unavailable(f"vm {name}'s agent is busy", "vm")
        try:
            with GuestAgent(socket) as agent:
                return agent.exec(command, timeout=timeout)
        finally:
            self._agent_locks[name].release()

    # -- moving (see qemu_moves.py) -----------------------------------------------------------

    def where(self, name: str, migration_kind: str) -> str:
        return self._moves.where(name, migration_kind)

    def check_move(self, migration: Migration) -> None:
        self._moves.check_move(migration)

    def move(self, migration: Migration, steps: MoveSteps) -> None:
        self._moves.move(migration, steps)

    def cancel_move(self, migration: Migration) -> None:
        self._moves.cancel_move(migration)

    def settle(self, migration: Migration) -> State | None:
        return self._moves.settle(migration)


def _remove(domain: libvirt.virDomain, name: str) -> None:
    with libvirt_errors(name):
        if domain.isActive():
            domain.destroy()
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


def _nics_of(domain: libvirt.virDomain) -> set[tuple[str, str]]:
    """(logical port, MAC) of each interface in a domain's definition."""
    root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    nics = set()
    for interface in root.findall("./devices/interface"):
        port = interface.find("./virtualport/parameters")
        mac = interface.find("./mac")
        nics.add((port.get("interfaceid", "") if port is not None else "",
                  mac.get("address", "").lower() if mac is not None else ""))
    return nics


def _where(seen: dict[str, str]) -> tuple[str | None, str]:
    for wanted in ("running", "paused"):
        hosts = [h for h, state in seen.items() if state == wanted]
        if hosts:
            return hosts[-1], wanted
    if seen:
        host = list(seen)[-1]
        return host, seen[host]
    return None, "absent"


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a file, reading at most CONSOLE_TAIL_BYTES from its end."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(0, size - CONSOLE_TAIL_BYTES))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
