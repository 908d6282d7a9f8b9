"""What changes between two topologies: what `sdnvirt diff` shows and `sdnvirt apply` does.

Segments, hosts, networks and guests come and go live; a guest's NICs too.
What cannot change in place (a segment's subnet, a network's VNI, a guest's
kind or memory, ...) is reported as a problem with the field at fault: remove
the thing, apply, and add it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.source import Source, parse_source
from sdnvirt.model.topology import Guest, Nic, Topology


@dataclass(frozen=True)
class Change:
    action: str  # "add" | "remove"
    kind: str  # "segment" | "host" | "network" | "guest" | "nic"
    name: str  # for a NIC: "guest/eth<index>"
    detail: str

    def __str__(self) -> str:
        return f"{'+' if self.action == 'add' else '-'} {self.kind} {self.name}: {self.detail}"


def _nic_detail(nic: Nic) -> str:
    return f"{nic.network} {nic.ip} {nic.mac}"


def changes_to(old: Topology, text: str, filename: str) -> tuple[Topology, list[Change]]:
    """The topology a file describes and what it changes in `old`; InputError, with every
    problem placed in the file, if it is not valid or changes what cannot change in place."""
    new = load_topology_text(text, filename)
    problems = _fixed_fields(old, new, parse_source(text, filename))
    if problems:
        raise InputError(problems)
    return new, topology_changes(old, new)


def topology_changes(old: Topology, new: Topology) -> list[Change]:
    """Removals first (in the order they must happen), then additions."""
    removals, additions = [], []
    for kind, before, after, detail in (
        ("segment", old.segments, new.segments, lambda s: f"{s.subnet}"),
        ("host", old.hosts, new.hosts, lambda h: f"{h.segment} {h.address}"),
        ("network", old.networks, new.networks, lambda n: f"{n.subnet} vni {n.vni}"),
        ("guest", old.guests, new.guests, lambda g: f"{g.kind.value} on {g.host}"),
    ):
        removals += [Change("remove", kind, name, detail(before[name])) for name in before if name not in after]
        additions += [Change("add", kind, name, detail(after[name])) for name in after if name not in before]
    for name in set(old.guests) & set(new.guests):
        was, now = {n.index: n for n in old.guests[name].nics}, {n.index: n for n in new.guests[name].nics}
        for index in sorted(set(was) | set(now)):
            if was.get(index) == now.get(index):
                continue
            if index in was:
                removals.append(Change("remove", "nic", f"{name}/eth{index}", _nic_detail(was[index])))
            if index in now:
                additions.append(Change("add", "nic", f"{name}/eth{index}", _nic_detail(now[index])))
    order = ["nic", "guest", "network", "host", "segment"]  # what uses a thing goes before it
    removals.sort(key=lambda c: (order.index(c.kind), c.name))
    additions.sort(key=lambda c: (order[::-1].index(c.kind), c.name))
    return removals + additions


def _fixed_fields(old: Topology, new: Topology, source: Source) -> list[Problem]:
    problems = []
    if old.name != new.name:
        problems.append(source.problem(("name",), f"is {new.name!r}; the running lab is {old.name!r}"))

    def fixed(path: tuple, before: object, after: object) -> None:
        if before != after:
            problems.append(source.problem(path, f"was {before}, now {after}: this cannot change in place "
                                                 "(remove it, apply, add it again)"))

    for name in sorted(set(old.segments) & set(new.segments)):
        for field in ("subnet", "gateway"):
            fixed(("segments", name, field), getattr(old.segments[name], field), getattr(new.segments[name], field))
    for name in sorted(set(old.hosts) & set(new.hosts)):
        for field in ("segment", "address"):
            fixed(("hosts", name, field), getattr(old.hosts[name], field), getattr(new.hosts[name], field))
    for key in sorted(set(old.networks) & set(new.networks)):
        tenant, network = key.split("/")
        for field in ("subnet", "vni"):
            fixed(("tenants", tenant, "networks", network, field), getattr(old.networks[key], field),
                  getattr(new.networks[key], field))
    for name in sorted(set(old.guests) & set(new.guests)):
        before, after = _guest_fields(old.guests[name]), _guest_fields(new.guests[name])
        for field in before:
            fixed(("vms", name, field), before[field], after[field])
    return problems


def _guest_fields(guest: Guest) -> dict[str, object]:
    return {"host": guest.host, "kind": guest.kind.value, "memory": guest.memory, "vcpus": guest.vcpus,
            "autostart": guest.autostart}
