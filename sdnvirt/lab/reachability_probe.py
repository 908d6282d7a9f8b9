"""Run inside a netns guest: does each target answer ICMP, TCP and UDP?

ICMP: an echo request sent to the target's own MAC and IP (not letting ARP
pick one) makes the answer unambiguous when tenants reuse addresses: a reply
from that MAC means that guest, and no other, was reached. One capture runs
for the whole probe, so an answer counts whenever it comes within the time
allowed (a target may first have to resolve our address, and retry that);
unanswered targets are asked again once a second.

TCP and UDP go through this guest's own kernel, as a user's traffic does
(its checksums included): a few KB to the target's echo service (port 7,
sdnvirt.lab.traffic_peer) must come back byte for byte over TCP, and a few
datagrams over UDP. The kernel resolves the address with ARP; it counts as
the target only if it resolved to the target's MAC (another tenant's guest
with that address is never "reached" by it). Every address is probed once,
all at the same time as the ICMP probe.

    python -m sdnvirt.lab.reachability_probe --iface eth0 --src-mac M --src-ip I MAC,IP [MAC,IP...]

prints one JSON object {"MAC,IP": {"icmp": bool, "tcp": bool, "udp": bool}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from pyroute2 import IPRoute
from scapy.config import conf
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.sendrecv import AsyncSniffer, sendp

from sdnvirt.lab.traffic_peer import exchange_datagrams, tcp_echoes

TRIES = 3
INTERVAL = 1.0  # seconds between tries; after the last, as long again for late answers
PACING = 0.002  # seconds between two echoes: a burst of them fills the userspace datapath's queues
ECHO_PORT = 7  # TCP and UDP echo (RFC 862)
TCP_BYTES = 16384  # a dozen segments
TCP_TIMEOUT = 5.0  # seconds; ARP gives up on an address nobody has after 3
UDP_DATAGRAMS = 3
UDP_SIZE = 1400  # near the MTU
UDP_WAIT_MS = 1000


def icmp_reaches(iface: str, src_mac: str, src_ip: str, targets: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (MAC, IP) targets that answered an echo request sent to them."""
    conf.verb = 0
    ident = os.getpid() & 0xFFFF
    wanted = set(targets)
    answered: set[tuple[str, str]] = set()

    def note(frame) -> None:
        if frame.haslayer(ICMP) and frame[ICMP].type == 0 and frame[ICMP].id == ident:
            answer = (frame[Ether].src.lower(), frame[IP].src)
            if answer in wanted:
                answered.add(answer)

    sniffer = AsyncSniffer(iface=iface, filter=f"icmp and ether dst {src_mac}", prn=note, store=False)
    sniffer.start()
    time.sleep(0.2)  # the capture is open before the first echo leaves
    for attempt in range(TRIES):
        pending = [t for t in targets if t not in answered]
        if not pending:
            break
        sendp([Ether(src=src_mac, dst=mac) / IP(src=src_ip, dst=ip) / ICMP(id=ident, seq=attempt)
               for mac, ip in pending], iface=iface, inter=PACING)
        deadline = time.monotonic() + INTERVAL * (2 if attempt == TRIES - 1 else 1)
        while time.monotonic() < deadline and not wanted <= answered:
            time.sleep(0.02)
    sniffer.stop()
    return answered


def transport_echoes(address: str) -> tuple[bool, bool]:
    """Whether the echo service at `address` answered over TCP, and over UDP, intact. UDP
    reaches it when a datagram comes back byte for byte and none comes back broken: a
    datagram a busy path drops is UDP's nature, not a wrong path (the UDP tests count loss)."""
    tcp = tcp_echoes(address, ECHO_PORT, os.urandom(TCP_BYTES), TCP_TIMEOUT)
    _, echoed, corrupt = exchange_datagrams(address, ECHO_PORT, UDP_DATAGRAMS, UDP_SIZE, UDP_WAIT_MS)
    return tcp, echoed > 0 and corrupt == 0


def resolved_macs(iface: str) -> dict[str, str]:
    """The MAC each address resolved to on `iface` (from this namespace's ARP table)."""
    with IPRoute() as ip:
        index = ip.link_lookup(ifname=iface)[0]
        return {entry.get("NDA_DST"): entry.get("NDA_LLADDR").lower()
                for entry in ip.get_neighbours(ifindex=index) if entry.get("NDA_LLADDR")}


def reaches(iface: str, src_mac: str, src_ip: str, targets: list[tuple[str, str]]) -> dict[str, dict[str, bool]]:
    addresses = sorted({ip for _, ip in targets})
    with ThreadPoolExecutor(max_workers=len(addresses) or 1) as pool:
        transport = pool.map(transport_echoes, addresses)
        icmp = icmp_reaches(iface, src_mac, src_ip, targets)
        echoes = dict(zip(addresses, transport, strict=True))
    macs = resolved_macs(iface)
    return {f"{mac},{ip}": {"icmp": (mac, ip) in icmp,
                            "tcp": echoes[ip][0] and macs.get(ip) == mac,
                            "udp": echoes[ip][1] and macs.get(ip) == mac}
            for mac, ip in targets}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.lab.reachability_probe")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--src-mac", required=True)
    parser.add_argument("--src-ip", required=True)
    parser.add_argument("targets", nargs="+", help="MAC,IP")
    args = parser.parse_args()
    targets = [tuple(t.lower().split(",", 1)) for t in args.targets]
    print(json.dumps(reaches(args.iface, args.src_mac.lower(), args.src_ip, targets)))


if __name__ == "__main__":
    main()
