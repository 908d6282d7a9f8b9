"""Real TCP and UDP between two lab guests of either kind, checked byte for byte.

A TCP transfer sends N bytes from one guest to another; each end counts and
hashes (SHA-256) what it sent or received, and the transfer is intact when
the two agree. A UDP exchange sends numbered datagrams that the other guest
echoes; the sender counts the echoes that came back byte-identical. Each
call checks one direction: "both ways" is two calls.

netns guests run sdnvirt.lab.traffic_peer inside their namespace; qemu guests
run busybox's nc, head and sha256sum and the image's sdnvirt-udp (the C twin
of traffic_peer's UDP half) through their agent, as background jobs where a
job must outlive one exec. Every job has a time limit of its own, and every
wait here a deadline.
"""

from __future__ import annotations

import itertools
import selectors
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Protocol

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.linux.netns import entering
from sdnvirt.model.topology import GuestKind

PEER = [sys.executable, "-m", "sdnvirt.lab.traffic_peer"]
VM_UDP = "sdnvirt-udp"
READY_TIMEOUT = 20.0  # seconds for a listener to be listening
EXEC_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10  # seconds a VM's nc tries to connect
POLL_INTERVAL = 0.1  # seconds between two looks for a VM's listener
DONE_INTERVAL = 0.5  # seconds between two looks for a VM's job's end: each look costs the guest CPU
ECHO_SILENCE = 10  # seconds without a datagram after which a UDP echo ends by itself
SLOWEST_RATE = 200_000  # bytes/s: a transfer slower than this (TCG guests do >1 MB/s) has failed
TRANSFER_MARGIN = 20.0  # seconds on top of what the size takes at SLOWEST_RATE
RECEIVER_GRACE = 5.0  # seconds the receiver of a failed transfer has to say how it ended

_ports = itertools.count(5001)  # each check its own port: no listener ever meets an old connection


class TrafficError(RuntimeError):
    """One end of a check failed or did not answer in time; the message says which and why."""


@dataclass(frozen=True)
class Tally:
    """What one end of a TCP transfer sent or received."""

    bytes: int
    sha256: str

    @classmethod
    def parse(cls, line: str) -> Tally:
        count, digest = line.split()
        return cls(int(count), digest)

    def __str__(self) -> str:
        return f"{self.bytes} bytes sha256 {self.sha256[:12]}"


@dataclass(frozen=True)
class TcpResult:
    source: str
    target: str
    size: int  # the bytes asked for
    sent: Tally
    received: Tally
    seconds: float

    @property
    def intact(self) -> bool:
        return self.sent.bytes == self.size and self.received == self.sent

    def __str__(self) -> str:
        rate = self.received.bytes / self.seconds / 1e6 if self.seconds else 0.0
        return (f"TCP {self.source} -> {self.target}: sent {self.sent}, received {self.received}"
                f" ({'intact' if self.intact else 'NOT INTACT'}, {self.seconds:.1f} s, {rate:.1f} MB/s)")


@dataclass(frozen=True)
class UdpResult:
    source: str
    target: str
    count: int  # the datagrams asked for
    sent: int  # fewer when the sender gave up on a dead path
    echoed: int  # came back byte-identical, each counted once
    corrupt: int  # came back matching no datagram sent
    size: int
    ms: int

    @classmethod
    def parse(cls, source: str, target: str, count: int, line: str) -> UdpResult:
        """sdnvirt-udp's (and traffic_peer's) figures: "sent=N echoed=N corrupt=N size=N ms=N"."""
        fields = dict(part.split("=", 1) for part in line.split())
        return cls(source, target, count,
                   **{name: int(fields[name]) for name in ("sent", "echoed", "corrupt", "size", "ms")})

    @property
    def intact(self) -> bool:
        return self.echoed == self.count and self.corrupt == 0

    def __str__(self) -> str:
        return (f"UDP {self.source} -> {self.target}: {self.echoed} of {self.count} datagrams of {self.size} bytes"
                f" echoed intact ({self.sent} sent), {self.corrupt} corrupt, {self.ms} ms")


