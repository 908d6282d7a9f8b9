"""A hostile guest: malformed, random and flooding frames never crash the controller, never
move a port, and whatever is dropped is counted, by the pipeline or by the controller.

x1 is the hostile guest. The pipeline sends only RARP frames from a port's own MAC to the
controller (the announcements a migration needs); the rest of x1's garbage meets port
security, whose violation flow counts it. Frames are built with scapy from a seeded random
generator, so a failure comes back with the same frames; tests/helpers/wire.py sends them
from inside the guest's namespace, at a given rate.
"""

from __future__ import annotations

import json
import random
import re
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from sdnvirt.controller.fabric import meters
from sdnvirt.lab import naming
from sdnvirt.lab.northbound_server import northbound_remote
from sdnvirt.lab.process import is_running
from sdnvirt.lab.reachability import format_matrix, measure
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux.netns import entering
from sdnvirt.northbound.database import Northbound

from helpers.guests import WIRE, control_frame, listen, nic, on_guest, wait_until
from helpers.hypervisor_move import move_behind_the_controllers_back
from helpers.labs import build_lab

TOPOLOGY = Path(__file__).parent / "topologies" / "hostile.yaml"
SEED = 20261126
HOSTILE = "x1"
BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_IP, ETH_ARP, ETH_RARP, ETH_IPV6 = 0x0800, 0x0806, 0x8035, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)
PACED = 2000  # frames a second, where every frame must be counted: slower than the switch takes them
STATUS_BOUND = 1.0  # seconds the controller's status may take while a guest floods it


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(TOPOLOGY)


# -- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    sent: int  # frames the guest's kernel took
    refused: list[int]  # the indexes of those it refused (shorter than an Ethernet header, beyond the MTU)
    seconds: float


def send(lab, guest: str, frames: list[bytes], rate: float, iface: str = "eth0") -> Sent:
    """Send the frames from inside the guest, `rate` a second (0: as fast as it can)."""
    result = subprocess.run([*entering(naming.guest_namespace(lab.name, guest)), sys.executable, str(WIRE), "pace",
                             iface, str(rate)], input="\n".join(f.hex() for f in frames), capture_output=True,
                            text=True, timeout=len(frames) / (rate or 10_000) + 60, check=True)
    return Sent(**json.loads(result.stdout))


# -- what the controller, the switches and the northbound database say ----------------------------


def placement(lab) -> dict:
    """Where every logical port is bound and active, as the northbound database and the API say."""
    northbound = Northbound(northbound_remote(lab.paths))
    northbound.connect()
    try:
        bindings = sorted((b["port_id"], b["host"], b["interface"]) for b in northbound.rows("Binding"))
        active = northbound.active()
    finally:
        northbound.close()
    return {"active": active, "bindings": bindings, "vms": {vm["name"]: vm["host"] for vm in lab.api().vms()}}


def controller_process(lab):
    [process] = [p for p in LabRecord.load(lab.paths.record).processes if p.name == "controller"]
    return process


def packet_ins(lab) -> dict[str, int]:
    """The controller's packet-in counters: valid announcements and drops by reason."""
    counters = lab.api().status()["switch_overs"]
    return {"announcements": counters["announcements"], "switch_overs": counters["switch_overs"],
            **counters["dropped"]}


def handled(counters: dict[str, int]) -> int:
    """Packet-ins the controller has judged, whatever it made of them."""
    return sum(count for name, count in counters.items() if name != "switch_overs")


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


def flow_packets(lab, guest: str, actions: list[str]) -> int:
    """Packets counted by the guest's port-security flow with these actions, on its host."""
    host = lab.api().vm(guest)["host"]
    [entry] = [e for e in lab.api().flows(host) if e["table"] == "port_security"
               and e["owner"] == f"port {guest}/eth0" and e["actions"] == actions]
    return entry["packets"]


def to_controller(lab, guest: str) -> int:
    return flow_packets(lab, guest, ["CONTROLLER"])


def violations(lab, guest: str) -> int:
    host = lab.api().vm(guest)["host"]
    return lab.api().counters()["port_security_drops"][host][f"{guest}/eth0"]


