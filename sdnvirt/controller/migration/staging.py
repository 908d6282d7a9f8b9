"""Switch-overs staged ahead: while a VM's memory is copied, every bridge its switch-over
alters is given an open bundle of the flow-mods (fabric/bridges.py `Fabric.stage`), so that
at the pause one commit message per bridge is all that is left to send.

Staging runs on a thread of its own: it waits for each bridge to take its bundle, and
neither the thread that asked (it writes the hosts' ready marks) nor the switch-over's may
wait for that. The newest request for a VM wins; a staged switch-over is taken once (by the
switch-over) or dropped (its migration ended without one), and one that finishes staging
after that is dropped at once.

A staged round is committed only while it is fresh (fabric/sync.py STAGED_FRESH: Open vSwitch
drops a bundle left idle for 10 s), and a VM's memory may take longer to copy: a staged
switch-over is staged again from the view of the moment every RESTAGE_AFTER seconds, the new
one replacing the old once it is ready (until then the old one holds), for as long as its
migration runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from sdnvirt.controller.fabric.bridges import Fabric, StagedChange
from sdnvirt.controller.fabric.sync import STAGED_FRESH
from sdnvirt.controller.state import FabricView, activation

LOG = logging.getLogger(__name__)
RESTAGE_AFTER = STAGED_FRESH / 2  # seconds: a new staging is ready long before the old one is too old


class SwitchOverStaging:
    def __init__(self, fabric: Fabric, view: Callable[[], FabricView]):
        self._fabric = fabric
        self._view = view
        self._lock = threading.Lock()
        self._asked: dict[str, object] = {}  # vm -> the token of its newest request not staged yet
        self._staged: dict[str, tuple[str, StagedChange, float]] = {}  # vm -> (destination, it, staged at)
        self._work: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="switch-over-staging", daemon=True).start()

    def prepare(self, vm: str, host: str) -> None:
        """Stage the VM's switch-over to `host`, where its ports are bound now; returns at once."""
        token = object()
        with self._lock:
            self._asked[vm] = token
        self._work.put((vm, host, token))

    def take(self, vm: str, host: str) -> StagedChange | None:
        """The VM's switch-over to `host`, if it is staged (taken once: a later one finds none)."""
        with self._lock:
            self._asked.pop(vm, None)
            destination, staged, _ = self._staged.pop(vm, (None, None, None))
        if staged is not None and destination != host:
            self._fabric.discard(staged)
            return None
        return staged

    def forget(self, vm: str) -> None:
        """The VM's migration ended: what was staged for it is dropped."""
        with self._lock:
            self._asked.pop(vm, None)
            _, staged, _ = self._staged.pop(vm, (None, None, None))
        if staged is not None:
            self._fabric.discard(staged)

    def _run(self) -> None:
        while True:
            try:
                asked = [self._work.get(timeout=RESTAGE_AFTER / 4)]
            except queue.Empty:
                asked = []
            for vm, host, token in asked + self._ageing():
                try:
                    self._stage(vm, host, token)
                except Exception:  # a switch-over not staged is slower, nothing worse
                    LOG.exception("vm %s: the switch-over to %s could not be staged", vm, host)

    def _ageing(self) -> list[tuple[str, str, object]]:
        """The staged switch-overs to stage again, each asked for as a request of its own
        (one asked for meanwhile is newer: that one wins)."""
        due = time.monotonic() - RESTAGE_AFTER
        work = []
        with self._lock:
            for vm, (host, _, staged_at) in self._staged.items():
                if staged_at < due and vm not in self._asked:
                    self._asked[vm] = token = object()
                    work.append((vm, host, token))
        return work

    def _stage(self, vm: str, host: str, token: object) -> None:
        began = time.monotonic()  # no bundle of this staging is older
        view = self._view()
        guest = view.topology.guests.get(vm)
        staged = None
        if guest is not None:
            staged = self._fabric.stage(activation(view, [n.port_id for n in guest.nics], host))
        replaced = None
        with self._lock:
            wanted = self._asked.get(vm) is token
            if wanted:
                del self._asked[vm]
                _, replaced, _ = self._staged.pop(vm, (None, None, None))
                if staged is not None:
                    self._staged[vm] = (host, staged, began)
        if not wanted and staged is not None:  # taken, forgotten or asked again meanwhile
            self._fabric.discard(staged)
        if replaced is not None:  # by the newest, or by nothing when the change alters nothing now
            self._fabric.discard(replaced)
        if wanted and staged is not None:
            LOG.debug("vm %s: switch-over to %s staged on %s", vm, host, sorted(staged.rounds))
