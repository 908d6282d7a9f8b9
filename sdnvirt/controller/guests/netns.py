"""The `netns` guests of a lab: namespaces that stand in for VMs, wired exactly like them.

The lab makes each guest's namespace (the machine); this kind wires it: each NIC
is a veth pair whose host end is plugged into the host's integration bridge with
the external_ids libvirt writes for a VM (iface-id, attached-mac, vm-id,
iface-status), so the fabric cannot tell it from a QEMU guest. A guest runs while
its NICs are plugged: start plugs them, shutdown unplugs them.

The guest's end of each veth computes its own checksums (tx checksum offload
off): Open vSwitch's userspace datapath forwards what it reads from the host
end as it is, so an offloaded checksum would never be completed and every TCP
segment and UDP datagram would arrive broken. That is the guest's side to fix,
as a VM's is its virtual NIC (sdnvirt.compute.domain): turning it off on the
host end changes nothing (the guest's kernel already left the checksum
unfinished), and Open vSwitch 3.1's userspace-tso-enable only mends paths
within one host, not through its VXLAN tunnels (both tried).

A move goes the way libvirt moves a VM:
1. preparing: a staged link per NIC is plugged into the destination's bridge with
   the same iface-id (as libvirt plugs the destination QEMU's tap), and the move
   waits until the controller has programmed it (as libvirt's hook does);
2. copying: nothing to copy, a namespace keeps its state where it is;
3. switching: every bridge is pointed at the destination (as the source's pause
   does for a VM), then the guest swaps its links (netns_swap.py); its downtime runs
   from the switch-over's start to its new links being up: answers it sends meanwhile
   leave by a link the fabric no longer serves;
4. the source's ports go (as libvirt unplugs the source).
A move that fails takes its destination ports away again, and switches the fabric
back if it had switched.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Protocol

from sdnvirt.compute.agent import CommandResult
from sdnvirt.controller.guests.kind import GuestState, Kind
from sdnvirt.controller.guests.netns_swap import staged_name
from sdnvirt.controller.inventory import Inventory
from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.move import MoveRolledBack, MoveSteps
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State
from sdnvirt.controller.state import FabricView
from sdnvirt.errors import Conflict, Failed, NotFound, SdnvirtError, TimedOut, Unavailable
from sdnvirt.linux import netns
from sdnvirt.linux.netns import CommandError, NetworkNamespace, checksum_in_software, entering
from sdnvirt.model.topology import Guest, GuestKind, Nic, Topology, guest_uuid
from sdnvirt.vswitch.names import guest_port
from sdnvirt.vswitch.ports import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, VM_ID

LOG = logging.getLogger(__name__)
SWAP_READY_TIMEOUT = 10.0  # seconds for the guest to stage its new links
START_TIMEOUT = 10.0  # seconds for a started guest's ports to be programmed
TIMED_OUT = 137  # the exit status of a command killed at its timeout, as the qemu guest agent reports it


class Plugs(Protocol):
    """What the kind needs of the hosts (the controller's Hosts)."""

    def plug(self, host: str, interface: str, external_ids: dict[str, str]) -> None: ...

    def unplug(self, host: str, interface: str) -> None: ...

    def wait_ready(self, host: str, interface: str, timeout: float) -> None: ...

    def wait_unbound(self, host: str, interface: str, timeout: float) -> None: ...


class NetnsGuests(Kind):
    kind = GuestKind.NETNS
    migration_kinds = ("netns",)

    def __init__(self, topology: Topology, plugs: Plugs, view: Callable[[], FabricView],
                 inventory: Callable[[], Inventory]):
        self.topology = topology
        self._plugs = plugs
        self._view = view
        self._inventory = inventory
        self._since: dict[str, float] = {}  # guest -> when this controller last started, stopped or moved it
        self._started = time.time()

    def use_topology(self, topology: Topology) -> None:
        """A guest gone is unplugged; a running guest's NICs that went are unplugged, and those
        that came are plugged where it runs. Each one on its own: a host that is going away
        with its guests cannot stop the others from following."""
        old, self.topology = self.topology, topology
        for name, guest in old.guests.items():
            if guest.kind != GuestKind.NETNS:
                continue
            new = topology.guests.get(name)
            kept = new is not None and new.kind == GuestKind.NETNS
            host = self._running_host(new) if kept else None
            for nic in guest.nics if not kept else [n for n in guest.nics if n not in new.nics]:
                for bound in self._bound_hosts(nic):
                    self._best_effort(f"unplug {name}'s {nic.interface} on {bound}", self._unplug, bound, nic)
            for nic in [n for n in new.nics if n not in guest.nics] if host is not None else []:
                self._best_effort(f"plug {name}'s {nic.interface} on {host}", self._plug, new, nic, host,
                                  nic.interface, True)

    @staticmethod
    def _best_effort(what: str, action: Callable, *args) -> None:
        try:
            action(*args)
        except (SdnvirtError, CommandError, OSError, LookupError) as error:
            LOG.warning("netns guests: could not %s: %s", what, error)

    # -- where it is ---------------------------------------------------------------------------

    def _guest(self, name: str) -> Guest:
        guest = self.topology.guests.get(name)
        if guest is None or guest.kind != GuestKind.NETNS:
            raise NotFound(f"no netns guest named {name!r}", "vm")
        return guest

    def _namespace(self, name: str) -> str:
        namespace = self._inventory().guest_namespaces.get(name)
        if namespace is None:
            raise Unavailable(f"the host inventory names no namespace for netns guest {name}", "vm")
        return namespace

    def _host_namespace(self, host: str) -> str:
        endpoint = self._inventory().hosts.get(host)
        if endpoint is None or endpoint.netns is None:
            raise Unavailable(f"the host inventory names no namespace for host {host}: it takes no netns guests",
                              "host")
        return endpoint.netns

    def _bound_hosts(self, nic: Nic) -> list[str]:
        return sorted(self._view().placements.get(nic.port_id, {}))

    def _running_host(self, guest: Guest) -> str | None:
        """Where the guest's NICs are active, if any is bound at all."""
        active = self._view().active
        return next((active[nic.port_id] for nic in guest.nics if nic.port_id in active), None)

    def state(self, name: str) -> GuestState:
        guest = self._guest(name)
        since = self._since.get(name, self._started)
        if not netns.exists(self._namespace(name)):
            return GuestState(name, None, "absent", since)
        host = self._running_host(guest)
        if host is not None:
            return GuestState(name, host, "running", since)
        return GuestState(name, guest.host, "shut-off", since)

    def where(self, name: str, migration_kind: str) -> str:
        host = self._running_host(self._guest(name))
        if host is None:
            raise Conflict(f"netns guest {name} is not running: it has nothing to move", "vm")
        return host

    # -- life ----------------------------------------------------------------------------------

    def start(self, name: str) -> GuestState:
        guest = self._guest(name)
        current = self.state(name)
        if current.state == "running":
            raise Conflict(f"netns guest {name} is already running on {current.host}", "vm")
        if current.state == "absent":
            raise Conflict(f"netns guest {name} has no namespace {self._namespace(name)}: the lab makes it", "vm")
        host = current.host or guest.host
        for nic in guest.nics:
            self._plug(guest, nic, host, nic.interface, address=True)
        for nic in guest.nics:  # it runs once its ports are programmed, as a VM does
            self._plugs.wait_ready(host, guest_port(nic.port_id), START_TIMEOUT)
        self._since[name] = time.time()
        return self.state(name)

    def shutdown(self, name: str) -> GuestState:
        guest = self._guest(name)
        if self.state(name).state != "running":
            raise Conflict(f"netns guest {name} is {self.state(name).state}, not running", "vm")
        unplugged = [(host, nic) for nic in guest.nics for host in self._bound_hosts(nic)]
        for host, nic in unplugged:
            self._unplug(host, nic)
        for host, nic in unplugged:
            self._plugs.wait_unbound(host, guest_port(nic.port_id), START_TIMEOUT)
        self._since[name] = time.time()
        return self.state(name)

    def exec(self, name: str, command: list[str], timeout: float) -> CommandResult:
        namespace = self._namespace(self._guest(name).name)
        try:
            done = subprocess.run([*entering(namespace), *command], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            return CommandResult(TIMED_OUT, expired.output or b"")
        except OSError as error:
            raise Failed(f"netns guest {name}: cannot run {command[0]}: {error.strerror}", "command") from None
        return CommandResult(done.returncode, done.stdout)

    # -- wiring --------------------------------------------------------------------------------

    def _plug(self, guest: Guest, nic: Nic, host: str, inside: str, address: bool) -> None:
        """A veth from the host's namespace into the guest's (named `inside` there), plugged
        into the host's bridge; with `address`, the NIC's address on the guest's end."""
        host_namespace, guest_namespace = self._host_namespace(host), self._namespace(guest.name)
        port = guest_port(nic.port_id)
        network = self.topology.networks[nic.network]
        with NetworkNamespace(host_namespace) as ns:
            ns.delete_link(port)  # left over from an earlier life
            ns.add_veth(port, guest_namespace, inside)
            ns.bring_up(port)
        with NetworkNamespace(guest_namespace) as ns:
            ns.bring_up(inside, mac=str(nic.mac).lower())
            if address:
                ns.add_address(inside, str(nic.ip), network.subnet.prefixlen)
        checksum_in_software(guest_namespace, inside)
        self._plugs.plug(host, port, {IFACE_ID: nic.port_id, ATTACHED_MAC: str(nic.mac).lower(),
                                      VM_ID: guest_uuid(self.topology.name, guest.name), IFACE_STATUS: "active"})

    def _unplug(self, host: str, nic: Nic) -> None:
        port = guest_port(nic.port_id)
        self._plugs.unplug(host, port)
        with NetworkNamespace(self._host_namespace(host)) as ns:
            ns.delete_link(port)  # its peer in the guest goes with it

    # -- moving --------------------------------------------------------------------------------

    def check_move(self, migration: Migration) -> None:
        self._host_namespace(migration.destination)

    def move(self, migration: Migration, steps: MoveSteps) -> None:
        guest = self._guest(migration.vm)
        source, destination = migration.source, migration.destination
        began = time.monotonic()
        steps.enter(State.PREPARING)
        switched = False
        swap: subprocess.Popen | None = None
        try:
            for nic in guest.nics:
                self._plug(guest, nic, destination, staged_name(nic.index), address=False)
            for nic in guest.nics:
                self._plugs.wait_ready(destination, guest_port(nic.port_id), steps.remaining())
            steps.check_cancel()
            steps.enter(State.COPYING)  # nothing to copy: a namespace keeps its state in place
            swap = self._stage_swap(guest)
            steps.check_cancel()
            steps.enter(State.SWITCHING)
            switched = True  # from here on the fabric may point at the destination, even if this fails
            switching_from = time.monotonic()
            steps.switch_over("netns-move")
            out, err = swap.communicate("go\n", timeout=steps.remaining())
            if swap.returncode != 0:
                raise Failed(f"netns guest {guest.name} could not swap its links: {err.strip()}", "vm")
        except BaseException as error:
            if swap is not None and swap.poll() is None:
                swap.kill()
                swap.wait()
            self._undo_destination(guest, destination)
            if switched:
                steps.switch_back()
                raise MoveRolledBack(f"{error}; the fabric points at {source} again") from error
            raise
        swapped = json.loads(out)
        migration.hypervisor_downtime_ms = round((swapped["up_at"] - switching_from) * 1000, 3)
        steps.mark(flight.mark(flight.wall(swapped["down_at"]), "guest", "stopped", source))
        steps.mark(flight.mark(flight.wall(swapped["up_at"]), "guest", "resumed", destination))
        for nic in guest.nics:
            self._plugs.unplug(source, guest_port(nic.port_id))  # its veth went with the guest's old link
        migration.total_ms = round((time.monotonic() - began) * 1000, 1)
        self._since[guest.name] = time.time()

    def _stage_swap(self, guest: Guest) -> subprocess.Popen:
        """The guest's side of the move, started and holding its staged links up."""
        nics = [f"{nic.index},{nic.mac},{nic.ip}/{self.topology.networks[nic.network].subnet.prefixlen}"
                for nic in guest.nics]
        swap = subprocess.Popen([*entering(self._namespace(guest.name)), sys.executable, "-m",
                                 "sdnvirt.controller.guests.netns_swap", *nics],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = _read_line(swap, SWAP_READY_TIMEOUT)
        except TimedOut:
            swap.kill()
            swap.wait()
            raise
        if ready != "ready":
            swap.kill()
            raise Failed(f"netns guest {guest.name} could not stage its new links: {swap.stderr.read().strip()}",
                         "vm")
        return swap

    def _undo_destination(self, guest: Guest, destination: str) -> None:
        """Take the destination's ports away again (best effort: the host may be the failure)."""
        for nic in guest.nics:
            try:
                self._unplug(destination, nic)
            except (SdnvirtError, CommandError, OSError) as error:
                LOG.warning("netns guest %s: its port on %s stays: %s", guest.name, destination, error)

    def cancel_move(self, migration: Migration) -> None:
        """Nothing to tell anyone: the move looks at its cancel flag between its steps."""

    def settle(self, migration: Migration) -> State | None:
        """Where the guest's links are: a staged link still in the guest means the swap never
        happened (its destination ports go); otherwise it runs on the destination (the
        source's ports go)."""
        guest = self._guest(migration.vm)
        bound = {host for nic in guest.nics for host in self._bound_hosts(nic)}
        try:
            with NetworkNamespace(self._namespace(guest.name)) as ns:
                staged = any(ns.has_link(staged_name(nic.index)) for nic in guest.nics)
        except (SdnvirtError, OSError):
            return None
        if staged or bound == {migration.source}:
            if migration.destination in bound:
                self._undo_destination(guest, migration.destination)
            return State.CANCELLED if migration.cancel_requested else State.FAILED
        if migration.destination in bound:
            for nic in guest.nics:
                if migration.source in self._bound_hosts(nic):
                    self._plugs.unplug(migration.source, guest_port(nic.port_id))
            return State.COMPLETED
        return None


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """One line of a child's output, waited for at most `timeout` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise TimedOut(f"no answer from {process.args[-1]} within {timeout:.0f}s", "vm")
    return process.stdout.readline().strip()
