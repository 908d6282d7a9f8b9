"""What the connectivity matrix and the traffic checks make of their measurements."""

from __future__ import annotations

from sdnvirt.lab.reachability import Cell, Endpoint, format_matrix
from sdnvirt.lab.traffic import Tally, TcpResult, UdpResult

from helpers.fabric_views import TOPOLOGY


def endpoint(guest: str) -> Endpoint:
    return Endpoint(guest, TOPOLOGY.guests[guest].nics[0])


def test_a_pair_is_wrong_by_each_protocol_that_differs_from_the_tenant_networks():
    a1, a2, b1 = endpoint("a1"), endpoint("a2"), endpoint("b1")
    cells = [Cell(a1, a2, icmp=True, tcp=True, udp=True),
             Cell(a2, a1, icmp=True, tcp=True, udp=False),  # blue to blue: UDP lost
             Cell(a1, b1, icmp=False, tcp=True, udp=False)]  # blue to red: TCP got through
    assert [(c.reached, c.wrong, c.ok) for c in cells] == [
        (True, [], True), (False, ["udp"], False), (False, ["tcp"], False)]
    matrix = format_matrix(cells)
    rows = {line.split()[0]: line.split()[1:4] for line in matrix.splitlines()[1:4]}
    assert rows == {"a1/eth0": ["-", "+++", ".X."], "a2/eth0": ["++X", "-", "-"], "b1/eth0": ["-", "-", "-"]}
    assert matrix.endswith("1 of 3 pairs reach each other by ICMP, TCP and UDP; 2 differ from the tenant "
                           "networks: a2/eth0->a1/eth0 unreached by udp, a1/eth0->b1/eth0 reached by tcp")


def test_udp_figures_are_read_as_sdnvirt_udp_prints_them():
    result = UdpResult.parse("vm1", "ns2", 100, "sent=100 echoed=99 corrupt=1 size=1400 ms=532")
    assert (result.sent, result.echoed, result.corrupt, result.size, result.ms) == (100, 99, 1, 1400, 532)
    assert not result.intact
    assert UdpResult.parse("vm1", "ns2", 3, "sent=3 echoed=3 corrupt=0 size=4 ms=1").intact
    gave_up = UdpResult.parse("vm1", "ns2", 100, "sent=5 echoed=0 corrupt=0 size=1400 ms=5012")
    assert not gave_up.intact and str(gave_up).startswith("UDP vm1 -> ns2: 0 of 100 datagrams")


def test_a_transfer_is_intact_only_when_every_byte_asked_for_arrived_unchanged():
    sent = Tally.parse("1048576 " + "ab" * 32)
    assert TcpResult("ns1", "vm1", 1048576, sent, sent, 1.0).intact
    assert not TcpResult("ns1", "vm1", 1048576, sent, Tally(1048576, "cd" * 32), 1.0).intact
    assert not TcpResult("ns1", "vm1", 1048576, sent, Tally(1048575, sent.sha256), 1.0).intact
    short = Tally(1000, "ab" * 32)
    assert not TcpResult("ns1", "vm1", 1048576, short, short, 1.0).intact  # the sender stopped early
