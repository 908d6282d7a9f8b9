"""The `qemu` guests of a topology, run through their hosts' libvirtds, all their life.

Each VM's state comes from libvirt's lifecycle events (and a look at every
domain when a libvirtd connects), so `vm list` shows what the hypervisors
say, and since when. Every operation either completes or leaves nothing
behind: a domain that cannot start is undefined again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libvirt

from sdnvirt.compute.agent import AgentError, AgentResult, GuestAgent
from sdnvirt.compute.domain import DomainFiles, domain_xml
from sdnvirt.compute.hypervisor import DomainEvent, Hypervisor, HypervisorError
from sdnvirt.model.topology import Guest, GuestKind, Topology

LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT = 30.0
REBOOT_TIMEOUT = 60.0
BOOT_ID = "/proc/sys/kernel/random/boot_id"
MEMORY_MARGIN_MIB = 64  # QEMU's own overhead beyond the guest's memory
POLL = 0.05


def _after_reply(command: str) -> list[str]:
    """A command the guest runs just after its agent has answered (it stops the agent too)."""
    return ["sh", "-c", f"(sleep 0.2; {command}) </dev/null >/dev/null 2>&1 &"]


@contextmanager
def libvirt_errors(name: str) -> Iterator[None]:
    """libvirt's refusals as MachineErrors, with libvirt's own words."""
    try:
        yield
    except libvirt.libvirtError as error:
        raise MachineError(f"vm {name}: {error.get_error_message()}") from None


class MachineError(RuntimeError):
    """A VM operation that cannot be done; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass
class MachineState:
    name: str
    host: str | None
    state: str  # running, paused, shut-off, saved, crashed, absent, ...
    since: float  # time.time() when it entered this state


