"""A switch-over readied while its VM's memory is copied: every flow-mod it will send is encoded
ahead (os-ken's encoder is the costliest step of a round, and a switch-over's flows are new)."""

from __future__ import annotations

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.compiler import compile_host, compile_owner
from sdnvirt.controller.fabric.openflow import encoded_flow_mod
from sdnvirt.controller.fabric.sync import diff_flows
from sdnvirt.controller.state import MemoryStore, activation
from sdnvirt.vswitch.ports import Binding

from helpers.fabric_views import PIPELINE, TOPOLOGY, port_id, view


def test_every_flow_mod_of_the_switch_over_is_encoded_ahead():
    moving = Binding(port_id("a1"), "hv3", "tap-moving", 41, str(TOPOLOGY.guests["a1"].nics[0].mac), "a1")
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(moving,)).ports.values():
        store.set_host_ports(ports)
    fabric = Fabric(store, PIPELINE, lambda host, owners: None, lambda host: None)
    try:
        now = store.view()
        change = activation(now, [port_id("a1")], "hv3")
        assert change and change.activated == {"hv3"} and store.view() is now  # nothing switched yet
        encoded_flow_mod.cache_clear()
        assert fabric.prepare(change) > 0
        prepared = encoded_flow_mod.cache_info().misses
        sent = 0
        for host in TOPOLOGY.hosts:  # what each bridge's round sends at the switch-over
            installed = {f.key: f for flows in compile_host(now, host, PIPELINE).values() for f in flows}
            old = [f for owner in change.owners for f in compile_owner(now, host, PIPELINE, owner)]
            new = [f for owner in change.owners for f in compile_owner(change.view, host, PIPELINE, owner)]
            diff = diff_flows(installed, old, new)
            for rule in diff.deletes:
                encoded_flow_mod(rule, True)
            for rule in diff.adds:
                encoded_flow_mod(rule, False)
            sent += len(diff)
        assert sent > 0 and encoded_flow_mod.cache_info().misses == prepared  # every one was ready
    finally:
        fabric.stop()


def test_nothing_to_prepare_where_the_port_is_not_bound():
    store = MemoryStore(TOPOLOGY)
    for ports in view().ports.values():
        store.set_host_ports(ports)
    fabric = Fabric(store, PIPELINE, lambda host, owners: None, lambda host: None)
    try:
        assert fabric.prepare(activation(store.view(), [port_id("a1")], "hv3")) == 0
    finally:
        fabric.stop()