@dataclass(frozen=True)
class Meter:
    packet_ins: int  # packets that met the bridge's controller meter
    dropped: int  # of which its drop band dropped

    @property
    def passed(self) -> int:
        return self.packet_ins - self.dropped


def meter(lab, host: str) -> Meter:
    """The bridge's controller meter, as `ovs-ofctl meter-stats` shows it."""
    stats = lab.hosts()[host].openvswitch.ofctl("meter-stats", "br-int", "meter=controller")
    packet_ins = re.search(r"packet_in_count:(\d+)", stats)
    dropped = re.search(r"0: packet_count:(\d+)", stats)
    assert packet_ins and dropped, f"no controller meter on {host}: {stats}"
    return Meter(int(packet_ins[1]), int(dropped[1]))


def meters_passed(lab) -> int:
    return sum(meter(lab, host).passed for host in lab.topology.hosts)


def assert_unharmed(lab, pid: int, before: dict) -> None:
    """The controller runs as it did, answers, and moved nothing; every guest reaches its peers."""
    process = controller_process(lab)
    assert process.pid == pid and is_running(process), "the controller was restarted or died"
    status = lab.api().status()
    assert status["converged"], status
    assert placement(lab) == before
    cells = measure(lab)
    assert all(cell.ok for cell in cells), format_matrix(cells)


# -- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Me:
    mac: str
    ip: str
    peer_mac: str
    peer_ip: str

    @property
    def raw_mac(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))


def me(lab) -> Me:
    own, peer = nic(lab, HOSTILE), nic(lab, "a2")
    return Me(str(own.mac), str(own.ip), str(peer.mac), str(peer.ip))


def rarp(mac: str, sha: str | None = None, **fields) -> bytes:
    """A RARP announcement of `mac`, as QEMU sends it, with some header fields replaced."""
    arp = ARP(op=3, hwsrc=sha or mac, psrc="0.0.0.0", hwdst=mac, pdst="0.0.0.0")
    raw = bytearray(bytes(Ether(src=mac, dst=BROADCAST, type=ETH_RARP) / arp))
    offsets = {"htype": (14, "!H"), "ptype": (16, "!H"), "hlen": (18, "!B"), "plen": (19, "!B"), "op": (20, "!H")}
    for name, value in fields.items():
        offset, layout = offsets[name]
        struct.pack_into(layout, raw, offset, value)
    return bytes(raw)


def malformed_announcements(x: Me) -> list[bytes]:
    """RARP from the guest's own MAC, so the pipeline sends it up, but no announcement."""
    valid = rarp(x.mac)
    body = [rarp(x.mac, **fields) for fields in
            ({"op": 1}, {"op": 2}, {"op": 4}, {"op": 0xFFFF}, {"htype": 6}, {"ptype": ETH_IPV6}, {"hlen": 8},
             {"plen": 16}, {"hlen": 0, "plen": 0})]
    foreign_sha = rarp(x.mac, sha="02:00:00:00:00:99")
    truncated = [valid[:length] for length in range(14, 42, 3)]
    tagged = [bytes(Ether(src=x.mac, dst=BROADCAST) / Dot1Q(vlan=vlan, type=ETH_RARP) / valid[14:])
              for vlan in (0, 5, 4094)]
    return [*body, foreign_sha, *truncated, *tagged]


