"""Port security: a guest sends only from its own MAC and IP; the rest is dropped and counted."""

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from helpers.guests import control_frame, listen, nic, on_guest, send_frames, wait_until

FORGED = 5  # frames per forgery


def forged_frames(lab, kind: str) -> list[bytes]:
    a1, a2, a3 = nic(lab, "a1"), nic(lab, "a2"), nic(lab, "a3")
    if kind == "foreign MAC":
        template = Ether(src="02:de:ad:be:ef:01", dst=str(a2.mac)) / IP(src=str(a1.ip), dst=str(a2.ip)) / ICMP()
    elif kind == "foreign IP":
        template = Ether(src=str(a1.mac), dst=str(a2.mac)) / IP(src="10.0.0.99", dst=str(a2.ip)) / ICMP()
    elif kind == "another guest's IP":
        template = Ether(src=str(a1.mac), dst=str(a2.mac)) / IP(src=str(a3.ip), dst=str(a2.ip)) / ICMP()
    else:  # ARP claiming a3's address (ARP spoofing), sent to everyone
        template = Ether(src=str(a1.mac), dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=2, hwsrc=str(a1.mac), psrc=str(a3.ip), hwdst="ff:ff:ff:ff:ff:ff", pdst=str(a3.ip))
    return [bytes(template)] * FORGED


def drops_of(lab, guest: str) -> int:
    host = lab.topology.guests[guest].host
    return lab.api().counters()["port_security_drops"][host][f"{guest}/eth0"]


@pytest.mark.parametrize("kind", ["foreign MAC", "foreign IP", "another guest's IP", "spoofed ARP"])
def test_forged_frames_are_dropped_and_counted(fabric_lab, kind):
    before = drops_of(fabric_lab, "a1")
    sniffers = {guest: listen(on_guest(fabric_lab, guest))[0] for guest in ("a2", "a3")}
    controls = {guest: control_frame(fabric_lab, "a1", guest) for guest in sniffers}
    send_frames(fabric_lab, "a1", forged_frames(fabric_lab, kind) + list(controls.values()))
    for guest, sniff in sniffers.items():  # a1's own frame, sent after the forged ones, is all that came
        assert sniff.frames() == [controls[guest]], kind
    # Flow counters reach the switch's stats a moment after the packets.
    wait_until(lambda: drops_of(fabric_lab, "a1") - before == FORGED)
    assert fabric_lab.api().status()["converged"]


def test_drop_counter_is_the_port_security_flow_on_the_switch(fabric_lab):
    """The API's counters are the packet counts of the violation flows, as ovs-ofctl shows them."""
    dump = fabric_lab.hosts()["hv1"].openvswitch.ofctl("dump-flows", "br-int", "table=10")
    violations = [line for line in dump.splitlines() if " priority=10," in line]
    counts = sorted(int(field.removeprefix("n_packets=").rstrip(","))
                    for line in violations for field in line.split() if field.startswith("n_packets="))
    api = fabric_lab.api().counters()["port_security_drops"]["hv1"]
    assert len(counts) == 3  # a1, a2, b1
    assert counts == sorted(api.values())
