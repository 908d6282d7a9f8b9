"""The flow compiler: model and bindings in, one host's flows out (no switch needed)."""

from pathlib import Path

import pytest

from sdnvirt.controller.fabric.cookies import owner_names
from sdnvirt.controller.fabric.flow import FROM_TUNNEL, METADATA_MASK, NETWORK_MASK, Output, SetField
from sdnvirt.controller.fabric.flow_text import flow_line
from sdnvirt.vswitch.ports import Binding

from helpers.fabric_views import PIPELINE, TOPOLOGY, TUNNEL_OFPORTS, flows_of, table, view

GOLDEN = Path(__file__).with_name("golden")


def test_local_port_is_classified_into_its_network_and_held_to_its_addresses():
    hv1 = flows_of("hv1")
    [classify] = [f for f in table(hv1, "classify") if ("in_port", 3) in f.match]
    assert classify.write_metadata == (5001, METADATA_MASK)
    allowed = [dict(f.match) for f in table(hv1, "port_security") if ("in_port", 3) in f.match and f.goto]
    assert {"in_port": 3, "eth_src": "02:00:00:00:0a:01", "eth_type": 0x0800, "ipv4_src": "10.0.0.11"} in allowed
    assert {"in_port": 3, "eth_src": "02:00:00:00:0a:01", "eth_type": 0x0806, "arp_sha": "02:00:00:00:0a:01",
            "arp_spa": "10.0.0.11"} in allowed
    [violation] = [f for f in table(hv1, "port_security") if f.match == (("in_port", 3),)]
    assert violation.drops and violation.priority == PIPELINE.table("port_security").priority("violation")


def test_known_macs_go_to_the_local_port_or_the_tunnel_of_their_host():
    hv1 = table(flows_of("hv1"), "l2_lookup")
    by_mac = {dict(f.match).get("eth_dst"): f for f in hv1}
    assert by_mac["02:00:00:00:0a:01"].actions == (Output(3),)
    remote = by_mac["02:00:00:00:0a:02"]  # a2 on hv2
    assert remote.actions == (SetField("tunnel_id", 5001), Output(TUNNEL_OFPORTS["hv2"]))
    assert dict(remote.match)["metadata"] == (5001, METADATA_MASK)  # from local ports only: no hairpin
    assert by_mac["02:00:00:00:0b:03"].actions == (SetField("tunnel_id", 5002), Output(TUNNEL_OFPORTS["hv3"]))


def test_flood_list_is_local_ports_plus_hosts_with_ports_in_the_network():
    hv1 = table(flows_of("hv1"), "flood")
    blue_from_port = next(f for f in hv1 if dict(f.match).get("metadata") == (5001, METADATA_MASK))
    assert blue_from_port.actions == (Output(3), SetField("tunnel_id", 5001), Output(TUNNEL_OFPORTS["hv2"]))
    blue_from_tunnel = next(f for f in hv1 if dict(f.match).get("metadata") == (5001 | FROM_TUNNEL, METADATA_MASK))
    assert blue_from_tunnel.actions == (Output(3),)  # split horizon


def test_a_host_carries_only_the_networks_it_has_ports_in():
    hv2 = flows_of("hv2")
    assert not [f for f in hv2 if dict(f.match).get("tunnel_id") == 5002]
    assert not [f for f in hv2 if dict(f.match).get("metadata", (0, 0))[0] & NETWORK_MASK == 5002]
    assert not [f for f in hv2 if dict(f.match).get("eth_dst") in ("02:00:00:00:0b:01", "02:00:00:00:0b:03")]


def test_arp_is_answered_for_every_bound_address_of_the_network_but_gratuitous_arp_passes():
    arp = table(flows_of("hv1"), "arp_responder")
    answered = {(dict(f.match)["metadata"][0], dict(f.match)["arp_tpa"]) for f in arp if f.actions}
    assert answered == {(5001, "10.0.0.11"), (5001, "10.0.0.12"), (5002, "10.0.0.11"), (5002, "10.0.0.13")}
    passing = [dict(f.match) for f in arp if f.priority == PIPELINE.table("arp_responder").priority("pass")]
    assert {"arp_spa": "10.0.0.12", "arp_tpa": "10.0.0.12"}.items() <= next(
        m for m in passing if m.get("arp_tpa") == "10.0.0.12" and m["metadata"][0] == 5001).items()


def test_unbound_ports_get_no_flows_anywhere():
    fabric = view(bound=("a1", "b1", "b3"))
    for host in TOPOLOGY.hosts:
        assert not [f for f in flows_of(host, fabric) if "02:00:00:00:0a:02" in str(f)]
    # a1 is alone in blue/web now: its flood list has no tunnel
    flood = table(flows_of("hv1", fabric), "flood")
    blue = next(f for f in flood if dict(f.match).get("metadata") == (5001, METADATA_MASK))
    assert blue.actions == (Output(3),)


def test_unknown_iface_ids_are_ignored():
    stranger = Binding("not-a-port-of-this-topology", "hv1", "tapx", 9, "02:99:99:99:99:99", "x")
    assert flows_of("hv1", view(extra=(stranger,))) == flows_of("hv1")


def test_remote_ports_wait_for_their_tunnel():
    hv1 = flows_of("hv1", view(tunnels=False))
    assert not [f for f in table(hv1, "l2_lookup") if any(isinstance(a, SetField) for a in f.actions)]


def test_every_flow_has_an_owner():
    owners = owner_names(TOPOLOGY)
    for host in TOPOLOGY.hosts:
        assert all(f.cookie in owners for f in flows_of(host))


@pytest.mark.parametrize("host", ["hv1", "hv2", "hv3"])
def test_golden_flows(host, update_golden):
    """The whole flow set of each host, as text; `pytest --update-golden` rewrites the files (never in CI)."""
    owners = owner_names(TOPOLOGY)
    lines = sorted(flow_line(f, PIPELINE, owners[f.cookie]) for f in flows_of(host))
    golden = GOLDEN / f"small-{host}.txt"
    if update_golden:
        golden.write_text("\n".join(lines) + "\n")
    assert golden.read_text().splitlines() == lines