def hostile_mix(x: Me, rng: random.Random, mtu: int) -> dict[str, list[bytes]]:
    """Every kind of garbage a guest can send, by kind."""
    arp = bytes(Ether(src=x.mac, dst=BROADCAST) / ARP(op=1, hwsrc=x.mac, psrc=x.ip, pdst=x.peer_ip))

    def arp_with(hlen: int, plen: int) -> bytes:
        frame = bytearray(arp)
        frame[18], frame[19] = hlen, plen
        return bytes(frame)

    def dhcp(payload: bytes, src: str = x.ip) -> bytes:
        return bytes(Ether(src=x.mac, dst=BROADCAST) / IP(src=src, dst="255.255.255.255")
                     / UDP(sport=68, dport=67) / Raw(payload))

    discover = bytes(BOOTP(chaddr=x.raw_mac, xid=rng.getrandbits(32))
                     / DHCP(options=[("message-type", "discover"), "end"]))
    ip4 = bytes(Ether(src=x.mac, dst=x.peer_mac) / IP(src=x.ip, dst=x.peer_ip) / ICMP() / Raw(b"hostile"))
    ip6 = bytes(Ether(src=x.mac, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1")
                / ICMPv6ND_NS(tgt="fe80::2"))
    biggest = 14 + mtu

    def random_frame() -> bytes:
        length = rng.choice([rng.randrange(1, 14), rng.randrange(14, 64), rng.randrange(64, biggest + 1)])
        body = rng.randbytes(length)
        own = rng.random() < 0.5
        return (bytes.fromhex(x.peer_mac.replace(":", "")) + x.raw_mac + body[12:] if own else body)[:length]

    return {
        "truncated ARP": [arp[:length] for length in range(14, len(arp))],
        "ARP with bogus lengths": [arp_with(h, p) for h, p in ((0, 0), (1, 1), (6, 16), (16, 4), (255, 255))],
        "bogus DHCP": [dhcp(discover[:length]) for length in (0, 1, 100, 235, 239)]
        + [dhcp(discover[:240] + bytes([53, 255, 1])), dhcp(discover[:240] + bytes([53])),
           dhcp(discover[:236] + b"\xde\xad\xbe\xef" + discover[240:]), dhcp(rng.randbytes(300)),
           dhcp(discover, src="0.0.0.0"),
           bytes(Ether(src=x.mac, dst=BROADCAST) / IP(src=x.ip, dst="255.255.255.255")
                 / UDP(sport=68, dport=67, len=5000) / Raw(discover))],
        "oversized": [ip4 + bytes(biggest - len(ip4)), rarp(x.mac) + bytes(biggest - 42)],
        "jumbo": [ip4 + bytes(biggest + 1 - len(ip4)), ip4 + bytes(9014 - len(ip4)), ip4 + bytes(65000)],
        "unknown ethertypes": [bytes(Ether(src=x.mac, dst=BROADCAST, type=t) / Raw(bytes(46)))
                               for t in (0x0000, 0x0001, 0x05DC, 0x0600, 0x0842, 0x8847, 0x88CC, 0x9000, 0xFFFF)],
        "runts": [bytes(length) for length in (1, 6, 13)] + [ip4[:14], arp[:15], rarp(x.mac)[:14]],
        "truncated IPv4": [ip4[:length] for length in range(14, 34)]
        + [_ip4_with(ip4, ihl) for ihl in (0, 4, 15)] + [_ip4_total_length(ip4, n) for n in (0, 19, 65535)],
        "IPv6": [ip6[:length] for length in (14, 15, 30, 53)] + [ip6],
        "VLAN-tagged": [bytes(Ether(src=x.mac, dst=x.peer_mac) / Dot1Q(vlan=7) / IP(src=x.ip, dst=x.peer_ip) / ICMP()),
                        bytes(Ether(src=x.mac, dst=BROADCAST) / Dot1Q(vlan=7) / Dot1Q(vlan=8) / Raw(arp[12:])),
                        bytes(Ether(src=x.mac, dst=BROADCAST, type=0x88A8) / Dot1Q(vlan=9, type=ETH_RARP)
                              / Raw(rarp(x.mac)[14:]))],
        "random bytes": [random_frame() for _ in range(600)],
    }


def _ip4_with(ip4: bytes, ihl: int) -> bytes:
    frame = bytearray(ip4)
    frame[14] = 0x40 | ihl
    return bytes(frame)


def _ip4_total_length(ip4: bytes, length: int) -> bytes:
    frame = bytearray(ip4)
    struct.pack_into("!H", frame, 16, length)
    return bytes(frame)


def reaches_controller(frame: bytes, x: Me, mtu: int) -> bool:
    """What the pipeline sends up: RARP (below at most one VLAN tag) from the port's own MAC."""
    if not 14 <= len(frame) <= 14 + mtu or frame[6:12] != x.raw_mac:
        return False
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype in VLAN_TPIDS and len(frame) >= 18:
        ethertype = struct.unpack_from("!H", frame, 16)[0]
    return ethertype == ETH_RARP


def refused_by_kernel(frame: bytes, mtu: int) -> bool:
    """Linux sends no frame shorter than an Ethernet header, nor (untagged) longer than the MTU allows."""
    return not 14 <= len(frame) <= 14 + mtu


def guest_mtu(lab, guest: str) -> int:
    """Asked over netlink: /sys would show the links of the namespace it was mounted in."""
    [link] = json.loads(subprocess.run([*entering(naming.guest_namespace(lab.name, guest)), "ip", "-j", "link",
                                        "show", "eth0"], capture_output=True, text=True, check=True).stdout)
    return link["mtu"]


# -- the tests --------------------------------------------------------------------------------


def test_malformed_announcements_reach_the_controller_and_are_dropped_as_malformed(lab):
    x = me(lab)
    # Last, x announces its own MAC where it is: the controller judges packet-ins in order, so
    # once that one is counted every malformed one before it is, and nothing more will come.
    frames = [*malformed_announcements(x), rarp(x.mac)]
    assert len(frames) < meters.BURST  # so the meter lets every one through
    pid, before = controller_process(lab).pid, placement(lab)
    counters, sent_up = packet_ins(lab), to_controller(lab, HOSTILE)

    assert send(lab, HOSTILE, frames, rate=50).sent == len(frames)
    wait_until(lambda: packet_ins(lab)["announcements"] > counters["announcements"])
    # A flow's counters follow the datapath's a revalidator round later (up to a second).
    wait_until(lambda: to_controller(lab, HOSTILE) - sent_up >= len(frames))

    assert to_controller(lab, HOSTILE) - sent_up == len(frames)
    assert delta(packet_ins(lab), counters) == {**dict.fromkeys(counters, 0), "malformed": len(frames) - 1,
                                                "announcements": 1}
    assert_unharmed(lab, pid, before)


def test_rarp_from_foreign_macs_is_dropped_by_port_security_and_never_reaches_anyone(lab):
    rng = random.Random(SEED)
    frames = [rarp(":".join(f"{b:02x}" for b in b"\x02" + rng.randbytes(5))) for _ in range(2000)]
    pid, before = controller_process(lab).pid, placement(lab)
    counters, dropped = packet_ins(lab), violations(lab, HOSTILE)
    captures = {guest: listen(on_guest(lab, guest, "rarp or icmp"))[0] for guest in ("a2", "a3")}
    controls = {guest: control_frame(lab, HOSTILE, guest) for guest in captures}

    assert send(lab, HOSTILE, frames + list(controls.values()), rate=PACED).sent == len(frames) + len(controls)
    for guest, capture in captures.items():  # x1's own echo reply, sent last, is all that came
        assert capture.frames() == [controls[guest]]
    wait_until(lambda: violations(lab, HOSTILE) - dropped == len(frames))
    assert packet_ins(lab) == counters
    assert_unharmed(lab, pid, before)


def test_malformed_and_random_frames_crash_nothing_move_nothing_and_are_counted(lab):
    """Seeded: the same frames on every run (SEED)."""
    x, mtu = me(lab), guest_mtu(lab, HOSTILE)
    mix = hostile_mix(x, random.Random(SEED), mtu)
    frames = [frame for kind in mix.values() for frame in kind]
    up = [f for f in frames if reaches_controller(f, x, mtu)]
    refused = [i for i, f in enumerate(frames) if refused_by_kernel(f, mtu)]
    foreign = [f for f in frames if not refused_by_kernel(f, mtu) and f[6:12] != x.raw_mac]
    assert mix["jumbo"] and all(refused_by_kernel(f, mtu) for f in mix["jumbo"])
    pid, before = controller_process(lab).pid, placement(lab)
    counters, sent_up, dropped, passed = packet_ins(lab), to_controller(lab, HOSTILE), violations(lab, HOSTILE), \
        meters_passed(lab)

    result = send(lab, HOSTILE, frames, rate=PACED)
    assert result.refused == refused, [len(frames[i]) for i in set(refused) ^ set(result.refused)]
    # every packet-in the meters let through is judged by the controller, one way or another
    wait_until(lambda: to_controller(lab, HOSTILE) - sent_up == len(up)
               and handled(delta(packet_ins(lab), counters)) == meters_passed(lab) - passed)
    changed = delta(packet_ins(lab), counters)
    print(f"{len(frames)} frames, {len(refused)} refused by the guest's kernel, {len(up)} sent up, "
          f"{handled(changed)} judged by the controller: {changed}")
    assert changed["switch_overs"] == 0
    assert changed["malformed"] > 0  # the VLAN-tagged announcement, at least
    assert changed["unknown_switch"] == changed["unknown_port"] == changed["foreign_mac"] == 0
    # the rest met port security: at least every frame from a foreign MAC was a violation
    violated = violations(lab, HOSTILE) - dropped
    assert len(foreign) <= violated <= result.sent - len(up)
    assert_unharmed(lab, pid, before)


FLOOD_RATE = 5000  # frames a second
FLOOD_SECONDS = 4


def test_a_rarp_flood_is_metered_the_controller_answers_and_a_real_switch_over_still_happens(lab):
    """x1 floods announcements of its own MAC on hv1 while a2 moves to hv2 the way a VM does
    (its destination port plugged, then only its own RARP announcements say it runs there)."""
    x, a2 = me(lab), lab.topology.guests["a2"]
    pid, before = controller_process(lab).pid, placement(lab)
    counters, hv1, passed = packet_ins(lab), meter(lab, "hv1"), meters_passed(lab)
    latencies: list[float] = []

    with ThreadPoolExecutor(max_workers=2) as pool:
        flood = pool.submit(send, lab, HOSTILE, [rarp(x.mac)] * (FLOOD_RATE * FLOOD_SECONDS), FLOOD_RATE)
        time.sleep(0.2)
        moving = pool.submit(move_behind_the_controllers_back, lab, "a2", "hv1", "hv2")
        while not flood.done():
            began = time.monotonic()
            lab.api().status()
            latencies.append(time.monotonic() - began)
            time.sleep(0.1)
        sent = flood.result()
        moving.result(timeout=60)

    assert sent.sent == FLOOD_RATE * FLOOD_SECONDS
    assert max(latencies) < STATUS_BOUND, latencies
    wait_until(lambda: handled(delta(packet_ins(lab), counters)) == meters_passed(lab) - passed)
    changed, hv1_now = delta(packet_ins(lab), counters), meter(lab, "hv1")
    flooded, excess = hv1_now.packet_ins - hv1.packet_ins, hv1_now.dropped - hv1.dropped
    print(f"flood: {sent.sent} frames in {sent.seconds}s, {flooded} met hv1's meter, {excess} dropped there; "
          f"controller: {changed}; status answered in {max(latencies) * 1000:.0f} ms at most")
    # the switch dropped and counted the excess: the controller saw at most the meter's rate and burst
    assert excess > 0
    assert flooded - excess <= meters.RATE * (sent.seconds + 1) + meters.BURST
    # a2's own announcements on hv2 moved it there: the one switch-over
    assert changed["switch_overs"] == 1
    assert lab.api().vm("a2")["host"] == "hv2"
    assert placement(lab)["active"][a2.nics[0].port_id] == "hv2"
    assert sum(changed[reason] for reason in ("malformed", "unknown_switch", "unknown_port", "foreign_mac")) == 0

    # and back, announced the same way, once hv1's meter has room again
    time.sleep(1)
    move_behind_the_controllers_back(lab, "a2", "hv2", "hv1")
    wait_until(lambda: packet_ins(lab)["switch_overs"] == counters["switch_overs"] + 2)
    wait_until(lambda: placement(lab) == before)
    assert_unharmed(lab, pid, before)


