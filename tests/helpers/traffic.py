"""TCP and UDP between two guests, both ways, as the tests check them; bytes a port delivered."""

from __future__ import annotations

import re

from sdnvirt.lab.lab import Lab
from sdnvirt.lab.traffic import tcp_transfer, udp_exchange

from helpers.guests import nic

TEN_MIB = 10 * 2**20
DATAGRAMS = 100
DATAGRAM_SIZES = (1400, 4000)  # one frame; three IP fragments


def assert_tcp_intact_both_ways(lab: Lab, one: str, other: str, path: str) -> None:
    """10 MiB each way, every byte arrived unchanged."""
    results = [tcp_transfer(lab, source, target, TEN_MIB) for source, target in ((one, other), (other, one))]
    for result in results:
        assert result.intact, f"{path}: {result}"
        assert result.received.bytes == TEN_MIB


def assert_udp_intact_both_ways(lab: Lab, one: str, other: str, path: str) -> None:
    """DATAGRAMS of each size each way, every one echoed byte-identical."""
    results = [udp_exchange(lab, source, target, DATAGRAMS, size)
               for source, target in ((one, other), (other, one)) for size in DATAGRAM_SIZES]
    for result in results:
        assert (result.echoed, result.corrupt) == (DATAGRAMS, 0), f"{path}: {result}"


def delivered_bytes(lab: Lab, host: str, guest: str) -> int:
    """The bytes the host's bridge has sent out of the guest's port (on the wire, not the controller's word)."""
    openvswitch = lab.hosts()[host].openvswitch
    port = openvswitch.vsctl("--bare", "--columns=name", "find", "Interface",
                             f"external_ids:iface-id={nic(lab, guest).port_id}").strip()
    assert port and "\n" not in port, f"{guest} has no single port on {host}: {port!r}"
    return int(re.search(r"tx pkts=\d+, bytes=(\d+)", openvswitch.ofctl("dump-ports", "br-int", port)).group(1))
