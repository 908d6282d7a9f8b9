"""The hosts as the controller holds them: each one's OVSDB attached, its bridge shaped, its ports
learned, and the guest interfaces whose flows its bridge holds marked ready.

libvirt's hook on a host lets a VM run there only once its interfaces carry the
controller's ready mark, and a netns guest's move waits for the same mark, so a
guest never runs where its ports are not programmed. Until every host's ports
are known the fabric is not programmed at all (a reconciler would take ports it
has not learned yet for ports that are gone), or until READY_TIMEOUT passes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sdnvirt.controller.events import EventStream
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.inventory import HostEndpoints
from sdnvirt.controller.state import OwnerKey
from sdnvirt.controller.store import NorthboundStore
from sdnvirt.errors import TimedOut, Unavailable
from sdnvirt.model.topology import Topology
from sdnvirt.vswitch.integration_bridge import BridgeSettings, ensure_integration_bridge, ensure_tunnels
from sdnvirt.vswitch.interfaces import plug_interface, unplug_interface
from sdnvirt.vswitch.names import datapath_id
from sdnvirt.vswitch.ovsdb import HostOvsdb
from sdnvirt.vswitch.ports import Binding, HostPorts

LOG = logging.getLogger(__name__)
READY_TIMEOUT = 20.0  # seconds to wait for every host's OVSDB before programming anyway
RECONNECT_DELAY = 1.0


class Hosts:
    def __init__(self, topology: Topology, endpoints: dict[str, HostEndpoints], store: NorthboundStore,
                 fabric: Fabric, events: EventStream, on_ready: Callable[[str, list[Binding]], None]):
        self.topology = topology
        self.endpoints = endpoints
        self._store = store
        self._fabric = fabric
        self._events = events
        self._on_ready = on_ready  # interfaces just marked ready on a host
        self.ovsdbs: dict[str, HostOvsdb] = {}
        self._marked: dict[str, set[tuple[str, int]]] = {h: set() for h in topology.hosts}  # written, not seen
        self._markers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ready-markers")
        self._heard_from: set[str] = set()
        self._lock = threading.Lock()
        self._ports_changed = threading.Condition(self._lock)
        self._stopped = threading.Event()

    def start(self) -> None:
        for host in sorted(self.topology.hosts):
            self._attach_in_background(host)
        timer = threading.Timer(READY_TIMEOUT, self._ready_anyway)
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        self._stopped.set()
        self._markers.shutdown(wait=False, cancel_futures=True)
        for ovsdb in list(self.ovsdbs.values()):
            ovsdb.stop()

    def use_topology(self, topology: Topology, endpoints: dict[str, HostEndpoints]) -> None:
        """Hosts came or went: attach the new ones, let go of the ones gone, and give
        every attached host its tunnels to the others."""
        old, self.topology, self.endpoints = self.topology, topology, endpoints
        added = sorted(set(topology.hosts) - set(old.hosts))
        for host in sorted(set(old.hosts) - set(topology.hosts)):
            ovsdb = self.ovsdbs.pop(host, None)
            if ovsdb is not None:
                ovsdb.stop()
            with self._lock:
                self._heard_from.discard(host)
        for host in added:
            self._marked[host] = set()
        for host, ovsdb in list(self.ovsdbs.items()):
            try:
                ensure_tunnels(ovsdb.api, self._tunnel_remotes(host))
            except Exception as error:  # the host is away: its next attach makes the tunnels
                LOG.warning("host %s: tunnels not updated: %s", host, error)
        for host in added:
            self._attach_in_background(host)

    # -- attaching ---------------------------------------------------------------------------

    def _attach_in_background(self, host: str) -> None:
        threading.Thread(target=self._attach, args=(host,), name=f"attach-{host}", daemon=True).start()

    def _attach(self, host: str) -> None:
        """Connect to a host's OVSDB (retrying while it is away, as long as the host is in the
        topology and the controller runs), then shape its bridge."""
        while host in self.topology.hosts and not self._stopped.is_set():
            endpoint = self.endpoints[host]
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
                self._stopped.wait(RECONNECT_DELAY)

    def _tunnel_remotes(self, host: str) -> dict[str, str]:
        return {name: str(h.address) for name, h in self.topology.hosts.items() if name != host}

    def _ports_seen(self, ports: HostPorts) -> None:
        if ports.host not in self.topology.hosts:
            return  # a host being removed
        before = self._store.view().ports.get(ports.host)
        shown = {(b.interface, b.ofport) for b in ports.bindings if b.ready_at is not None}
        self._marker_task(self._marks_shown, ports.host, shown)  # in order with the marks written
        change = self._store.set_host_ports(ports)
        self._fabric.apply(change)
        if not change:
            # No flow to change, yet a port may want its mark: libvirt starting a VM again deletes
            # and adds its interface in one transaction (the same name, ofport and ids, unmarked).
            self.mark_ready(ports.host, self._fabric.programmed(ports.host))
        self._publish_bindings(ports.host, before.bindings if before else (), ports.bindings)
        with self._ports_changed:
            self._heard_from.add(ports.host)
            everyone = self._heard_from >= set(self.topology.hosts)
            self._ports_changed.notify_all()
        if everyone and not self._fabric.is_ready():
            LOG.info("every host's ports are known: programming bridges")
            self._fabric.ports_known()

    def _publish_bindings(self, host: str, before, after) -> None:
        def keyed(bindings) -> dict:
            return {(b.port_id, b.interface, b.ofport): b for b in bindings}

        old, new = keyed(before), keyed(after)
        ports = self._store.view().logical_ports
        for action, keys in (("bound", new.keys() - old.keys()), ("unbound", old.keys() - new.keys())):
            for port_id, interface, ofport in sorted(keys):
                port = ports.get(port_id)
                self._events.publish("binding", {"action": action, "host": host, "port": port_id,
                                                 "guest": port.guest if port else None,
                                                 "interface": interface, "ofport": ofport})

    def _ready_anyway(self) -> None:
        if not self._fabric.is_ready():
            with self._lock:
                missing = sorted(set(self.topology.hosts) - self._heard_from)
            LOG.warning("no OVSDB answer from %s after %.0fs: programming the others", missing, READY_TIMEOUT)
            self._fabric.ports_known()

    # -- ready marks ---------------------------------------------------------------------------

    def mark_ready(self, host: str, programmed: frozenset[OwnerKey]) -> None:
        """Tell the host (its OVSDB) which guest interfaces its bridge now holds the flows of.
        The write happens on a thread of its own: a reconciler must never wait for an OVSDB."""
        self._marker_task(self._write_ready_markers, host, programmed)

    def _marker_task(self, task: Callable[..., None], *args: object) -> None:
        """Marks are written and forgotten on one thread, in the order asked."""
        with contextlib.suppress(RuntimeError):  # stopped: no more marks
            self._markers.submit(task, *args)

    def _marks_shown(self, host: str, shown: set[tuple[str, int]]) -> None:
        """The host shows these marks: done with. An interface plugged again later under the same
        name and ofport is another one, to be marked again."""
        if host in self._marked:
            self._marked[host] -= shown

    def _write_ready_markers(self, host: str, programmed: frozenset[OwnerKey]) -> None:
        ovsdb = self.ovsdbs.get(host)
        ports = self._store.view().ports.get(host)
        if ovsdb is None or ports is None:
            return
        # Marks written and not shown yet (_marks_shown forgets those shown); one whose interface
        # went is done with too.
        self._marked[host] &= {(b.interface, b.ofport) for b in ports.bindings}
        fresh = [b for b in ports.bindings if b.ready_at is None and ("port", b.port_id) in programmed
                 and (b.interface, b.ofport) not in self._marked[host]]
        if not fresh:
            return
        try:
            ovsdb.mark_ready([b.interface for b in fresh])
        except Exception as error:  # any OVSDB failure: the guest's start waits, then fails, and says so
            LOG.warning("host %s: could not mark %s ready: %s", host, [b.interface for b in fresh], error)
            return
        self._marked[host].update((b.interface, b.ofport) for b in fresh)
        self._on_ready(host, fresh)

    def wait_ready(self, host: str, interface: str, timeout: float) -> None:
        """Until the host's OVSDB shows the interface bound and marked ready."""
        self._wait(lambda: self._bound(host, interface, ready=True), timeout,
                   f"host {host}: the controller did not program {interface} within {timeout:.0f}s")

    def wait_unbound(self, host: str, interface: str, timeout: float) -> None:
        """Until the host's OVSDB no longer shows the interface bound."""
        self._wait(lambda: not self._bound(host, interface, ready=False), timeout,
                   f"host {host}: {interface} is still bound {timeout:.0f}s after it was unplugged")

    def _wait(self, condition: Callable[[], bool], timeout: float, failure: str) -> None:
        deadline = time.monotonic() + timeout
        with self._ports_changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimedOut(failure, "host")
                self._ports_changed.wait(remaining)

    def _bound(self, host: str, interface: str, ready: bool) -> bool:
        ports = self._store.view().ports.get(host)
        return bool(ports) and any(b.interface == interface and (b.ready_at is not None or not ready)
                                   for b in ports.bindings)

    # -- guest interfaces (netns guests) ---------------------------------------------------------

    def plug(self, host: str, interface: str, external_ids: dict[str, str]) -> None:
        """Add an interface that exists on the host to its integration bridge, with the ids that
        bind it to a logical port (as libvirt does for a VM)."""
        plug_interface(self._ovsdb(host).api, interface, external_ids)

    def unplug(self, host: str, interface: str) -> None:
        unplug_interface(self._ovsdb(host).api, interface)

    def _ovsdb(self, host: str) -> HostOvsdb:
        ovsdb = self.ovsdbs.get(host)
        if ovsdb is None or not ovsdb.connected:
            raise Unavailable(f"host {host}'s OVSDB is not attached", "host")
        return ovsdb

    def status(self, host: str) -> dict:
        ovsdb = self.ovsdbs.get(host)
        return {"ovsdb_connected": bool(ovsdb and ovsdb.connected)}
