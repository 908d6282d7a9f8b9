"""The ARP responder answers for known addresses on the local bridge, never across the fabric."""

from scapy.layers.l2 import ARP, Ether

from sdnvirt.controller.fabric.pipeline import load_pipeline

from helpers.guests import arrived, control_frame, listen, nic, on_guest, on_underlay, send_frames

REQUESTS = 5


def test_arp_for_a_remote_guest_is_answered_locally_and_never_crosses_the_fabric(fabric_lab):
    a1, a4 = nic(fabric_lab, "a1"), nic(fabric_lab, "a4")
    request = Ether(src=str(a1.mac), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=str(a1.mac), psrc=str(a1.ip), pdst=str(a4.ip))
    # a1 itself; every other host's physical NIC (VXLAN would show there); every other blue guest
    replies, *elsewhere = listen(on_guest(fabric_lab, "a1", "arp"),
                                 on_underlay(fabric_lab, "hv2", "udp port 4789"),
                                 on_underlay(fabric_lab, "hv3", "udp port 4789"),
                                 *(on_guest(fabric_lab, g, "arp") for g in ("a2", "a3", "a4")))
    # then a1's own ARP reply to each of them: it crosses the fabric, and every capture must see its own
    controls = {guest: control_frame(fabric_lab, "a1", guest, arp=True) for guest in ("a2", "a3", "a4")}
    send_frames(fabric_lab, "a1", [bytes(request)] * REQUESTS + list(controls.values()))

    answers = [Ether(f)[ARP] for f in arrived(fabric_lab, "a1", replies.frames())]
    assert len(answers) == REQUESTS
    assert all(a.op == 2 and a.hwsrc == str(a4.mac) and a.psrc == str(a4.ip) and a.pdst == str(a1.ip)
               for a in answers)
    expected = [controls["a3"], controls["a4"], *controls.values()]  # a3's in hv2's tunnel, a4's in hv3's
    for control, sniff in zip(expected, elsewhere, strict=True):
        assert [control in frame for frame in sniff.frames()] == [True]


def test_arp_for_an_unknown_address_is_flooded_to_the_network_only(fabric_lab):
    """No answer from the responder: the request reaches blue guests, never red ones."""
    a1 = nic(fabric_lab, "a1")
    request = Ether(src=str(a1.mac), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=str(a1.mac), psrc=str(a1.ip), pdst="10.0.0.200")
    blue, red = ("a2", "a3", "a4"), ("b1", "b2", "b3")
    sniffs = dict(zip(blue + red, listen(*(on_guest(fabric_lab, g, "arp") for g in blue + red)), strict=True))
    send_frames(fabric_lab, "a1", [bytes(request)])
    # then each red guest's ARP reply to the next: each red capture must see the one sent to it
    controls = {target: control_frame(fabric_lab, source, target, arp=True)
                for source, target in zip(red, red[1:] + red[:1], strict=True)}
    for source, target in zip(red, red[1:] + red[:1], strict=True):
        send_frames(fabric_lab, source, [controls[target]])
    for guest in blue:
        assert [Ether(f)[ARP].pdst for f in sniffs[guest].frames()] == ["10.0.0.200"], guest
    for guest in red:
        assert arrived(fabric_lab, guest, sniffs[guest].frames()) == [controls[guest]], guest


def trace(lab, host: str, packet: str) -> tuple[str, str]:
    """ofproto/trace on a host's br-int: (the whole trace, its final datapath actions)."""
    out = lab.hosts()[host].openvswitch.appctl("ofproto/trace", "br-int", packet)
    actions = next(line for line in out.splitlines() if line.startswith("Datapath actions: "))
    return out, actions.removeprefix("Datapath actions: ")


def test_pipeline_decisions_on_the_real_bridge(fabric_lab):
    """ofproto/trace through hv1's br-int, table by table."""
    a1, a4, b3 = nic(fabric_lab, "a1"), nic(fabric_lab, "a4"), nic(fabric_lab, "b3")
    in_port = next(f["match"]["in_port"] for f in fabric_lab.api().flows("hv1")
                   if f["table"] == "classify" and f["owner"] == "port a1/eth0")
    pipeline = {t.name: t for t in load_pipeline().tables}

    out, actions = trace(fabric_lab, "hv1", f"in_port={in_port},arp,dl_src={a1.mac},dl_dst=ff:ff:ff:ff:ff:ff,"
                                            f"arp_op=1,arp_sha={a1.mac},arp_spa={a1.ip},arp_tpa={a4.ip}")
    final = next(line for line in out.splitlines() if line.startswith("Final flow: "))
    assert f"{pipeline['arp_responder'].id}. arp," in out
    assert f"dl_src={a4.mac}" in final and f"arp_spa={a4.ip}" in final and "arp_op=2" in final
    assert actions.startswith(f"set(eth(src={a4.mac},dst={a1.mac}))")
    assert "\n    IN_PORT\n" in out  # back out of a1's own port, nowhere else

    out, actions = trace(fabric_lab, "hv1", f"in_port={in_port},icmp,dl_src={a1.mac},dl_dst={b3.mac},"
                                            f"nw_src={a1.ip},nw_dst={b3.ip}")
    assert actions == "drop"
    assert f"{pipeline['l2_lookup'].id}. priority 0" in out  # b3's MAC is unknown in blue/web

    out, actions = trace(fabric_lab, "hv1", f"in_port={in_port},icmp,dl_src={a1.mac},dl_dst={a4.mac},"
                                            f"nw_src=10.0.0.99,nw_dst={a4.ip}")
    assert actions == "drop"
    assert f"{pipeline['port_security'].id}. in_port={in_port}, priority 10" in out
