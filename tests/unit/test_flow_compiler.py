"""The flow compiler: model and bindings in, one host's flows out (no switch needed)."""

import os
from pathlib import Path

import pytest

from sdnvirt.controller.fabric.compiler import compile_host
from sdnvirt.controller.fabric.cookies import owner_names
from sdnvirt.controller.fabric.flow import FROM_TUNNEL, METADATA_MASK, NETWORK_MASK, Output, SetField
from sdnvirt.controller.fabric.flow_text import flow_line
from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.controller.state import FabricView, resolve_active
from sdnvirt.model.loader import load_topology_text
from sdnvirt.vswitch.ports import Binding, HostPorts, TunnelPort

GOLDEN = Path(__file__).resolve().parents[2] / "flows" / "golden"
PIPELINE = load_pipeline()

SMALL = """
name: small
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24}
hosts:
  hv1: {segment: rack1}
  hv2: {segment: rack1}
  hv3: {segment: rack2}
tenants:
  blue: {networks: {web: {subnet: 10.0.0.0/24, vni: 5001}}}
  red: {networks: {web: {subnet: 10.0.0.0/24, vni: 5002}}}
vms:
  a1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.11, mac: "02:00:00:00:0a:01"}]}
  a2: {host: hv2, nics: [{network: blue/web, ip: 10.0.0.12, mac: "02:00:00:00:0a:02"}]}
  b1: {host: hv1, nics: [{network: red/web, ip: 10.0.0.11, mac: "02:00:00:00:0b:01"}]}
  b3: {host: hv3, nics: [{network: red/web, ip: 10.0.0.13, mac: "02:00:00:00:0b:03"}]}
"""

TOPOLOGY = load_topology_text(SMALL, "small.yaml")
OFPORTS = {"a1": 3, "a2": 3, "b1": 4, "b3": 3}
TUNNEL_OFPORTS = {"hv1": 1, "hv2": 2, "hv3": 3}  # the ofport of vx-<host> on every other host


def port_id(guest: str) -> str:
    return TOPOLOGY.guests[guest].nics[0].port_id


def view(bound=("a1", "a2", "b1", "b3"), tunnels=True, extra: tuple[Binding, ...] = ()) -> FabricView:
    ports = {}
    for host in TOPOLOGY.hosts:
        bindings = tuple(Binding(port_id(g), host, f"tap-{g}", OFPORTS[g], str(TOPOLOGY.guests[g].nics[0].mac), g)
                         for g in bound if TOPOLOGY.guests[g].host == host)
        bindings += tuple(b for b in extra if b.host == host)
        tunnel_ports = tuple(TunnelPort(host, r, f"vx-{r}", TUNNEL_OFPORTS[r])
                             for r in TOPOLOGY.hosts if r != host) if tunnels else ()
        ports[host] = HostPorts(host, bindings, tunnel_ports)
    return FabricView(TOPOLOGY, ports, resolve_active({}, FabricView(TOPOLOGY, ports).placements))


def flows_of(host: str, fabric: FabricView | None = None) -> frozenset:
    return frozenset(f for flows in compile_host(fabric or view(), host, PIPELINE).values() for f in flows)


def table(host_flows, name: str):
    tid = PIPELINE.table(name).id
    return [f for f in host_flows if f.table == tid]


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
def test_golden_flows(host):
    """The whole flow set of each host, as text; SDNVIRT_UPDATE_GOLDEN=1 rewrites the files."""
    owners = owner_names(TOPOLOGY)
    lines = sorted(flow_line(f, PIPELINE, owners[f.cookie]) for f in flows_of(host))
    golden = GOLDEN / f"small-{host}.txt"
    if os.environ.get("SDNVIRT_UPDATE_GOLDEN"):
        golden.write_text("\n".join(lines) + "\n")
    assert golden.read_text().splitlines() == lines
