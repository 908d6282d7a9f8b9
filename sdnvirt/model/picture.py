"""A picture of a topology: where each guest runs and which networks join the guests.

The text tree is for a terminal and for diffs; the graph (DOT, SVG, PNG) is
for a person who wants to see the underlay and the tenant networks at once.
"""

from __future__ import annotations

import graphviz

from sdnvirt.model.topology import Guest, Host, Topology

FORMATS = ("text", "dot", "svg", "png")
# Fill colours of tenant networks, by tenant in name order; more tenants reuse them.
TENANT_COLOURS = ("lightblue", "lightsalmon", "palegreen", "khaki", "plum", "lightgrey", "aquamarine", "wheat")


def render(topology: Topology, fmt: str) -> str | bytes:
    """The topology in one of FORMATS; PNG is bytes, the others text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format '{fmt}'; expected one of {', '.join(FORMATS)}")
    if fmt == "text":
        return text_tree(topology)
    graph = diagram(topology)
    if fmt == "dot":
        return graph.source
    if fmt == "svg":
        return graph.pipe(format="svg", encoding="utf-8")
    return graph.pipe(format="png")


def _hosts_in(topology: Topology, segment: str) -> list[Host]:
    return [host for host in topology.hosts.values() if host.segment == segment]


def _guests_on(topology: Topology, host: str) -> list[Guest]:
    return [guest for guest in topology.guests.values() if guest.host == host]


def text_tree(topology: Topology) -> str:
    """Segments, their hosts and the hosts' guests with every NIC; then each network's members."""
    lines = [f"topology {topology.name}"]
    for segment in topology.segments.values():
        lines.append(f"segment {segment.name} {segment.subnet} gateway {segment.gateway}")
        for host in _hosts_in(topology, segment.name):
            lines.append(f"  host {host.name} {host.address}")
            for guest in _guests_on(topology, host.name):
                lines.append(f"    guest {guest.name} {guest.kind.value}, {guest.memory} MiB, {guest.vcpus} vcpu")
                lines += [f"      nics[{nic.index}] {nic.network} {nic.ip} {nic.mac}" for nic in guest.nics]
    if topology.networks:
        lines.append("networks")
    for key, network in topology.networks.items():
        members = ", ".join(f"{guest.name} {nic.ip}" for guest, nic in topology.nics_on(key)) or "no guests"
        lines.append(f"  {key} {network.subnet} vni {network.vni}: {members}")
    return "\n".join(lines) + "\n"


def diagram(topology: Topology) -> graphviz.Graph:
    """Segments as boxes around their hosts, hosts around their guests, NICs as lines to networks."""
    font = {"fontname": "Helvetica", "fontsize": "10"}
    graph = graphviz.Graph(
        name=topology.name,
        graph_attr={"label": f"topology {topology.name}", "labelloc": "t", **font},
        node_attr=font,
        edge_attr={**font, "fontsize": "8"},
    )
    if topology.segments:
        graph.node("router", "underlay router", shape="diamond")
    for segment in topology.segments.values():
        gateway = f"gateway/{segment.name}"
        with graph.subgraph(name=f"cluster_segment_{segment.name}") as box:
            box.attr(label=f"segment {segment.name}\n{segment.subnet}", style="rounded")
            box.node(gateway, f"gateway\n{segment.gateway}", shape="plaintext")
            for host in _hosts_in(topology, segment.name):
                _draw_host(box, topology, host)
                box.edge(gateway, f"bridge/{host.name}", style="dashed")
        graph.edge("router", gateway)
    colours = {tenant: TENANT_COLOURS[i % len(TENANT_COLOURS)] for i, tenant in enumerate(topology.tenants)}
    for key, network in topology.networks.items():
        label = f"{key}\n{network.subnet}\nvni {network.vni}"
        graph.node(f"network/{key}", label, shape="ellipse", style="filled", fillcolor=colours[network.tenant])
    for guest in topology.guests.values():
        for nic in guest.nics:
            graph.edge(f"guest/{guest.name}", f"network/{nic.network}", label=f"{nic.ip}\n{nic.mac}")
    return graph


def _draw_host(segment_box: graphviz.Graph, topology: Topology, host: Host) -> None:
    with segment_box.subgraph(name=f"cluster_host_{host.name}") as box:
        box.attr(label=f"host {host.name}\n{host.address}", style="filled", fillcolor="whitesmoke")
        box.node(f"bridge/{host.name}", "integration bridge", shape="box", style="rounded")
        for guest in _guests_on(topology, host.name):
            label = f"{guest.name}\n{guest.kind.value}"
            box.node(f"guest/{guest.name}", label, shape="box", style="filled", fillcolor="white")
