"""Talking to guests from the tests: commands, pings, raw frames in and out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.lab.process import entering
from sdnvirt.model.topology import Nic

WIRE = Path(__file__).parent / "wire.py"


def nic(lab: Lab, guest: str) -> Nic:
    return lab.topology.guests[guest].nics[0]


def in_guest(lab: Lab, guest: str, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*entering(naming.guest_namespace(lab.name, guest)), *argv],
                          capture_output=True, text=True, timeout=timeout, check=check)


def ping(lab: Lab, source: str, address: str, count: int = 3, interval: float = 0.2) -> int:
    """Replies received by `count` pings from `source` to `address`."""
    result = in_guest(lab, source, "ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "1",
                      address, check=False, timeout=count * interval + 10)
    for line in result.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    raise AssertionError(f"no ping summary: {result.stdout} {result.stderr}")


@dataclass
class Capture:
    """Frames seen on one interface of one namespace while a test sends."""

    process: subprocess.Popen

    def wait_ready(self) -> None:
        assert self.process.stdout.readline().strip() == "ready", self.process.stderr.read()

    def frames(self, timeout: float = 30) -> list[bytes]:
        time.sleep(CAPTURE_GRACE)
        out, err = self.process.communicate("stop\n", timeout=timeout)
        assert self.process.returncode == 0, err
        return [bytes.fromhex(h) for h in json.loads(out)]


CAPTURE_GRACE = 0.3  # seconds for frames still on their way when a test stops listening
CAPTURE_LIMIT = 60  # seconds a capture runs at most if nobody stops it


def listen(*where: tuple[str, str, str | None]) -> list[Capture]:
    """Captures on (namespace, interface, BPF filter), all listening when this returns."""
    captures = [Capture(subprocess.Popen(
        [*entering(namespace), sys.executable, str(WIRE), "sniff", iface, str(CAPTURE_LIMIT)]
        + ([bpf] if bpf else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for namespace, iface, bpf in where]
    for capture in captures:
        capture.wait_ready()
    return captures


def on_guest(lab: Lab, guest: str, bpf: str | None = None) -> tuple[str, str, str | None]:
    return naming.guest_namespace(lab.name, guest), "eth0", bpf


def on_underlay(lab: Lab, host: str, bpf: str | None = None) -> tuple[str, str, str | None]:
    """A host's physical NIC, where every tunnelled packet passes."""
    return naming.host_namespace(lab.name, host), "eth0", bpf


def send_frames(lab: Lab, guest: str, frames: list[bytes]) -> None:
    in_guest(lab, guest, sys.executable, str(WIRE), "send", "eth0", *(f.hex() for f in frames))


def wait_until(predicate, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