class Machines:
    def __init__(self, topology: Topology, hypervisors: dict[str, Hypervisor],
                 files: Callable[[str, str], DomainFiles]):
        self.topology = topology
        self.hypervisors = hypervisors
        self._files = files  # (host, vm) -> where that VM's files are on that host
        self._lock = threading.Lock()
        self._agent_locks = {name: threading.Lock() for name in self._qemu_guests()}
        now = time.time()
        self._states = {name: MachineState(name, None, "absent", now) for name in self._qemu_guests()}
        self._seen: dict[str, dict[str, str]] = {}  # vm -> host -> state libvirt last gave there
        self._changed = threading.Condition(self._lock)

    def _qemu_guests(self) -> list[str]:
        return [name for name, g in self.topology.guests.items() if g.kind == GuestKind.QEMU]

    def use_topology(self, topology: Topology) -> None:
        """VMs came or went. A VM gone is destroyed and undefined wherever it is; a VM whose
        definition changed (its NICs) is undefined while off, so its next start defines it anew."""
        old, self.topology = self.topology, topology
        now = time.time()
        for name in self._qemu_guests():
            self._agent_locks.setdefault(name, threading.Lock())
            with self._lock:
                self._states.setdefault(name, MachineState(name, None, "absent", now))
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
                if domain is None:
                    continue
                with libvirt_errors(name):
                    if domain.isActive():
                        domain.destroy()
                    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except (HypervisorError, MachineError) as error:  # the host is away: nothing runs it there
                LOG.warning("vm %s on %s not undefined: %s", name, host, error)

    # -- what the hypervisors say -------------------------------------------------------------

    def domain_event(self, event: DomainEvent) -> None:
        """Called by every Hypervisor for every lifecycle event of one of its domains.

        During a migration the domain exists on two hosts (running on one, an
        incoming copy paused on the other) and their events interleave; the VM
        is where it runs, or else where it is paused, or else where it was seen last.
        """
        if event.domain not in self._states:
            return
        with self._changed:
            seen = self._seen.setdefault(event.domain, {})
            seen.pop(event.host, None)
            if event.state != "undefined":
                state = event.state
                if state == "shut-off" and self._has_saved_image(event.host, event.domain):
                    state = "saved"
                seen[event.host] = state  # last inserted = seen last
            host, state = _where(seen)
            current = self._states[event.domain]
            if (current.state, current.host) != (state, host):
                self._states[event.domain] = MachineState(event.domain, host, state, time.time())
                LOG.info("vm %s: %s on %s", event.domain, state, host)
            self._changed.notify_all()

    def _has_saved_image(self, host: str, name: str) -> bool:
        try:
            domain = self.hypervisors[host].domain(name)
            return bool(domain and domain.hasManagedSaveImage())
        except (HypervisorError, libvirt.libvirtError):
            return False

    def states(self) -> list[MachineState]:
        with self._lock:
            return [MachineState(**vars(s)) for s in self._states.values()]

    def state(self, name: str) -> MachineState:
        self._guest(name)
        with self._lock:
            return MachineState(**vars(self._states[name]))

    def wait_for(self, name: str, states: set[str], timeout: float) -> MachineState:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._states[name].state not in states:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MachineError(f"vm {name} is still {self._states[name].state} after {timeout:.0f}s "
                                       f"(waited for {' or '.join(sorted(states))})", 504)
                self._changed.wait(remaining)
            return MachineState(**vars(self._states[name]))

    # -- operations ---------------------------------------------------------------------------

    def _guest(self, name: str) -> Guest:
        guest = self.topology.guests.get(name)
        if guest is None:
            raise MachineError(f"no guest named {name!r}", 404)
        if guest.kind != GuestKind.QEMU:
            raise MachineError(f"{name} is a {guest.kind.value} guest; only qemu guests have a hypervisor", 400)
        return guest

    def _located(self, name: str) -> tuple[Hypervisor, libvirt.virDomain]:
        state = self.state(name)
        if state.host is None:
            raise MachineError(f"vm {name} is not defined on any host; start it first")
        domain = self._hypervisor(state.host).domain(name)
        if domain is None:
            raise MachineError(f"vm {name} is gone from host {state.host}")
        return self._hypervisor(state.host), domain

    def _hypervisor(self, host: str) -> Hypervisor:
        hypervisor = self.hypervisors[host]
        try:
            hypervisor.connection()
        except HypervisorError as error:
            raise MachineError(str(error), 503) from None
        return hypervisor

    def start(self, name: str) -> MachineState:
        guest = self._guest(name)
        current = self.state(name)
        if current.state in ("running", "paused"):
            raise MachineError(f"vm {name} is already {current.state} on {current.host}")
        host = current.host or guest.host
        hypervisor = self._hypervisor(host)
        free = hypervisor.free_memory_mib()
        if free < guest.memory + MEMORY_MARGIN_MIB:
            raise MachineError(f"host {host} cannot give vm {name} {guest.memory} MiB: {free} MiB free", 507)
        domain = hypervisor.domain(name)
        defined_here = domain is None
        try:
            if domain is None:
                domain = hypervisor.connection().defineXML(
                    domain_xml(self.topology, guest, self._files(host, name)))
            domain.create()
        except libvirt.libvirtError as error:
            if defined_here and domain is not None:
                domain.undefine()
            raise MachineError(f"vm {name} did not start on {host}: {error.get_error_message()}", 500) from None
        return self.wait_for(name, {"running"}, timeout=30)

    def shutdown(self, name: str, timeout: float = SHUTDOWN_TIMEOUT) -> MachineState:
        """A clean power-off by the guest itself, waited for; never a silent destroy."""
        _, domain = self._located(name)
        if self.state(name).state != "running":
            raise MachineError(f"vm {name} is {self.state(name).state}, not running")
        try:
            self._agent_call(name, _after_reply("poweroff -f"), timeout=5)
        except (AgentError, MachineError):
            pass  # then ACPI, below
        if not self._off_within(name, 3.0):
            with libvirt_errors(name):
                if domain.isActive():
                    domain.shutdown()  # ACPI, for a guest whose agent does not answer
        try:
            return self.wait_for(name, {"shut-off"}, timeout)
        except MachineError:
            raise MachineError(f"vm {name} did not power off within {timeout:.0f}s; it is still running "
                               f"(`sdnvirt vm destroy {name}` stops it hard)", 504) from None

    def _off_within(self, name: str, seconds: float) -> bool:
        try:
            self.wait_for(name, {"shut-off"}, seconds)
            return True
        except MachineError:
            return False

    def destroy(self, name: str) -> MachineState:
        _, domain = self._located(name)
        with libvirt_errors(name):
            if domain.isActive():
                domain.destroy()
        return self.wait_for(name, {"shut-off", "saved"}, timeout=30)

    def reboot(self, name: str, timeout: float = REBOOT_TIMEOUT) -> MachineState:
        """The guest reboots itself; answered once it runs its agent again (a new boot id).

        A guest whose agent does not answer is reset instead.
        """
        _, domain = self._located(name)
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
        raise MachineError(f"vm {name} did not come back from its reboot within {timeout:.0f}s", 504)

    def suspend(self, name: str) -> MachineState:
        _, domain = self._located(name)
        with libvirt_errors(name):
            domain.suspend()
        return self.wait_for(name, {"paused"}, timeout=10)

    def resume(self, name: str) -> MachineState:
        _, domain = self._located(name)
        with libvirt_errors(name):
            domain.resume()
        return self.wait_for(name, {"running"}, timeout=10)

    def save(self, name: str) -> MachineState:
        """Suspend to disk (libvirt's managed save): memory goes to a file, QEMU exits."""
        _, domain = self._located(name)
        with libvirt_errors(name):
            domain.managedSave(0)
        return self.wait_for(name, {"saved"}, timeout=120)

    def restore(self, name: str) -> MachineState:
        _, domain = self._located(name)
        with libvirt_errors(name):
            if not domain.hasManagedSaveImage():
                raise MachineError(f"vm {name} has no saved state to restore")
            domain.create()
        return self.wait_for(name, {"running"}, timeout=120)

    def console(self, name: str, lines: int = 100) -> str:
        state = self.state(name)
        host = state.host or self._guest(name).host
        log = self._files(host, name).console_log
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def exec(self, name: str, command: list[str], timeout: float) -> AgentResult:
        if self.state(name).state != "running":
            raise MachineError(f"vm {name} is {self.state(name).state}, not running")
        return self._agent_call(name, command, timeout)

    def _agent_call(self, name: str, command: list[str], timeout: float) -> AgentResult:
        state = self.state(name)
        socket = self._files(state.host, name).agent_socket
        # QEMU serves one client per channel: requests to one VM take turns.
        if not self._agent_locks[name].acquire(timeout=timeout + 5):
            raise MachineError(f"vm {name}'s agent is busy", 503)
        try:
            with GuestAgent(socket) as agent:
                return agent.exec(command, timeout=timeout)
        finally:
            self._agent_locks[name].release()


def _where(seen: dict[str, str]) -> tuple[str | None, str]:
    for wanted in ("running", "paused"):
        hosts = [h for h, state in seen.items() if state == wanted]
        if hosts:
            return hosts[-1], wanted
    if seen:
        host = list(seen)[-1]
        return host, seen[host]
    return None, "absent"
