"""A small fabric for unit tests of the compiler and the store: its topology, ports and views."""

from __future__ import annotations

from sdnvirt.controller.fabric.compiler import compile_host
from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.controller.state import FabricView, resolve_active
from sdnvirt.model.loader import load_topology_text
from sdnvirt.vswitch.ports import Binding, HostPorts, TunnelPort

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
