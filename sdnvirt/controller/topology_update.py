"""Changes of the desired topology: checked against what runs, written, and followed.

The file alone says whether the topology is valid and whether it changes
what cannot change in place (sdnvirt.model.changes). What runs says the rest:
a host that still holds a guest cannot go, a running VM's NICs cannot change
under it, a migrating VM cannot be removed. Each refusal is placed in the file.

An accepted change is written to the northbound database, and the controller
follows the database's topology whoever changed it: `apply` answers once the
controller runs the generation it wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sdnvirt.controller.events import EventStream
from sdnvirt.controller.state import FabricView
from sdnvirt.errors import TimedOut, Unavailable
from sdnvirt.model.changes import Change, changes_to
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.source import parse_source
from sdnvirt.model.topology import Topology
from sdnvirt.northbound.database import Northbound

LOG = logging.getLogger(__name__)
APPLY_TIMEOUT = 30.0  # seconds for the controller to follow a topology it wrote

def checked_changes(old: Topology, text: str, filename: str, view: FabricView,
                    nics_locked: Callable[[str], str | None], migrating: set[str]) -> tuple[Topology, list[Change]]:
    """The new topology and its changes; InputError naming every field that cannot be
    applied now, or that is not valid at all."""
    new, changes = changes_to(old, text, filename)
    source = parse_source(text, filename)
    problems: list[Problem] = []
    for host in sorted(set(old.hosts) - set(new.hosts)):
        held = sorted({guest for p, where in view.placements.items()
                       if host in where and (guest := view.logical_ports[p].guest) in new.guests})
        if held:
            problems.append(source.problem(("hosts",), f"host {host} is removed but still holds "
                                                       f"{', '.join(held)}: migrate or remove them first"))
    for name in sorted(set(old.guests) & set(new.guests)):
        was, now = old.guests[name], new.guests[name]
        locked = nics_locked(name) if was.kind == now.kind and was.nics != now.nics else None
        if locked:
            problems.append(source.problem(("vms", name, "nics"), f"vm {name} is {locked}: "
                                                                  "shut it down to change its NICs"))
    for name in sorted(migrating):
        if name not in new.guests or old.guests[name] != new.guests[name]:
            where = ("vms", name) if name in new.guests else ("vms",)
            problems.append(source.problem(where, f"vm {name} is migrating: wait for it to end"))
    if problems:
        raise InputError(problems)
    return new, changes


class TopologyUpdates:
    def __init__(self, northbound: Northbound, current: Callable[[], Topology], use: Callable[[Topology], None],
                 view: Callable[[], FabricView], nics_locked: Callable[[str], str | None],
                 migrating: Callable[[], set[str]], events: EventStream):
        self.northbound = northbound
        self._current = current
        self._use = use  # make the controller run a topology
        self._view = view
        self._nics_locked = nics_locked
        self._migrating = migrating
        self._events = events
        self.generation = northbound.generation()
        self._applying = threading.Lock()
        self._written = threading.Condition()
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        northbound.watch(self._changed)

    def start(self) -> None:
        threading.Thread(target=self._follow, name="topology", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._wanted.set()

    def apply(self, text: str, filename: str, dry_run: bool = False) -> tuple[int, list[Change]]:
        """Check an edited topology file against what runs, write it to the database, and
        wait until the controller follows; its generation and what changed."""
        with self._applying:
            new, changes = checked_changes(self._current(), text, filename, self._view(), self._nics_locked,
                                           self._migrating())
            if dry_run or not changes:
                return self.generation, changes
            try:
                generation = self.northbound.load_topology(new, text)
            except Exception as error:  # the database is away or refused: nothing was applied
                raise Unavailable(f"the northbound database did not take the topology: {error}", "source") \
                    from None
            if not self.wait_for_generation(generation, APPLY_TIMEOUT):
                raise TimedOut(f"topology generation {generation} is in the database but the controller did "
                               f"not apply it within {APPLY_TIMEOUT:.0f}s", "source")
            return generation, changes

    def _changed(self, table: str) -> None:
        if table == "Topology":
            self._wanted.set()

    def _follow(self) -> None:
        """Make the controller follow the database's topology whenever someone changes it."""
        while not self._stopped.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stopped.is_set():
                return
            topology, generation = self.northbound.topology(), self.northbound.generation()
            if topology is not None and topology != self._current():
                try:
                    self._use(topology)
                except Exception as error:  # keep following: the next change may repair what this one broke
                    LOG.exception("applying topology generation %s failed", generation)
                    self._events.publish("topology", {"generation": generation, "applied": False,
                                                      "error": str(error)})
                else:
                    self._events.publish("topology", {"generation": generation, "applied": True,
                                                      "hosts": sorted(topology.hosts)})
            with self._written:
                self.generation = max(self.generation, generation)
                self._written.notify_all()

    def wait_for_generation(self, generation: int, timeout: float) -> bool:
        """Until the controller runs the database's topology of that generation (or a later one)."""
        deadline = time.monotonic() + timeout
        with self._written:
            while self.generation < generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._written.wait(remaining)
        return True
