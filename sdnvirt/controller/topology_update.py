"""Whether a new topology can be applied to the fabric as it runs now.

The file alone says whether the topology is valid and whether it changes
what cannot change in place (sdnvirt.model.changes). What runs says the rest:
a host that still holds a guest cannot go, a running VM's NICs cannot change
under it, a migrating VM cannot be removed. Each refusal is placed in the file.
"""

from __future__ import annotations

from collections.abc import Callable

from sdnvirt.controller.state import FabricView
from sdnvirt.model.changes import Change, changes_to
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.source import parse_source
from sdnvirt.model.topology import GuestKind, Topology

LIVE_STATES = ("running", "paused")


def checked_changes(old: Topology, text: str, filename: str, view: FabricView,
                    vm_state: Callable[[str], str], migrating: set[str]) -> tuple[Topology, list[Change]]:
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
        if was.kind == GuestKind.QEMU and was.nics != now.nics and vm_state(name) in LIVE_STATES:
            problems.append(source.problem(("vms", name, "nics"), f"vm {name} is {vm_state(name)}: "
                                                                  "shut it down to change its NICs"))
    for name in sorted(migrating):
        if name not in new.guests or old.guests[name] != new.guests[name]:
            where = ("vms", name) if name in new.guests else ("vms",)
            problems.append(source.problem(where, f"vm {name} is migrating: wait for it to end"))
    if problems:
        raise InputError(problems)
    return new, changes
