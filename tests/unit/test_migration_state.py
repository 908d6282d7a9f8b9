"""A port bound on two hosts while it migrates: where it is active, and what each bridge does."""

import pytest

from sdnvirt.controller.fabric.flow import METADATA_MASK, NETWORK_MASK, Output, SetField, ToController
from sdnvirt.controller.state import FabricView, MemoryStore, resolve_active
from sdnvirt.vswitch.ports import Binding, HostPorts, TunnelPort

from helpers.fabric_views import OFPORTS, PIPELINE, TOPOLOGY, TUNNEL_OFPORTS, flows_of, port_id, table, view

A1_MAC = "02:00:00:00:0a:01"
DESTINATION_OFPORT = 7


def destination(ready_at: float | None = None) -> Binding:
    """a1's port, plugged on hv3 as libvirt does at the start of a migration."""
    return Binding(port_id("a1"), "hv3", "vnet9", DESTINATION_OFPORT, A1_MAC, "a1", ready_at)


def l2_for(host: str, fabric: FabricView, mac: str = A1_MAC, band: str = "known"):
    return [f for f in table(flows_of(host, fabric), "l2_lookup")
            if dict(f.match).get("eth_dst") == mac and f.priority == PIPELINE.table("l2_lookup").priority(band)]


def test_a_prepared_destination_is_programmed_but_not_yet_pointed_at():
    fabric = view(extra=(destination(),))
    assert fabric.active[port_id("a1")] == "hv1"
    hv3 = flows_of("hv3", fabric)
    assert [f for f in table(hv3, "classify") if ("in_port", DESTINATION_OFPORT) in f.match]
    rarp = [f for f in table(hv3, "port_security") if dict(f.match).get("eth_type") == 0x8035]
    assert [f.actions for f in rarp if ("in_port", DESTINATION_OFPORT) in f.match] == [(ToController(),)]
    # hv3 sends a1's traffic back to hv1, where a1 still runs; hv1 and hv2 are unchanged
    [towards] = l2_for("hv3", fabric)
    assert towards.actions == (SetField("tunnel_id", 5001), Output(TUNNEL_OFPORTS["hv1"]))
    # ... but never back to hv1 what hv1 itself sent
    [returned] = l2_for("hv3", fabric, band="returned")
    assert dict(returned.match)["tun_ipv4_src"] == str(TOPOLOGY.hosts["hv1"].address) and returned.drops
    assert l2_for("hv1", fabric) == l2_for("hv1", view())
    assert l2_for("hv2", fabric) == l2_for("hv2", view())


def test_flood_lists_hold_only_active_ports():
    hv3 = table(flows_of("hv3", view(extra=(destination(),))), "flood")
    assert all(Output(DESTINATION_OFPORT) not in f.actions for f in hv3)


def test_after_the_switch_over_every_host_points_at_the_destination():
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(destination(),)).ports.values():
        store.set_host_ports(ports)
    change = store.activate([port_id("a1")], "hv3")
    fabric = change.view
    assert change.activated == {"hv3"}
    assert change.owners == {("port", port_id("a1")), ("network", "blue/web")}
    assert [f.actions for f in l2_for("hv3", fabric)] == [(Output(DESTINATION_OFPORT),)]
    [remote] = l2_for("hv2", fabric)
    assert remote.actions == (SetField("tunnel_id", 5001), Output(TUNNEL_OFPORTS["hv3"]))
    assert dict(remote.match)["metadata"] == (5001, METADATA_MASK)  # from local ports only
    # the old place passes on what still reaches it, tunnelled packets too
    [old] = l2_for("hv1", fabric)
    assert old.actions == (SetField("tunnel_id", 5001), Output(TUNNEL_OFPORTS["hv3"]))
    assert dict(old.match)["metadata"] == (5001, NETWORK_MASK)
    [returned] = l2_for("hv1", fabric, band="returned")
    assert dict(returned.match)["tun_ipv4_src"] == str(TOPOLOGY.hosts["hv3"].address)
    assert not l2_for("hv2", fabric, band="returned")  # only where the port is bound
    hv2_flood = next(f for f in table(flows_of("hv2", fabric), "flood")
                     if dict(f.match).get("metadata") == (5001, METADATA_MASK))
    assert Output(TUNNEL_OFPORTS["hv3"]) in hv2_flood.actions


