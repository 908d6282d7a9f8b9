"""A probe: one guest pings a migrating VM at a fixed rate and counts what came back;
and a migration run with such a probe.

Lost probes are not the whole story: a reply that comes two seconds late, or
twice, is not a success either. So besides what was lost the probe counts
duplicated replies and the longest gap between two answered probes (by the
time their replies arrived).

Inside the probe guest it runs as

    python -m sdnvirt.lab.migration_probe --target IP [--interval-ms 5]

prints "ready" once it sends, stops sending at a line on stdin (or after
--max-seconds), waits a moment for the last replies, and prints its figures as
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.linux.netns import entering
from sdnvirt.model.topology import GuestKind

ECHO_REQUEST, ECHO_REPLY = 8, 0
REPLY_GRACE = 0.5  # seconds to wait for replies after the last probe
START_TIMEOUT = 30.0
WAIT_STEP = 30.0  # seconds per long poll of a migration
MIGRATION_TIMEOUT = 600.0
PROBE_TAIL = 1.0  # seconds the probe goes on after the migration, to see traffic settle


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"sdnvirt-probe".ljust(32, b".")
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, _checksum(header + payload), ident, seq & 0xFFFF) + payload


def echo_reply_seq(packet: bytes, ident: int) -> int | None:
    """The sequence number of an echo reply to us in a raw IPv4 packet, else None."""
    if len(packet) < 20:
        return None
    header = (packet[0] & 0x0F) * 4
    if len(packet) < header + 8:
        return None
    kind, _, _, reply_ident, seq = struct.unpack_from("!BBHHH", packet, header)
    return seq if kind == ECHO_REPLY and reply_ident == ident else None


@dataclass
class ProbeFigures:
    sent: int
    lost: int
    duplicates: int
    max_gap_ms: float | None
    interval_ms: float


def figures(sent_at: list[float], replies: dict[int, list[float]], interval_ms: float) -> ProbeFigures:
    """What a run comes to: `replies` maps a sequence number to its replies' arrival times."""
    first = sorted(times[0] for seq, times in replies.items() if seq < len(sent_at))
    gaps = [(b - a) * 1000 for a, b in zip(first, first[1:], strict=False)]
    answered = sum(1 for seq in replies if seq < len(sent_at))
    return ProbeFigures(sent=len(sent_at), lost=len(sent_at) - answered,
                        duplicates=sum(len(times) - 1 for times in replies.values()),
                        max_gap_ms=round(max(gaps), 2) if gaps else None, interval_ms=interval_ms)


def run(target: str, interval_ms: float, max_seconds: float) -> ProbeFigures:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    sent_at: list[float] = []
    replies: dict[int, list[float]] = {}
    stop = threading.Event()
    stop_receiving = threading.Event()

    def receive() -> None:
        while not stop_receiving.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                packet = sock.recv(2048)
                arrived = time.monotonic()
                seq = echo_reply_seq(packet, ident)
                if seq is not None:
                    replies.setdefault(seq, []).append(arrived)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    began = time.monotonic()
    print("ready", flush=True)
    seq = 0
    while not stop.is_set() and time.monotonic() - began < max_seconds:
        sent_at.append(time.monotonic())
        sock.sendto(echo_request(ident, seq), (target, 0))
        seq += 1
        time.sleep(max(0.0, began + seq * interval_ms / 1000 - time.monotonic()))
    time.sleep(REPLY_GRACE)
    stop_receiving.set()
    receiver.join(timeout=1)
    return figures(sent_at, replies, interval_ms)


class MigrationProbe:
    """The probe, run in a network namespace (a netns guest's), from outside."""

    def __init__(self, namespace: str, target: str, interval_ms: float = 5.0, max_seconds: float = 600):
        argv = [*entering(namespace), sys.executable, "-m", "sdnvirt.lab.migration_probe",
                "--target", target, "--interval-ms", str(interval_ms), "--max-seconds", str(max_seconds)]
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT)
        if not ready or self._process.stdout.readline().strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"the probe in {namespace} did not start: {self._process.stderr.read()}")

    def stop(self) -> dict:
        out, err = self._process.communicate("stop\n", timeout=START_TIMEOUT)
        if self._process.returncode != 0:
            raise RuntimeError(f"the probe failed: {err.strip()}")
        return json.loads(out)


def probe_target(lab: Lab, vm: str, probe: str) -> str:
    """The VM's address on the first network it shares with the probe guest."""
    guest, prober = lab.topology.guests.get(vm), lab.topology.guests.get(probe)
    if guest is None or prober is None:
        raise LabError(f"no guest named {vm if guest is None else probe!r}")
    if prober.kind != GuestKind.NETNS:
        raise LabError(f"the probe must be a netns guest; {probe} is {prober.kind.value}")
    networks = {nic.network for nic in prober.nics}
    shared = next((nic for nic in guest.nics if nic.network in networks), None)
    if shared is None:
        raise LabError(f"{probe} shares no network with {vm}: it cannot probe it")
    return str(shared.ip)


def migrate(lab: Lab, vm: str, destination: str, offline: bool = False, probe: str | None = None,
            capture: bool = False) -> dict:
    """Migrate through the controller (one request, then its end waited for), with a netns guest
    probing the VM meanwhile if asked, and captures on its ports if asked; the report, the probe's
    figures included."""
    api = lab.api()
    watcher = MigrationProbe(naming.guest_namespace(lab.name, probe), probe_target(lab, vm, probe)) if probe else None
    migration = None
    try:
        migration = api.migrate(vm, destination, offline, capture)
        deadline = time.monotonic() + MIGRATION_TIMEOUT
        while migration["result"] is None and time.monotonic() < deadline:
            migration = api.migration(migration["id"], wait=WAIT_STEP)
    finally:
        if watcher is not None:
            time.sleep(PROBE_TAIL)
            figures = watcher.stop()
            if migration is not None:
                migration = api.attach_probe(migration["id"], figures)
    return migration


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.lab.migration_probe")
    parser.add_argument("--target", required=True)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    print(json.dumps(vars(run(args.target, args.interval_ms, args.max_seconds))), flush=True)


if __name__ == "__main__":
    main()
