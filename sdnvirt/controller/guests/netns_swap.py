"""Inside a moving netns guest: its links to the source host give way to those to the destination.

The netns guest kind (netns.py) plugs a staged link for each NIC into the
destination's bridge, then runs this program inside the guest's namespace:
it brings the staged links up with the guest's MACs and says "ready"; on "go"
(after the fabric has switched over) the old links go and the staged ones take
their names and addresses: that gap is the guest's downtime, measured here in
milliseconds. Then it announces the guest with RARP frames, at the times QEMU does.

    python -m sdnvirt.controller.guests.netns_swap INDEX,MAC,IP/PREFIX [...]

prints "ready", waits for a line, prints {"downtime_ms": ...}.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

from pyroute2 import IPRoute

ANNOUNCE_AT = (0.0, 0.05, 0.2, 0.45, 0.8)  # seconds after resuming, as QEMU announces


def staged_name(index: int) -> str:
    return f"mig{index}"


def rarp(mac: bytes) -> bytes:
    """QEMU's self-announcement: a reverse ARP request from and about the guest's MAC."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, mac, b"\0" * 4, mac, b"\0" * 4)
    return (b"\xff" * 6 + mac + struct.pack("!H", 0x8035) + body).ljust(60, b"\0")


def switch_links(nics: list[tuple[int, str, str]]) -> float:
    """Inside the guest: stage the new links, and on "go" put them in the old ones' place
    (index, MAC, IP/prefix); the downtime in ms."""
    with IPRoute() as ip:
        for index, mac, _ in nics:
            ip.link("set", index=ip.link_lookup(ifname=staged_name(index))[0], address=mac, state="up")
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":  # the controller went away: the guest stays as it is
            raise SystemExit("not told to go: the links stay as they were")
        began = time.monotonic()
        leaving = []
        for index, _, address in nics:
            name = f"eth{index}"
            old = ip.link_lookup(ifname=name)
            if old:  # out of the way now, deleted later: a veth takes a while to delete
                ip.link("set", index=old[0], state="down")
                ip.link("set", index=old[0], ifname=f"old{index}")
                leaving.append(old[0])
            new = ip.link_lookup(ifname=staged_name(index))[0]
            ip.link("set", index=new, state="down")  # a link takes a new name only while down
            ip.link("set", index=new, ifname=name)
            ip.addr("add", index=new, address=address.split("/")[0], prefixlen=int(address.split("/")[1]))
            ip.link("set", index=new, state="up")
        downtime = (time.monotonic() - began) * 1000
        for index in leaving:
            ip.link("del", index=index)
    sockets = []
    for index, mac, _ in nics:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((f"eth{index}", 0))
        sockets.append((sock, rarp(bytes.fromhex(mac.replace(":", "")))))
    resumed = time.monotonic()
    for at in ANNOUNCE_AT:
        time.sleep(max(0.0, resumed + at - time.monotonic()))
        for sock, frame in sockets:
            sock.send(frame)
    return downtime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.controller.guests.netns_swap")
    parser.add_argument("nics", nargs="+", help="INDEX,MAC,IP/PREFIX")
    nics = [(int(i), mac, address) for i, mac, address in (n.split(",") for n in parser.parse_args().nics)]
    print(json.dumps({"downtime_ms": round(switch_links(nics), 3)}))


if __name__ == "__main__":
    main()