def test_when_the_source_unplugs_only_the_destination_remains():
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(destination(),)).ports.values():
        store.set_host_ports(ports)
    store.activate([port_id("a1")], "hv3")
    hv1 = store.view().ports["hv1"]
    change = store.set_host_ports(HostPorts("hv1", tuple(b for b in hv1.bindings if b.port_id != port_id("a1")),
                                            hv1.tunnels))
    assert change.view.active[port_id("a1")] == "hv3" and not change.activated
    assert not [f for f in flows_of("hv1", change.view) if ("in_port", OFPORTS["a1"]) in f.match]


def test_a_failed_migration_leaves_the_port_where_it_was():
    store = MemoryStore(TOPOLOGY)
    prepared = view(extra=(destination(),))
    for ports in prepared.ports.values():
        store.set_host_ports(ports)
    change = store.set_host_ports(view().ports["hv3"])  # libvirt unplugs the destination
    assert change.view.active[port_id("a1")] == "hv1" and not change.activated
    assert l2_for("hv2", change.view) == l2_for("hv2", view())


def test_a_controller_that_starts_mid_migration_keeps_the_port_where_it_was_ready_first():
    source = Binding(port_id("a1"), "hv1", "tap-a1", 3, A1_MAC, "a1", ready_at=100.0)
    placements = {port_id("a1"): {"hv1": source, "hv3": destination(ready_at=200.0)}}
    assert resolve_active({}, placements) == {port_id("a1"): "hv1"}
    assert resolve_active({port_id("a1"): "hv3"}, placements) == {port_id("a1"): "hv3"}


@pytest.mark.parametrize("first", ["hv1", "hv3"])
def test_a_restarted_controller_keeps_a_migrating_port_where_its_predecessor_left_it(first):
    """Restarted mid-migration (a1 active on hv1, prepared on hv3, both ready), whichever host's
    OVSDB answers first: a1 stays active on hv1, and nothing remembered outlives that."""
    store = MemoryStore(TOPOLOGY, remembered={port_id("a1"): "hv1"})
    hosts = view(extra=(destination(ready_at=50.0),)).ports  # the destination was ready first
    for host in sorted(hosts, key=lambda h: h != first):
        store.set_host_ports(hosts[host])
    assert store.view().active[port_id("a1")] == "hv1"
    store.activate([port_id("a1")], "hv3")  # the switch-over, once the migration goes on
    store.set_host_ports(view().ports["hv1"])  # the source unplugs, and plugs a1 again later
    store.set_host_ports(hosts["hv1"])
    assert store.view().active[port_id("a1")] == "hv3"


def test_what_a_restarted_controller_remembers_holds_until_that_hosts_first_reading():
    store = MemoryStore(TOPOLOGY, remembered={port_id("a1"): "hv1"})
    store.set_host_ports(HostPorts("hv1"))  # hv1 read: a1 is not there (it moved while no controller ran)
    store.set_host_ports(view(extra=(destination(),)).ports["hv3"])
    store.set_host_ports(view(extra=(destination(),)).ports["hv1"])  # a1 plugged on hv1 again, later
    assert store.view().active[port_id("a1")] == "hv3"


def test_a_switch_over_made_before_the_remembered_host_is_read_is_not_undone_by_its_reading():
    store = MemoryStore(TOPOLOGY, remembered={port_id("a1"): "hv1"})
    hosts = view(extra=(destination(),)).ports
    store.set_host_ports(hosts["hv3"])
    store.activate([port_id("a1")], "hv3")
    store.set_host_ports(hosts["hv1"])  # the source, read late, still plugged
    assert store.view().active[port_id("a1")] == "hv3"


def test_unrelated_ports_are_not_recompiled_by_a_switch_over():
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(destination(),)).ports.values():
        store.set_host_ports(ports)
    change = store.activate([port_id("a1")], "hv3")
    assert ("port", port_id("b1")) not in change.owners and ("port", port_id("a2")) not in change.owners


def test_a_hosts_tunnels_changing_recompile_what_its_bridge_carries_there_only():
    store = MemoryStore(TOPOLOGY)
    for ports in view().ports.values():
        store.set_host_ports(ports)
    hv2 = store.view().ports["hv2"]
    change = store.set_host_ports(HostPorts("hv2", hv2.bindings, hv2.tunnels + (TunnelPort("hv2", "hv9", "vx", 9),)))
    assert change.owners == store.view().owners_on("hv2") and change.hosts == {"hv2"}
    assert [h for h in TOPOLOGY.hosts if change.reaches(h)] == ["hv2"]