class Job(Protocol):
    """A program running in a guest."""

    def output(self, timeout: float) -> str:
        """Its output once it ended; TrafficError if it failed or outlived `timeout`."""

    def stop(self) -> None:
        """End it if it still runs, and remove what it left."""


class NetnsJob:
    """sdnvirt.lab.traffic_peer run in a netns guest with these arguments."""

    def __init__(self, namespace: str, *args: object):
        self.name = " ".join(map(str, args))
        self.process = subprocess.Popen([*entering(namespace), *PEER, *map(str, args)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until it printed "ready" (it listens)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TrafficError(f"{self.name} was not ready within {timeout:.0f}s")
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise TrafficError(f"{self.name} did not start: {line} {self.process.stderr.read().strip()}")

    def output(self, timeout: float) -> str:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TrafficError(f"{self.name} did not end within {timeout:.0f}s") from None
        if self.process.returncode != 0:
            raise TrafficError(f"{self.name} failed ({self.process.returncode}): {err.strip()[-500:]}")
        return out.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


class VmJob:
    """A shell script run in the background in a VM, in a session of its own (so that stop()
    ends all of it), under a time limit; its output and exit status are files in /tmp."""

    def __init__(self, lab: Lab, vm: str, name: str, script: str, limit: float):
        self.api, self.vm, self.name = lab.api(), vm, name
        self.files = self.files_of(name)
        # The script runs in a subshell, so that its `exit` still leaves a status; the status is
        # written aside and renamed into place, so that no look reads it half written.
        job = f"(\n{script}\n)\necho $? > {self.files}.status && mv {self.files}.status {self.files}.exit"
        self._exec(f"rm -f {self.files}.*; setsid timeout -s KILL {int(limit) + 1} sh -c {shlex.quote(job)}"
                   f" < /dev/null > {self.files}.out 2> {self.files}.err & echo $! > {self.files}.pid")

    @staticmethod
    def files_of(name: str) -> str:
        """What a job's files are called (FILES.out, FILES.exit, ...); stop() removes them all."""
        return f"/tmp/sdnvirt-{name}"

    def _exec(self, script: str) -> tuple[int, str]:
        status, output = self.api.exec(self.vm, ["sh", "-c", script], timeout=EXEC_TIMEOUT)
        return status, output.decode(errors="replace")

    def wait_until(self, condition: str, timeout: float) -> None:
        """Until a shell condition holds in the VM."""
        deadline = time.monotonic() + timeout
        while self._exec(condition)[0] != 0:
            if time.monotonic() > deadline:
                raise TrafficError(f"{self.vm}: {self.name} was not ready within {timeout:.0f}s "
                                   f"({self._exec(f'cat {self.files}.err')[1].strip()})")
            time.sleep(POLL_INTERVAL)

    def output(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (status := self._exec(f"cat {self.files}.exit"))[0] != 0:
            if time.monotonic() > deadline:
                raise TrafficError(f"{self.vm}: {self.name} did not end within {timeout:.0f}s; {self._guest_state()}")
            time.sleep(DONE_INTERVAL)
        if status[1].strip() != "0":
            said = self._exec(f"cat {self.files}.err")[1].strip()[-400:]
            raise TrafficError(f"{self.vm}: {self.name} failed ({status[1].strip()}): {said}; {self._guest_state()}")
        return self._exec(f"cat {self.files}.out")[1].strip()

    def _guest_state(self) -> str:
        """What the guest says of itself once a job failed: how long it has been up and which of the
        job's files it has (a guest that rebooted lost them), its memory (its root is RAM: a full
        root is an OOM) and its kernel's last lines."""
        return self._exec(f"echo up $(cut -d' ' -f1 /proc/uptime) s; ls {self.files}.* 2>&1; "
                          f"grep -E 'MemFree|MemAvailable|Shmem:' /proc/meminfo; dmesg | tail -5")[1].strip()[-800:]

    def stop(self) -> None:
        self._exec(f"test -e {self.files}.exit || kill -KILL -$(cat {self.files}.pid) 2>/dev/null; "
                   f"rm -f {self.files}.*")


class GuestEnd(Protocol):
    """One guest's side of the checks, whatever its kind."""

    def tcp_receiver(self, port: int, limit: float) -> Job:
        """Listening when it returns; its output: "BYTES SHA256" of what arrived."""

    def tcp_sender(self, address: str, port: int, size: int, rate: float | None, limit: float) -> Job:
        """Its output: "BYTES SHA256" of what it sent."""

    def udp_echo(self, port: int, limit: float) -> Job:
        """Echoing when it returns."""

    def udp_send(self, address: str, port: int, count: int, size: int, wait_ms: int) -> str:
        """The figures line of sdnvirt-udp send."""

    def echo_service(self, port: int, limit: float) -> Job:
        """TCP and UDP echo on `port` (for the connectivity matrix), answering when it returns."""


class NetnsEnd:
    def __init__(self, lab: Lab, guest: str):
        self.namespace = naming.guest_namespace(lab.name, guest)

    def _ready(self, *argv: object) -> NetnsJob:
        job = NetnsJob(self.namespace, *argv)
        try:
            job.wait_ready()
        except BaseException:
            job.stop()
            raise
        return job

    def tcp_receiver(self, port: int, limit: float) -> Job:
        return self._ready("tcp", "receive", port, limit)

    def tcp_sender(self, address: str, port: int, size: int, rate: float | None, limit: float) -> Job:
        return NetnsJob(self.namespace, "tcp", "send", address, port, size, *([rate] if rate else []))

    def udp_echo(self, port: int, limit: float) -> Job:
        return self._ready("udp", "echo", port, limit)

    def echo_service(self, port: int, limit: float) -> Job:
        return self._ready("echo", port, limit)

    def udp_send(self, address: str, port: int, count: int, size: int, wait_ms: int) -> str:
        job = NetnsJob(self.namespace, "udp", "send", address, port, count, size, wait_ms)
        try:
            return job.output(count * wait_ms / 1000 + EXEC_TIMEOUT)
        finally:
            job.stop()


class VmEnd:
    def __init__(self, lab: Lab, guest: str):
        self.lab, self.vm = lab, guest

    def _job(self, name: str, script: str, limit: float, ready: str) -> VmJob:
        job = VmJob(self.lab, self.vm, name, script, limit)
        try:
            job.wait_until(ready, READY_TIMEOUT)
        except BaseException:
            job.stop()
            raise
        return job

    def tcp_receiver(self, port: int, limit: float) -> Job:
        name = f"tcp-{port}-receive"
        data = f"{VmJob.files_of(name)}.data"
        # nc runs `cat` on the connection: a listening nc would close its own half at once
        # (its stdin is empty), and busybox's nc at the other end quits when it sees that.
        script = f"nc -l -p {port} -e sh -c {shlex.quote(f'cat > {data}')} && {tally(data)}"
        return self._job(name, script, limit, listening(port))

    def tcp_sender(self, address: str, port: int, size: int, rate: float | None, limit: float) -> Job:
        if rate:
            raise ValueError(f"{self.vm}: a qemu guest sends as fast as it can; pace a netns guest instead")
        name = f"tcp-{port}-send"
        data = f"{VmJob.files_of(name)}.data"
        script = (f"head -c {size} /dev/urandom > {data} && nc -w {CONNECT_TIMEOUT} {address} {port} < {data} && "
                  f"{tally(data)}")
        return VmJob(self.lab, self.vm, name, script, limit)

    def udp_echo(self, port: int, limit: float) -> Job:
        name = f"udp-{port}-echo"
        return self._job(name, f"{VM_UDP} echo {port} {ECHO_SILENCE}", limit,
                         f"grep -q ready {VmJob.files_of(name)}.out")

    def echo_service(self, port: int, limit: float) -> Job:
        name = f"echo-{port}"
        return self._job(name, f"{VM_UDP} echo {port} {int(limit)} & nc -ll -p {port} -e cat", limit,
                         f"{listening(port)} && grep -q ready {VmJob.files_of(name)}.out")

    def udp_send(self, address: str, port: int, count: int, size: int, wait_ms: int) -> str:
        status, output = self.lab.api().exec(self.vm, [VM_UDP, "send", address, str(port), str(count), str(size),
                                                       str(wait_ms)], timeout=count * wait_ms / 1000 + EXEC_TIMEOUT)
        if status != 0:
            raise TrafficError(f"{self.vm}: {VM_UDP} send failed ({status}): {output.decode().strip()}")
        return output.decode().strip()


def tally(path: str) -> str:
    """A shell command that prints "BYTES SHA256" of a file, as traffic_peer prints a transfer's."""
    return f"echo $(wc -c < {path}) $(sha256sum {path} | cut -d' ' -f1)"


def listening(port: int) -> str:
    """A shell condition: a TCP socket listens on `port` (busybox's nc listens on IPv6 too)."""
    return f"grep -q ':{port:04X} [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6"


def guest_end(lab: Lab, guest: str) -> GuestEnd:
    return VmEnd(lab, guest) if lab.topology.guests[guest].kind == GuestKind.QEMU else NetnsEnd(lab, guest)


def address_of(lab: Lab, source: str, target: str) -> str:
    """The target's address on the first network it shares with the source."""
    networks = {nic.network for nic in lab.topology.guests[source].nics}
    shared = [nic for nic in lab.topology.guests[target].nics if nic.network in networks]
    if not shared:
        raise TrafficError(f"{source} and {target} share no network")
    return str(shared[0].ip)


def transfer_limit(size: int) -> float:
    return TRANSFER_MARGIN + size / SLOWEST_RATE


class TcpStream:
    """A TCP transfer that runs while the caller does something else (a migration, say):
    `with TcpStream(...) as stream: ...; result = stream.result()`."""

    def __init__(self, lab: Lab, source: str, target: str, size: int, rate: float | None = None):
        self.lab, self.source, self.target, self.size, self.rate = lab, source, target, size, rate
        self.limit = transfer_limit(size) + (size / rate if rate else 0.0)
        self.port = next(_ports)
        self.jobs: list[Job] = []

    def __enter__(self) -> TcpStream:
        try:
            self.receiver = guest_end(self.lab, self.target).tcp_receiver(self.port, self.limit)
            self.jobs.append(self.receiver)
            self.began = time.monotonic()
            self.sender = guest_end(self.lab, self.source).tcp_sender(
                address_of(self.lab, self.source, self.target), self.port, self.size, self.rate, self.limit)
            self.jobs.append(self.sender)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for job in self.jobs:
            job.stop()

    def result(self) -> TcpResult:
        """Once both ends are done."""
        deadline = self.began + self.limit
        try:
            sent = Tally.parse(self.sender.output(max(1.0, deadline - time.monotonic())))
        except TrafficError as error:  # what the receiving end said of it, too
            try:
                self.receiver.output(RECEIVER_GRACE)
                receiver = "ended well"
            except TrafficError as receiver_error:
                receiver = str(receiver_error)
            raise TrafficError(f"{error}; the receiver: {receiver}") from error
        received = Tally.parse(self.receiver.output(max(1.0, deadline - time.monotonic())))
        return TcpResult(self.source, self.target, self.size, sent, received, time.monotonic() - self.began)


def tcp_transfer(lab: Lab, source: str, target: str, size: int) -> TcpResult:
    """`size` random bytes from source to target over TCP, as fast as they go."""
    with TcpStream(lab, source, target, size) as stream:
        return stream.result()


def udp_exchange(lab: Lab, source: str, target: str, count: int = 100, size: int = 1400,
                 wait_ms: int = 1000) -> UdpResult:
    """`count` datagrams of `size` bytes from source, each echoed by target."""
    port = next(_ports)
    echo = guest_end(lab, target).udp_echo(port, count * wait_ms / 1000 + ECHO_SILENCE + EXEC_TIMEOUT)
    try:
        line = guest_end(lab, source).udp_send(address_of(lab, source, target), port, count, size, wait_ms)
    finally:
        echo.stop()
    return UdpResult.parse(source, target, count, line)
