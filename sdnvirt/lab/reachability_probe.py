"""Run inside a guest: does each target answer an ICMP echo sent to its own MAC and IP?

Addressing the target's MAC directly (not letting ARP pick one) makes the
answer unambiguous when tenants reuse addresses: a reply from that MAC means
that guest, and no other, was reached.

One capture runs for the whole probe, so an answer counts whenever it comes
within the time allowed (a target may first have to resolve our address,
and retry that); unanswered targets are asked again once a second.

    python -m sdnvirt.lab.reachability_probe --iface eth0 --src-mac M --src-ip I MAC,IP [MAC,IP...]

prints one JSON object {"MAC,IP": true|false, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from scapy.config import conf
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.sendrecv import AsyncSniffer, sendp

TRIES = 3
INTERVAL = 1.0  # seconds between tries; after the last, as long again for late answers
PACING = 0.002  # seconds between two echoes: a burst of them fills the userspace datapath's queues


def reaches(iface: str, src_mac: str, src_ip: str, targets: list[tuple[str, str]]) -> dict[str, bool]:
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
    return {f"{mac},{ip}": (mac, ip) in answered for mac, ip in targets}


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
