"""Talking to guests from the tests: commands, pings, raw frames in and out."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from sdnvirt.client.api import ApiError
from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.linux.netns import entering
from sdnvirt.model.topology import Nic
from sdnvirt.vswitch.names import OFCTL_PROTOCOL

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


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int
    answered_at: list[float]  # when each answer came (epoch seconds, ping's own -D stamps)
    output: str

    @property
    def lost(self) -> int:
        return self.transmitted - self.received

    def straddles(self, moment: float) -> bool:
        """Answers came before and after `moment` (epoch seconds): a fault then came mid-traffic."""
        return bool(self.answered_at) and self.answered_at[0] < moment < self.answered_at[-1]

    def longest_gap(self) -> float:
        """The longest time without an answer, in seconds."""
        return max((b - a for a, b in zip(self.answered_at, self.answered_at[1:], strict=False)), default=0.0)

    def __str__(self) -> str:
        """What a failed assertion shows: the pings that got no answer, not the whole log."""
        unanswered = [line.rsplit("=", 1)[-1] for line in self.output.splitlines() if "no answer yet" in line]
        return (f"{self.lost}/{self.transmitted} lost (no answer to icmp_seq {', '.join(unanswered) or '-'}), "
                f"longest gap {self.longest_gap() * 1000:.1f} ms, "
                f"answers from {self.answered_at[0] if self.answered_at else '-'} to "
                f"{self.answered_at[-1] if self.answered_at else '-'}")


@dataclass
class SteadyPing:
    """A guest pinging an address at a fixed rate in the background, while a test breaks something."""

    process: subprocess.Popen
    limit: float

    def __enter__(self) -> SteadyPing:
        return self

    def __exit__(self, *_) -> None:
        if self.process.poll() is None:  # the test failed before it waited for the answers
            self.process.kill()
            self.process.communicate()

    def result(self) -> PingResult:
        """Once every ping is sent and answered or given up on."""
        output, _ = self.process.communicate(timeout=self.limit)
        summary = next((line for line in output.splitlines() if "packets transmitted" in line), None)
        assert summary is not None, output
        transmitted, received = (int(part.split()[0]) for part in summary.split(",")[:2])
        answered = [float(line[1:line.index("]")]) for line in output.splitlines()
                    if line.startswith("[") and " bytes from " in line]
        return PingResult(transmitted, received, answered, output)


def steady_ping(lab: Lab, source: str, address: str, count: int, interval: float) -> SteadyPing:
    """`count` pings every `interval` s from `source`; each answer stamped, unanswered ones reported."""
    process = subprocess.Popen(
        [*entering(naming.guest_namespace(lab.name, source)), "ping", "-n", "-D", "-O", "-c", str(count),
         "-i", str(interval), "-W", "1", address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return SteadyPing(process, count * interval * 2 + 30)


def flow_tables(lab: Lab) -> dict[str, list[str]]:
    """Every host's flows without counters or ages, in a stable order."""
    return {name: sorted(host.openvswitch.ofctl("--no-stats", "dump-flows", "br-int").splitlines())
            for name, host in lab.hosts().items()}


FLOW_MOD_MESSAGES = ("OFPT_FLOW_MOD", "OFPT_BUNDLE_ADD_MESSAGE", "OFPT_BUNDLE_CONTROL")


def snoop(lab: Lab, host: str) -> subprocess.Popen:
    """ovs-ofctl snoop: every OpenFlow message between the bridge and its controller."""
    env = lab.hosts()[host].openvswitch.env
    return subprocess.Popen(["ovs-ofctl", "-O", OFCTL_PROTOCOL, "snoop", "br-int"],
                            env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@contextmanager
def snooping(lab: Lab, hosts: list[str]) -> Iterator[dict[str, str]]:
    """Every OpenFlow message of these hosts' bridges while the block runs, by host (filled in at its end)."""
    watchers = {host: snoop(lab, host) for host in hosts}
    seen: dict[str, str] = {}
    try:
        yield seen
    finally:
        for watcher in watchers.values():
            watcher.terminate()
        seen.update({host: watcher.communicate(timeout=10)[0] for host, watcher in watchers.items()})


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


ECHO_REPLY = 0
MIN_FRAME = 60  # bytes: padded here, so no one on the way pads it and it arrives as sent


def control_frame(lab: Lab, source: str, target: str, arp: bool = False) -> bytes:
    """A frame the fabric must carry from `source` to `target` and that no one answers (an
    unsolicited echo reply; or an ARP reply with the sender's own addresses, for captures of ARP):
    sent after frames that must not arrive, it proves that a capture which saw none of them was
    seeing traffic all along."""
    s, t = nic(lab, source), nic(lab, target)
    ether = Ether(src=str(s.mac), dst=str(t.mac))
    if arp:
        frame = ether / ARP(op=2, hwsrc=str(s.mac), psrc=str(s.ip), hwdst=str(t.mac), pdst=str(t.ip))
    else:
        frame = ether / IP(src=str(s.ip), dst=str(t.ip)) / ICMP(type=ECHO_REPLY) / Raw(b"sdnvirt control")
    return bytes(frame).ljust(MIN_FRAME, b"\0")


def arrived(lab: Lab, guest: str, frames: list[bytes]) -> list[bytes]:
    """The frames a capture on the guest saw come in (it sees what the guest sends as well)."""
    own = str(nic(lab, guest).mac)
    return [f for f in frames if Ether(f).src != own]


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


def kept_events(lab: Lab, enough, timeout: float = 15) -> list[dict]:
    """The controller's kept events, as `sdnvirt events --after 0` streams them, read until
    `enough(events)` holds (an AssertionError after `timeout`)."""
    seen: list[dict] = []
    done = threading.Event()

    def read() -> None:
        with contextlib.suppress(ApiError):  # the controller went away: what was seen is what there is
            for event in lab.api().events(after=0):
                seen.append(event)
                if enough(seen):
                    break
        done.set()

    threading.Thread(target=read, name="events", daemon=True).start()
    if not done.wait(timeout):
        raise AssertionError(f"not enough events within {timeout}s: {[(e['kind'], e['data']) for e in seen]}")
    return seen


def vm_ping(lab: Lab, vm: str, address: str, count: int = 3) -> int:
    """Replies to `count` pings sent from inside a qemu guest (through its agent)."""
    _, output = lab.api().exec(vm, ["ping", "-c", str(count), "-W", "1", address], timeout=count + 10)
    summary = next(line for line in output.decode().splitlines() if "packets received" in line)
    return int(summary.split(",")[1].split()[0])
