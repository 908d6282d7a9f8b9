"""A short capture on one interface of a host (a VM's tap, a netns guest's veth), for a migration's
flight recorder: when each frame passed, which way, and what it was, nothing more.

It runs in the host's network namespace, reads until told to stop (a line, or its input closing:
the controller went away) or until its time is up, and keeps a bounded number of frames: the
first ones (a destination's tap: what reached the guest first) or the last ones (a source's tap:
what reached it last, in a ring). The kernel stamps every frame (SO_TIMESTAMPNS, the wall clock,
the clock QEMU stamps its events with). An interface that goes away (a source tap, when its QEMU
exits) ends the capture with what it holds.

    python -m sdnvirt.compute.tap_capture IFACE --keep first|last [--frames N] [--seconds S]

prints "ready" once it captures, then, when it ends, one JSON object:
{"frames": [[epoch seconds, "to-guest"|"from-guest", length, kind], ...], "seen": N, "error": null | "..."}.
"""

from __future__ import annotations

import argparse
import collections
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sent by the host into the interface: towards the guest
SO_TIMESTAMPNS = 35
SOL_PACKET, PACKET_AUXDATA = 263, 8  # the frame's length before it was cut to SNAPLEN comes with it
SNAPLEN = 64  # bytes of each frame read: enough for the headers the kind is told by
MAX_FRAMES = 4096
MAX_SECONDS = 660.0  # a migration's longest copy (600 s) and its switch-over


def kind(frame: bytes) -> str:
    """What a frame is, in a word or two (an 802.1Q tag is looked through)."""
    ethertype = struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else None
    offset = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype, offset = struct.unpack_from("!H", frame, 16)[0], 18
    if ethertype == 0x0806:
        return "arp"
    if ethertype == 0x8035:
        return "rarp"
    if ethertype == 0x86DD:
        return "ipv6"
    if ethertype != 0x0800 or len(frame) < offset + 20:
        return "other"
    protocol = frame[offset + 9]
    header = (frame[offset] & 0x0F) * 4
    if protocol == 1 and len(frame) > offset + header:
        return {8: "icmp-request", 0: "icmp-reply"}.get(frame[offset + header], "icmp")
    return {6: "tcp", 17: "udp"}.get(protocol, "ipv4")


def capture(interface: str, keep: str, frames: int, seconds: float, stop) -> dict:
    """Frames on `interface` until `stop` (a readable file) has a line or closes, or `seconds` pass."""
    kept: collections.deque = collections.deque(maxlen=frames if keep == "last" else None)
    seen, error = 0, None
    deadline = time.monotonic() + seconds
    try:
        # Made deaf (protocol 0) and given ETH_P_ALL only as it binds: a socket made with it hears
        # every link of the namespace until it is bound, and keeps what it heard (a probe's frame
        # on another guest's port, queued ahead of the guest's own, once passed for the guest's).
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.bind((interface, ETH_P_ALL))  # Python puts it in network order here
    except OSError as failure:
        return {"frames": [], "seen": 0, "error": f"{interface}: {failure.strerror or failure}"}
    print("ready", flush=True)
    with sock:
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock, stop], [], [], remaining)
            if stop in ready:
                break
            try:
                data, ancillary, _, address = sock.recvmsg(SNAPLEN, socket.CMSG_SPACE(16) + socket.CMSG_SPACE(20))
            except OSError as failure:  # the interface went away: what was seen stands
                error = f"{interface}: {failure.strerror or failure}"
                break
            seen += 1
            if keep == "first" and len(kept) >= frames:
                continue
            direction = "to-guest" if address[2] == PACKET_OUTGOING else "from-guest"
            stamp, length = _told(ancillary, len(data))
            kept.append([stamp, direction, length, kind(data)])
    return {"frames": list(kept), "seen": seen, "error": error}


def _told(ancillary: list, read: int) -> tuple[float, int]:
    """The kernel's time of the frame (the wall clock) and its whole length; now and what was
    read, should it not say."""
    stamp, length = None, read
    for level, what, data in ancillary:
        if level == socket.SOL_SOCKET and what == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            stamp = seconds + nanoseconds / 1e9
        elif level == SOL_PACKET and what == PACKET_AUXDATA and len(data) >= 8:
            length = struct.unpack("II", data[:8])[1]  # tpacket_auxdata: tp_status, tp_len
    return (time.time() if stamp is None else stamp), length


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.compute.tap_capture")
    parser.add_argument("interface")
    parser.add_argument("--keep", choices=("first", "last"), required=True)
    parser.add_argument("--frames", type=int, default=MAX_FRAMES)
    parser.add_argument("--seconds", type=float, default=MAX_SECONDS)
    args = parser.parse_args()
    frames, seconds = max(1, min(args.frames, MAX_FRAMES)), max(0.0, min(args.seconds, MAX_SECONDS))
    print(json.dumps(capture(args.interface, args.keep, frames, seconds, sys.stdin)), flush=True)


if __name__ == "__main__":
    main()
