"""Tenant networks across hosts and segments: who reaches whom, with real packets, and
TCP and UDP that arrive intact."""

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from sdnvirt.lab.migration_probe import migrate
from sdnvirt.lab.reachability import format_matrix, measure
from sdnvirt.lab.traffic import tcp_transfer, udp_exchange
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE, guest_port
from sdnvirt.vswitch.ports import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, READY, VM_ID

from helpers.guests import control_frame, in_guest, listen, nic, on_guest, ping, send_frames
from helpers.traffic import assert_tcp_intact_both_ways, assert_udp_intact_both_ways

# (source, target, path the packets take)
SAME_NETWORK = [
    ("a1", "a2", "same host"),
    ("a1", "a3", "same segment"),
    ("a1", "a4", "across the router"),
    ("a3", "a4", "across the router"),
    ("b1", "b2", "same segment"),
    ("b1", "b3", "across the router"),
    ("b2", "b3", "across the router"),
]


@pytest.mark.parametrize("source,target,path", SAME_NETWORK)
def test_guests_of_one_network_reach_each_other(fabric_lab, source, target, path):
    assert ping(fabric_lab, source, str(nic(fabric_lab, target).ip)) == 3, path


# (one guest, the other, the path between them), each checked both ways
PATHS = [("a1", "a2", "same host"), ("a1", "a3", "same segment"), ("a1", "a4", "across the router")]


@pytest.mark.parametrize("one,other,path", PATHS)
def test_tcp_carries_10_mib_intact_both_ways(fabric_lab, one, other, path):
    assert_tcp_intact_both_ways(fabric_lab, one, other, path)


@pytest.mark.parametrize("one,other,path", PATHS)
def test_udp_datagrams_come_back_intact_both_ways(fabric_lab, one, other, path):
    assert_udp_intact_both_ways(fabric_lab, one, other, path)


def test_a_netns_guest_that_moved_across_segments_carries_tcp_and_udp_intact(fabric_lab):
    """Its new link (staged on the destination, then renamed) computes its checksums too."""
    try:
        assert migrate(fabric_lab, "a4", "hv1")["result"] == "completed"
        assert_tcp_intact_both_ways(fabric_lab, "a4", "a3", "a4 moved from hv3 to hv1")
        assert_udp_intact_both_ways(fabric_lab, "a4", "a3", "a4 moved from hv3 to hv1")
    finally:
        if fabric_lab.api().vm("a4")["host"] != "hv3":
            assert migrate(fabric_lab, "a4", "hv3")["result"] == "completed"


def test_tcp_and_udp_to_a_reused_address_stay_in_the_tenant(fabric_lab):
    """10.0.0.11 is a1 in blue and b1 in red: a3's transfer arrives whole at a1 (the only one
    listening for it), b2's at b1, and each resolved the address to its own tenant's MAC."""
    for source, owner in (("a3", "a1"), ("b2", "b1")):
        assert tcp_transfer(fabric_lab, source, owner, 2**20).intact
        assert udp_exchange(fabric_lab, source, owner, 10).intact
        neighbour = in_guest(fabric_lab, source, "ip", "neigh", "show", "10.0.0.11").stdout
        assert str(nic(fabric_lab, owner).mac) in neighbour, (source, neighbour)


def test_connectivity_matrix_matches_the_tenant_networks(fabric_lab):
    cells = measure(fabric_lab)
    wrong = [c for c in cells if not c.ok]
    assert not wrong, format_matrix(cells)
    for protocol in ("icmp", "tcp", "udp"):
        reached = {(c.source.guest, c.target.guest) for c in cells if getattr(c, protocol)}
        assert ("a1", "a4") in reached and ("b1", "b3") in reached, protocol
        assert not any(s[0] != t[0] for s, t in reached), protocol  # a* never reaches b*, nor b* a*


def test_frames_to_another_tenants_guest_never_arrive(fabric_lab):
    """Blue a1 addresses red b3 by its own MAC and IP (10.0.0.13, which is a3 in blue)."""
    a1, b3 = nic(fabric_lab, "a1"), nic(fabric_lab, "b3")
    frames = [bytes(Ether(src=str(a1.mac), dst=str(b3.mac)) / IP(src=str(a1.ip), dst=str(b3.ip)) / ICMP(seq=i))
              for i in range(5)]
    [sniff] = listen(on_guest(fabric_lab, "b3", "icmp"))
    send_frames(fabric_lab, "a1", frames)
    control = control_frame(fabric_lab, "b1", "b3")  # from a1's host, in b3's own tenant: it must come
    send_frames(fabric_lab, "b1", [control])
    assert sniff.frames() == [control]


def test_overlapping_addresses_answer_within_their_own_tenant(fabric_lab):
    """10.0.0.11 is a1 in blue and b1 in red: a3 and b2 each reach their own tenant's."""
    for source, owner in (("a3", "a1"), ("b2", "b1")):
        assert ping(fabric_lab, source, "10.0.0.11") == 3
        neighbour = in_guest(fabric_lab, source, "ip", "neigh", "show", "10.0.0.11").stdout
        assert str(nic(fabric_lab, owner).mac) in neighbour, (source, neighbour)


def test_an_interface_plugged_again_as_it_was_is_marked_ready_again(fabric_lab):
    """libvirt starting a VM again deletes and adds its port in one OVSDB transaction: the
    controller sees the same binding (name, ofport, ids) without its ready mark and has no flow
    to change; it must mark it all the same, or the VM's start waits on libvirt's hook for ever."""
    port = guest_port(nic(fabric_lab, "a2").port_id)
    ovs = fabric_lab.hosts()[fabric_lab.topology.guests["a2"].host].openvswitch
    ids = {key: ovs.vsctl("get", "Interface", port, f"external_ids:{key}").strip().strip('"')
           for key in (IFACE_ID, ATTACHED_MAC, VM_ID, IFACE_STATUS)}
    ofport = ovs.vsctl("get", "Interface", port, "ofport").strip()
    ovs.vsctl("--", "--if-exists", "del-port", INTEGRATION_BRIDGE, port, "--", "add-port", INTEGRATION_BRIDGE, port,
              "--", "set", "Interface", port, *(f'external_ids:{key}="{value}"' for key, value in ids.items()))
    assert ovs.vsctl("get", "Interface", port, "ofport").strip() == ofport  # the same binding, as libvirt's
    ovs.vsctl("--timeout=10", "wait-until", "Interface", port, f"external_ids:{READY}=true")
    assert ping(fabric_lab, "a1", str(nic(fabric_lab, "a2").ip)) == 3
    assert tcp_transfer(fabric_lab, "a1", "a2", 2**20).intact
