"""Raw frames in and out of one interface, run inside a lab namespace by the tests.

    python wire.py send IFACE HEX [HEX...]     send each frame once
    python wire.py pace IFACE RATE             send the hex frames on stdin (one a line), RATE a second
                                               (0: as fast as it can); print one JSON object: sent,
                                               refused (indexes the kernel would not take), seconds
    python wire.py sniff IFACE SECONDS [BPF]   print "ready", capture until a line arrives on
                                               stdin (at most SECONDS), then print a JSON list of
                                               the captured frames (hex)
"""

import json
import select
import socket
import sys
import threading
import time

from scapy.config import conf
from scapy.sendrecv import AsyncSniffer, sendp


def pace(iface: str, rate: float) -> None:
    """Every hex frame on stdin out of `iface`, through a raw socket, `rate` a second."""
    frames = [bytes.fromhex(line) for line in sys.stdin.read().split()]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent, refused = 0, []
    began = time.monotonic()
    for index, frame in enumerate(frames):
        ahead = began + index / rate - time.monotonic() if rate else 0
        if ahead > 0.001:
            time.sleep(ahead)
        try:
            sock.send(frame)
            sent += 1
        except OSError:
            refused.append(index)
    print(json.dumps({"sent": sent, "refused": refused, "seconds": round(time.monotonic() - began, 3)}))


def main() -> None:
    conf.verb = 0
    verb, iface = sys.argv[1], sys.argv[2]
    if verb == "send":
        for frame in sys.argv[3:]:
            sendp(bytes.fromhex(frame), iface=iface)
    elif verb == "pace":
        pace(iface, float(sys.argv[3]))
    elif verb == "sniff":
        seconds = float(sys.argv[3])
        bpf = sys.argv[4] if len(sys.argv) > 4 else None
        listening = threading.Event()
        sniffer = AsyncSniffer(iface=iface, filter=bpf, store=True, started_callback=listening.set)
        sniffer.start()
        if not listening.wait(timeout=10):  # its socket is open (and filtered) before anyone sends
            raise SystemExit(f"no capture on {iface} within 10 s")
        print("ready", flush=True)
        readable, _, _ = select.select([sys.stdin], [], [], seconds)
        frames = sniffer.stop() or []
        print(json.dumps([bytes(f).hex() for f in frames]), flush=True)


if __name__ == "__main__":
    main()
