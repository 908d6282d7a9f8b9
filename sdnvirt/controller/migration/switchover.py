"""The switch-over: a VM's ports become active where the VM now runs.

It happens on whichever comes first: the source pausing the VM for the last
of its memory (QEMU's STOP while the memory is copied, or libvirt's
"suspended for migration" event a few milliseconds later: from then on the
VM runs nowhere, and what is sent to the destination waits in its tap until
it resumes there, instead of being lost at the source), QEMU's announcement
(a RARP frame from the destination port, sent up by the pipeline) or
libvirt's "resumed" event. A VM resumed where it was (a migration that failed
at the last moment) is switched back the same way. Every host's flows for the ports are repointed (the new
place first; only the owners the ports touch, so O(hosts) flow-mods), then
gratuitous ARPs for the VM's addresses go out into its networks from the new
place, so anything that learns MACs updates at once. While the VM's memory is
copied, its switch-over is staged: each bridge holds an open bundle of its
flow-mods, so that at the pause only a commit message per bridge is left to send.

Triggers are handled one at a time on a thread of their own: the thread that
delivers packet-ins also delivers the switches' replies, and must not wait.

A packet-in is a guest's frame, so untrusted: anything that is not a well-formed
announcement of the MAC of a port bound where it came from is dropped and counted
by reason. Each bridge's controller meter (fabric/meters.py) keeps a flood of
them from reaching the controller; should one reach it anyway (a switch without
meters), packet-ins beyond a bounded backlog are dropped too, so the triggers
queued behind them are not delayed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.channel import SwitchChannel, SwitchError
from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.announcements import announced_mac, gratuitous_arp
from sdnvirt.controller.migration.staging import SwitchOverStaging
from sdnvirt.controller.state import StateStore

LOG = logging.getLogger(__name__)
GARP_REPEATS = (0.0, 0.05, 0.2)  # seconds after the switch-over, as QEMU spaces its own announcements
PACKET_IN_BACKLOG = 1000  # packet-ins waiting for the switch-over thread, at most
# Why a packet-in was dropped: not exactly a RARP announcement; from a bridge that is
# not this topology's; from a port bound to no logical port; announcing a MAC that is
# not its port's; more waiting than PACKET_IN_BACKLOG.
DROP_REASONS = ("malformed", "unknown_switch", "unknown_port", "foreign_mac", "overload")
# What told of a source's pause: QEMU's STOP event, or libvirt's lifecycle event after it.
QEMU_STOPPED = "qemu-stopped"
SOURCE_PAUSED = "source-paused"


@dataclass(frozen=True)
class SwitchedOver:
    vm: str
    host: str
    ports: tuple[str, ...]
    trigger: str  # QEMU_STOPPED | SOURCE_PAUSED | "rarp" | "libvirt-resumed" | "migration-completed" | "netns-move"
    latency_ms: float  # from the trigger's arrival to every bridge repointed
    flow_mods: int
    completed: float  # time.monotonic() when every bridge was repointed


class SwitchOverCounters:
    """Counted from several threads (every switch's receive thread, the gratuitous ARP timers)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {"announcements": 0, "switch_overs": 0, "garps": 0}
        self._dropped = dict.fromkeys(DROP_REASONS, 0)  # packet-ins, by reason

    def count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def drop(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {**self._counts, "dropped": dict(self._dropped)}


class SwitchOver:
    def __init__(self, store: StateStore, fabric: Fabric, on_switched: Callable[[SwitchedOver], None],
                 on_mark: Callable[[str, dict], None]):
        self.store = store
        self.fabric = fabric
        self._on_switched = on_switched
        self._on_mark = on_mark  # (vm, flight mark): the flight recorder of the VM's migration
        self._work: queue.Queue = queue.Queue()
        self.counters = SwitchOverCounters()
        self._backlog = threading.BoundedSemaphore(PACKET_IN_BACKLOG)
        self._staging = SwitchOverStaging(fabric, store.view)
        threading.Thread(target=self._run, name="switch-over", daemon=True).start()

    def packet_in(self, host: str | None, in_port: int | None, frame: bytes, received: float) -> None:
        """A frame a bridge sent up; `host` None for a bridge of no host of the topology,
        `in_port` None when the switch did not say where the frame came in."""
        if host is None:
            self.counters.drop("unknown_switch")
        elif in_port is None:
            self.counters.drop("unknown_port")
        elif not self._backlog.acquire(blocking=False):
            self.counters.drop("overload")
        else:
            self._work.put((self._announced, (host, in_port, frame, received)))

    def vm_resumed(self, vm: str, host: str, received: float) -> None:
        self._work.put((self._switch_vm, (vm, host, "libvirt-resumed", received)))

    def source_paused(self, vm: str, destination: str, received: float, trigger: str) -> None:
        """The source paused the VM for the last of its memory (`trigger`: who said so)."""
        self._work.put((self._switch_vm, (vm, destination, trigger, received)))

    def prepare(self, vm: str, host: str) -> None:
        """Stage the VM's switch-over to `host`, where its ports are bound now (a migration copies):
        every bridge it alters holds its flow-mods in an open bundle, so that at the pause only
        the commits are left (staging.py)."""
        self._staging.prepare(vm, host)

    def forget(self, vm: str) -> None:
        """The VM's migration ended: a switch-over staged for it is dropped."""
        self._staging.forget(vm)

    def now(self, vm: str, host: str, trigger: str) -> Future:
        """Switch a VM over on someone's word (no signal came, or the lab moves a netns guest);
        the future is done once every bridge points at `host`."""
        done: Future = Future()
        self._work.put((self._switch_vm, (vm, host, trigger, time.monotonic()), done))
        return done

    def _run(self) -> None:
        while True:
            handler, args, *done = self._work.get()
            try:
                handler(*args)
            except Exception as error:  # one bad trigger must not stop the switch-overs to come
                LOG.exception("switch-over trigger %s%s failed", handler.__name__, args)
                if done:
                    done[0].set_exception(error)
                continue
            if done:
                done[0].set_result(None)

    def _announced(self, host: str, in_port: int, frame: bytes, received: float) -> None:
        self._backlog.release()
        mac = announced_mac(frame)
        if mac is None:
            self.counters.drop("malformed")
            return
        view = self.store.view()
        ports = view.ports.get(host)
        binding = next((b for b in ports.bindings if b.ofport == in_port), None) if ports else None
        port = view.logical_ports.get(binding.port_id) if binding else None
        if port is None:
            self.counters.drop("unknown_port")
        elif port.mac != mac:
            self.counters.drop("foreign_mac")
        else:
            self.counters.count("announcements")
            self._switch(port.guest, [port.id], host, "rarp", received)

    def _switch_vm(self, vm: str, host: str, trigger: str, received: float) -> None:
        guest = self.store.view().topology.guests.get(vm)
        if guest is not None:
            self._switch(vm, [nic.port_id for nic in guest.nics], host, trigger, received)

    def _switch(self, vm: str, port_ids: list[str], host: str, trigger: str, received: float) -> None:
        staged = self._staging.take(vm, host)
        change = self.store.activate(port_ids, host)
        if not change:
            if staged is not None:
                self.fabric.discard(staged)
            return  # active there already: a later announcement of the same move
        applied = self.fabric.apply(change, wait=True, staged=staged)
        completed = time.monotonic()
        latency = (completed - received) * 1000
        self.counters.count("switch_overs")
        moved = tuple(p for p in port_ids if change.view.active.get(p) == host)
        LOG.info("vm %s: switched over to %s on %s in %.1f ms (%d flow-mods; staged on %d of %d bridges)", vm, host,
                 trigger, latency, sum(applied.flow_mods.values()), len(applied.staged),
                 sum(1 for n in applied.flow_mods.values() if n))
        self._on_mark(vm, flight.mark(flight.wall(received), "controller", "switch-over", host, trigger))
        for bridge, at in sorted(applied.sent.items(), key=lambda item: item[1]):
            self._on_mark(vm, flight.mark(flight.wall(at), "controller", "sent", bridge,
                                          f"{applied.flow_mods[bridge]} flow-mods"
                                          + (", staged" if bridge in applied.staged else "")))
        for bridge, at in sorted(applied.committed.items(), key=lambda item: item[1]):
            self._on_mark(vm, flight.mark(flight.wall(at), "controller", "committed", bridge))
        self._garp(vm, host, moved)
        self._on_switched(SwitchedOver(vm, host, moved, trigger, latency, sum(applied.flow_mods.values()), completed))

    def _garp(self, vm: str, host: str, port_ids: tuple[str, ...]) -> None:
        view = self.store.view()
        channel = self.fabric.syncs[host].channel
        if channel is None:
            return
        frames = [(view.placements[p][host].ofport, gratuitous_arp(view.logical_ports[p].mac, view.logical_ports[p].ip))
                  for p in port_ids if host in view.placements.get(p, {})]
        for delay in GARP_REPEATS:
            threading.Timer(delay, self._inject, args=(vm, host, channel, frames)).start()

    def _inject(self, vm: str, host: str, channel: SwitchChannel, frames: list[tuple[int, bytes]]) -> None:
        sent = 0
        for in_port, frame in frames:
            try:
                channel.inject(in_port, frame)
                self.counters.count("garps")
                sent += 1
            except SwitchError as error:  # the switch went away meanwhile: nothing to announce to
                LOG.debug("gratuitous ARP not sent: %s", error)
        if sent:
            self._on_mark(vm, flight.mark(time.time(), "controller", "garp", host, f"{sent} frames"))
