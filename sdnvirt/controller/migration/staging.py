"""Switch-overs staged ahead: while a VM's memory is copied, every bridge its switch-over
alters is given an open bundle of the flow-mods (fabric/bridges.py `Fabric.stage`), so that
at the pause one commit message per bridge is all that is left to send.

Staging runs on a thread of its own: it waits for each bridge to take its bundle, and
neither the thread that asked (it writes the hosts' ready marks) nor the switch-over's may
wait for that. The newest request for a VM wins; a staged switch-over is taken once (by the
switch-over) or dropped (its migration ended without one), and one that finishes staging
after that is dropped at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sdnvirt.controller.fabric.bridges import Fabric, StagedChange
from sdnvirt.controller.state import FabricView, activation

LOG = logging.getLogger(__name__)


class SwitchOverStaging:
    def __init__(self, fabric: Fabric, view: Callable[[], FabricView]):
        self._fabric = fabric
        self._view = view
        self._lock = threading.Lock()
        self._asked: dict[str, object] = {}  # vm -> the token of its newest request not staged yet
        self._staged: dict[str, tuple[str, StagedChange]] = {}  # vm -> (destination, its switch-over)
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
            destination, staged = self._staged.pop(vm, (None, None))
        if staged is not None and destination != host:
            self._fabric.discard(staged)
            return None
        return staged

    def forget(self, vm: str) -> None:
        """The VM's migration ended: what was staged for it is dropped."""
        with self._lock:
            self._asked.pop(vm, None)
            _, staged = self._staged.pop(vm, (None, None))
        if staged is not None:
            self._fabric.discard(staged)

    def _run(self) -> None:
        while True:
            vm, host, token = self._work.get()
            try:
                self._stage(vm, host, token)
            except Exception:  # a switch-over not staged is slower, nothing worse
                LOG.exception("vm %s: the switch-over to %s could not be staged", vm, host)

    def _stage(self, vm: str, host: str, token: object) -> None:
        view = self._view()
        guest = view.topology.guests.get(vm)
        if guest is None:
            return
        staged = self._fabric.stage(activation(view, [n.port_id for n in guest.nics], host))
        if staged is None:
            return
        replaced = None
        with self._lock:
            wanted = self._asked.get(vm) is token
            if wanted:
                del self._asked[vm]
                _, replaced = self._staged.pop(vm, (None, None))
                self._staged[vm] = (host, staged)
        if not wanted:  # taken, forgotten or asked again meanwhile
            self._fabric.discard(staged)
            return
        if replaced is not None:
            self._fabric.discard(replaced)
        LOG.debug("vm %s: switch-over to %s staged on %s", vm, host, sorted(staged.rounds))
