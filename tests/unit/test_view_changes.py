"""Changes derived from the view before them, checked against views built from scratch.

Random sequences of what the controller sees (ports bound and unbound on hosts,
tunnels made, switch-overs, topology edits) are made on a store; after each one
its indexes must equal a view computed from nothing, and what the change says it
touched (owners, hosts, ports moved) must cover every flow that differs on any
bridge: a change that under-reports leaves a bridge wrong.
"""

from __future__ import annotations

import random

import pytest

from sdnvirt.controller.fabric.compiler import compile_host, compile_owner
from sdnvirt.controller.state import FabricView, MemoryStore, ViewChange, activation, same_for
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.topology import Topology
from sdnvirt.vswitch.ports import Binding, HostPorts, TunnelPort

from helpers.fabric_views import PIPELINE

BASE = """
name: views
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24}
hosts:
  hv1: {segment: rack1}
  hv2: {segment: rack1}
  hv3: {segment: rack2}
  hv4: {segment: rack2}
tenants:
  blue: {networks: {web: {subnet: 10.0.0.0/24, vni: 5001}, db: {subnet: 10.0.1.0/24, vni: 5003}}}
  red: {networks: {web: {subnet: 10.0.0.0/24, vni: 5002}}}
vms:
  a1: {host: hv1, nics: [{network: blue/web}, {network: blue/db}]}
  a2: {host: hv2, nics: [{network: blue/web}]}
  a3: {host: hv3, nics: [{network: blue/db}]}
  b1: {host: hv1, nics: [{network: red/web}]}
  b3: {host: hv3, nics: [{network: red/web}]}
  b4: {host: hv4, nics: [{network: red/web}]}
"""

VARIANTS = [
    BASE,
    BASE + "  a5: {host: hv4, nics: [{network: blue/web}]}\n",  # a guest added
    BASE.replace("  b4: {host: hv4, nics: [{network: red/web}]}\n", ""),  # a guest removed
    BASE.replace("a2: {host: hv2, nics: [{network: blue/web}]}", "a2: {host: hv2, nics: [{network: blue/db}]}"),
    BASE.replace("vni: 5003", "vni: 5004"),  # a network changed
    BASE.replace("  hv4: {segment: rack2}\n", "  hv4: {segment: rack2}\n  hv5: {segment: rack2}\n"),  # a host added
]
TOPOLOGIES = [load_topology_text(text, "views.yaml") for text in VARIANTS]
HOSTS = ("hv1", "hv2", "hv3", "hv4", "hv5")
SEEDS = range(12)
STEPS = 120


def every_port(topologies: list[Topology]) -> list[tuple[str, str]]:
    """(port id, mac) of every NIC of any variant."""
    return sorted({(nic.port_id, str(nic.mac)) for t in topologies for g in t.guests.values() for nic in g.nics})


PORTS = every_port(TOPOLOGIES)


def from_scratch(view: FabricView) -> FabricView:
    return FabricView(view.topology, view.ports, view.active)


INDEXES = ("logical_ports", "bound", "placements", "ports_by_network", "network_hosts", "active_hosts",
           "host_networks", "tunnels")


def flows(view: FabricView) -> dict[str, dict]:
    return {h: compile_host(view, h, PIPELINE) for h in view.topology.hosts}


def check(before: FabricView, change: ViewChange) -> None:
    after = change.view
    fresh = from_scratch(after)
    for index in INDEXES:
        assert getattr(after, index) == getattr(fresh, index), index
    assert set(after.active) == set(after.placements)
    assert all(host in after.placements[p] for p, host in after.active.items())
    assert dict(change.moved) == {p: h for p, h in after.active.items() if before.active.get(p) != h}
    if change.owners is None:
        return
    old, new = flows(before), flows(fresh)
    for host in after.topology.hosts:
        differ = {o for o in set(old.get(host, {})) | set(new[host])
                  if old.get(host, {}).get(o, frozenset()) != new[host].get(o, frozenset())}
        assert differ <= change.owners, (host, differ - change.owners)
        assert not differ or change.reaches(host), host


