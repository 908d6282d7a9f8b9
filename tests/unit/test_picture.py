"""Pictures of a topology: every host, guest and network appears, and Graphviz can draw it."""

import shutil
from pathlib import Path

import pytest

from sdnvirt.model.loader import load_topology
from sdnvirt.model.picture import render

TOPOLOGY = load_topology(Path(__file__).parent / "topologies" / "two-racks.yaml")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")


def test_dot_mentions_every_segment_host_guest_and_network():
    dot = render(TOPOLOGY, "dot")

    for name in [*TOPOLOGY.segments, *TOPOLOGY.hosts, *TOPOLOGY.guests]:
        assert name in dot
    for network in TOPOLOGY.networks.values():
        assert f"{network.key}\n{network.subnet}\nvni {network.vni}" in dot
    assert "underlay router" in dot
    assert "host hv1\n100.64.1.2" in dot
    assert "10.0.0.11\n02:00:00:00:00:01" in dot


def test_networks_of_one_tenant_share_a_colour_and_tenants_differ():
    dot = render(TOPOLOGY, "dot")

    def colour(key: str) -> str:
        node = dot[dot.index(f'"network/{key}" [') :]
        return node[node.index("fillcolor=") : node.index("]")].split()[0]

    assert colour("blue/web") == colour("blue/db")
    assert colour("blue/web") != colour("red/web")


def test_text_tree_nests_guests_in_hosts_in_segments_then_lists_networks():
    text = render(TOPOLOGY, "text")

    assert text.splitlines()[:6] == [
        "topology two-racks",
        "segment rack1 100.64.1.0/24 gateway 100.64.1.1",
        "  host hv1 100.64.1.2",
        "    guest web1 netns, 256 MiB, 2 vcpu",
        "      nics[0] blue/web 10.0.0.11 02:00:00:00:00:01",
        f"      nics[1] blue/db 10.0.1.2 {TOPOLOGY.guests['web1'].nics[1].mac}",
    ]
    assert "  blue/web 10.0.0.0/24 vni 5001: web1 10.0.0.11, web2 10.0.0.2" in text.splitlines()


@needs_dot
def test_svg_renders():
    svg = render(TOPOLOGY, "svg")

    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert "web2" in svg


@needs_dot
def test_png_renders():
    assert render(TOPOLOGY, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="expected one of text, dot, svg, png"):
        render(TOPOLOGY, "pdf")
