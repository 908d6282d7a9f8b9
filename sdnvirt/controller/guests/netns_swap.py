"""Inside a moving netns guest: its links to the source host give way to those to the destination.

The netns guest kind (netns.py) plugs a staged link for each NIC into the
destination's bridge, then runs this program inside the guest's namespace:
it brings the staged links up with the guest's MACs and says "ready"; on "go"
(after the fabric has switched over) the old links go and the staged ones take
their names and addresses. It says when they were up (CLOCK_MONOTONIC, one clock
for every process of the machine), so that the controller can measure the guest's
downtime from the moment the fabric switched, and when they went down (the guest's
pause begins). Then it announces the guest with RARP
frames, at the times QEMU does.

    python -m sdnvirt.controller.guests.netns_swap INDEX,MAC,IP/PREFIX [...]

prints "ready", waits for a line, prints {"down_at": SECONDS, "up_at": SECONDS}.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import time

ANNOUNCE_AT = (0.0, 0.05, 0.2, 0.45, 0.8)  # seconds after resuming, as QEMU announces
IP_TIMEOUT = 10.0  # seconds for one `ip -batch` of a few link changes


def staged_name(index: int) -> str:
    return f"mig{index}"


def rarp(mac: bytes) -> bytes:
    """QEMU's self-announcement: a reverse ARP request from and about the guest's MAC."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, mac, b"\0" * 4, mac, b"\0" * 4)
    return (b"\xff" * 6 + mac + struct.pack("!H", 0x8035) + body).ljust(60, b"\0")


def switch_links(nics: list[tuple[int, str, str]]) -> tuple[float, float]:
    """Inside the guest: stage the new links, and on "go" put them in the old ones' place
    (index, MAC, IP/prefix); when the old ones went down and the new ones were up
    (time.monotonic()). iproute2's `ip -batch`
    does the link work: fifty guests moving at once start fifty of these programs on two
    cores, where importing pyroute2 alone costs each of them 0.3 s of CPU."""
    _ip_batch([f"link set dev {staged_name(index)} address {mac} up" for index, mac, _ in nics])
    neighbours = _neighbours({f"eth{index}" for index, _, _ in nics})
    print("ready", flush=True)
    swap = subprocess.Popen(["ip", "-batch", "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if sys.stdin.readline().strip() != "go":  # the controller went away: the guest stays as it is
            raise SystemExit("not told to go: the links stay as they were")
        leaving = [index for index, _, _ in nics if _has_link(f"eth{index}")]
        lines = []
        for index, _, address in nics:
            if index in leaving:  # out of the way now, deleted later: a veth takes a while to delete
                lines += [f"link set dev eth{index} down", f"link set dev eth{index} name old{index}"]
            lines += [f"link set dev {staged_name(index)} down",  # a link takes a new name only while down
                      f"link set dev {staged_name(index)} name eth{index}",
                      f"addr add {address} dev eth{index}", f"link set dev eth{index} up"]
            lines += [f"neigh replace {neighbour} lladdr {mac} dev eth{index} nud stale"
                      for neighbour, mac in neighbours.get(f"eth{index}", [])]
        down_at = time.monotonic()
        _, errors = swap.communicate("".join(f"{line}\n" for line in lines), timeout=IP_TIMEOUT)
        up_at = time.monotonic()
    finally:
        if swap.poll() is None:
            swap.kill()
            swap.wait()
    if swap.returncode != 0:
        raise SystemExit(f"ip -batch: {errors.strip()}")
    if leaving:
        _ip_batch([f"link del dev old{index}" for index in leaving])
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
    return down_at, up_at


def _neighbours(links: set[str]) -> dict[str, list[tuple[str, str]]]:
    """The neighbours (address, MAC) the guest knows on these links, for the links that take
    their place: a VM keeps its ARP cache when it moves, so a netns guest must too, or its first
    answers after the move wait for an ARP round trip (a new link starts with an empty cache)."""
    result = subprocess.run(["ip", "-json", "neigh", "show"], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"ip neigh: {result.stderr.strip()}")
    known: dict[str, list[tuple[str, str]]] = {}
    for entry in json.loads(result.stdout or "[]"):
        unusable = {"FAILED", "INCOMPLETE"} & set(entry.get("state", []))
        if entry.get("dev") in links and "lladdr" in entry and not unusable:
            known.setdefault(entry["dev"], []).append((entry["dst"], entry["lladdr"]))
    return known


def _has_link(name: str) -> bool:
    """Whether this namespace has the link (/sys shows the namespace that mounted it, not ours)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _ip_batch(lines: list[str]) -> None:
    result = subprocess.run(["ip", "-batch", "-"], input="".join(f"{line}\n" for line in lines),
                            capture_output=True, text=True, timeout=IP_TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"ip -batch: {result.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.controller.guests.netns_swap")
    parser.add_argument("nics", nargs="+", help="INDEX,MAC,IP/PREFIX")
    nics = [(int(i), mac, address) for i, mac, address in (n.split(",") for n in parser.parse_args().nics)]
    down_at, up_at = switch_links(nics)
    print(json.dumps({"down_at": down_at, "up_at": up_at}))


if __name__ == "__main__":
    main()
