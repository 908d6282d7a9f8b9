"""Run inside a guest: does each target answer an ICMP echo sent to its own MAC and IP?

Addressing the target's MAC directly (not letting ARP pick one) makes the
answer unambiguous when tenants reuse addresses: a reply from that MAC means
that guest, and no other, was reached.

    python -m sdnvirt.lab.probe --iface eth0 --src-mac M --src-ip I MAC,IP [MAC,IP...]

prints one JSON object {"MAC,IP": true|false, ...}.
"""

from __future__ import annotations

import argparse
import json
import os

from scapy.config import conf
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.sendrecv import srp

TRIES = 3
TIMEOUT = 0.5  # seconds per try


def reaches(iface: str, src_mac: str, src_ip: str, targets: list[tuple[str, str]]) -> dict[str, bool]:
    conf.verb = 0
    answered: set[tuple[str, str]] = set()
    ident = os.getpid() & 0xFFFF
    for attempt in range(TRIES):
        pending = [t for t in targets if t not in answered]
        if not pending:
            break
        probes = [Ether(src=src_mac, dst=mac) / IP(src=src_ip, dst=ip) / ICMP(id=ident, seq=attempt * 1000 + i)
                  for i, (mac, ip) in enumerate(pending)]
        replies, _ = srp(probes, iface=iface, timeout=TIMEOUT, retry=0)
        for sent, reply in replies:
            if reply.haslayer(ICMP) and reply[ICMP].type == 0 and reply[Ether].src.lower() == sent[Ether].dst.lower():
                answered.add((sent[Ether].dst.lower(), sent[IP].dst))
    return {f"{mac},{ip}": (mac, ip) in answered for mac, ip in targets}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.lab.probe")
    parser.add_argument("--iface", required=True)
    parser.add_argument("--src-mac", required=True)
    parser.add_argument("--src-ip", required=True)
    parser.add_argument("targets", nargs="+", help="MAC,IP")
    args = parser.parse_args()
    targets = [tuple(t.lower().split(",", 1)) for t in args.targets]
    print(json.dumps(reaches(args.iface, args.src_mac.lower(), args.src_ip, targets)))


if __name__ == "__main__":
    main()