def random_step(rng: random.Random, store: MemoryStore) -> ViewChange:
    view = store.view()
    hosts = [h for h in HOSTS if h in view.topology.hosts]
    host = rng.choice(hosts)
    ports = view.ports.get(host, HostPorts(host))
    step = rng.random()
    if step < 0.35:  # a port bound (or bound again elsewhere on the bridge)
        port, mac = rng.choice(PORTS)
        kept = tuple(b for b in ports.bindings if b.port_id != port)
        binding = Binding(port, host, f"tap{rng.randrange(9)}", rng.randrange(10, 14), mac, "vm",
                          rng.choice((None, rng.random())))
        return store.set_host_ports(HostPorts(host, (*kept, binding), ports.tunnels))
    if step < 0.55 and ports.bindings:  # a port unbound
        gone = rng.choice(ports.bindings)
        return store.set_host_ports(HostPorts(host, tuple(b for b in ports.bindings if b != gone), ports.tunnels))
    if step < 0.65:  # the bridge's tunnels
        tunnels = tuple(TunnelPort(host, r, f"vx-{r}", rng.randrange(1, 4)) for r in hosts
                        if r != host and rng.random() < 0.8)
        return store.set_host_ports(HostPorts(host, ports.bindings, tunnels))
    if step < 0.9:  # a switch-over of one port to a host it is bound on
        port = rng.choice(sorted(view.placements) or [PORTS[0][0]])
        return store.activate([port], rng.choice(sorted(view.placements.get(port, {host}))))
    return store.set_topology(rng.choice(TOPOLOGIES))


@pytest.mark.parametrize("seed", SEEDS)
def test_every_change_says_what_it_touched_and_its_view_equals_one_built_from_scratch(seed):
    rng = random.Random(seed)
    store = MemoryStore(TOPOLOGIES[0])
    for _ in range(STEPS):
        before = store.view()
        held = {index: dict(getattr(before, index)) for index in (*INDEXES, "active")}
        check(before, random_step(rng, store))
        # indexes share entries with the view before: a change never alters that view's
        assert held == {index: dict(getattr(before, index)) for index in held}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_staged_switch_over_that_is_said_to_hold_compiles_as_the_one_made(seed):
    """What `same_for` approves must be what the switch-over would compile now."""
    rng = random.Random(seed)
    store = MemoryStore(TOPOLOGIES[0])
    held = 0
    for _ in range(STEPS):
        view = store.view()
        bound_twice = [p for p, where in view.placements.items() if len(where) > 1]
        if not bound_twice:
            random_step(rng, store)
            continue
        port = rng.choice(bound_twice)
        host = rng.choice(sorted(view.placements[port]))
        staged = activation(view, [port], host)
        if rng.random() < 0.5:
            random_step(rng, store)
        made = activation(store.view(), [port], host)
        if staged.owners and staged.owners == made.owners and same_for(staged.view, made.view, staged.owners):
            held += 1
            for h in made.view.topology.hosts:
                for owner in staged.owners:
                    assert (compile_owner(staged.view, h, PIPELINE, owner)
                            == compile_owner(made.view, h, PIPELINE, owner)), (h, owner)
        random_step(rng, store)
    assert held > 0  # the check did run


def test_a_guest_added_to_the_topology_touches_its_own_network_only():
    store = MemoryStore(TOPOLOGIES[0])
    for host in ("hv1", "hv2", "hv3", "hv4"):
        bindings = tuple(Binding(nic.port_id, host, f"tap{i}", 10 + i, str(nic.mac), g.name)
                         for g in TOPOLOGIES[1].guests.values() if g.host == host for i, nic in enumerate(g.nics))
        store.set_host_ports(HostPorts(host, bindings))
    change = store.set_topology(TOPOLOGIES[1])
    a5 = TOPOLOGIES[1].guests["a5"].nics[0].port_id
    assert change.view.active[a5] == "hv4" and change.moved == {a5: "hv4"}
    assert {name for kind, name in change.owners if kind == "network"} == {"blue/web"}
    assert change.hosts == {"hv1", "hv2", "hv4"}
