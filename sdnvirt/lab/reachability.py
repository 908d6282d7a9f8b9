"""Who reaches whom: the connectivity matrix of a lab, measured with real packets.

Every running guest NIC probes every other one with ICMP, TCP and UDP. A
guest should reach exactly the guests on its own tenant networks, by each of
the three; anything else is a failure, printed as such. While the matrix is
measured, every guest runs a TCP and UDP echo service (port 7): a few KB over
TCP and a few datagrams over UDP must come back byte for byte, through the
guests' own kernels as a user's traffic does. "Reached" names one guest even
where tenants reuse addresses: a netns guest sends its echo requests to the
target's own MAC and IP (sdnvirt.lab.reachability_probe); a qemu guest pings
the address through its agent; and TCP and UDP count only where the source
resolved the address to the target's MAC.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.lab.reachability_probe import ECHO_PORT, TCP_BYTES, TCP_TIMEOUT, UDP_DATAGRAMS, UDP_SIZE, UDP_WAIT_MS
from sdnvirt.lab.traffic import guest_end
from sdnvirt.linux.netns import NetworkNamespace, run_in_namespace
from sdnvirt.model.topology import GuestKind, Nic

PROBE_TIMEOUT = 60.0
SOURCES_AT_ONCE = 8  # each probing every other NIC (the ARP bound below); twice as many probing a few
PROTOCOLS = ("icmp", "tcp", "udp")


@dataclass(frozen=True)
class Endpoint:
    guest: str
    nic: Nic

    @property
    def label(self) -> str:
        return f"{self.guest}/eth{self.nic.index}"


@dataclass(frozen=True)
class Cell:
    source: Endpoint
    target: Endpoint
    icmp: bool
    tcp: bool
    udp: bool

    @property
    def expected(self) -> bool:
        return self.source.nic.network == self.target.nic.network

    @property
    def reached(self) -> bool:
        """By each of ICMP, TCP and UDP."""
        return self.icmp and self.tcp and self.udp

    @property
    def wrong(self) -> list[str]:
        """The protocols by which the target was reached where it should not be, or the reverse."""
        return [p for p in PROTOCOLS if getattr(self, p) != self.expected]

    @property
    def ok(self) -> bool:
        return not self.wrong


def endpoints(lab: Lab) -> list[Endpoint]:
    """Every NIC of every guest that runs now."""
    running = {vm["name"] for vm in lab.api().vms() if vm["state"] == "running"}
    return [Endpoint(g.name, nic) for g in lab.topology.guests.values() if g.name in running for nic in g.nics]


def measure_pairs(lab: Lab, source: Endpoint, targets: list[Endpoint]) -> list[Cell]:
    """Probe from one guest NIC to each target."""
    with echo_services(lab, sorted({t.guest for t in targets}), PROBE_TIMEOUT * 2):
        return _probe(lab, source, targets)


def _probe(lab: Lab, source: Endpoint, targets: list[Endpoint]) -> list[Cell]:
    """Probe from one guest NIC to each target, whose echo services run."""
    if lab.topology.guests[source.guest].kind == GuestKind.QEMU:
        reached = _probe_from_vm(lab, source, targets)
    else:
        argv = [sys.executable, "-m", "sdnvirt.lab.reachability_probe", "--iface",
                source.nic.interface, "--src-mac", str(source.nic.mac),
                "--src-ip", str(source.nic.ip)]
        argv += [f"{t.nic.mac},{t.nic.ip}" for t in targets]
        result = json.loads(run_in_namespace(naming.guest_namespace(lab.name, source.guest), argv,
                                             timeout=PROBE_TIMEOUT).stdout)
        reached = [result[f"{t.nic.mac},{t.nic.ip}"] for t in targets]
    return [Cell(source, t, **r) for t, r in zip(targets, reached, strict=True)]


# Inside a VM, for each address at once: ping it once, send TCP_BYTES to its echo service and
# compare, exchange UDP datagrams; then which MAC the address resolved to.
VM_PROBE = f"""
probe() {{
    ping -c 1 -W 1 $1 >/dev/null 2>&1 && icmp=+ || icmp=-
    timeout {TCP_TIMEOUT:.0f} nc $1 {ECHO_PORT} < $bytes > $bytes.$1 2>/dev/null &&
        cmp -s $bytes $bytes.$1 && tcp=+ || tcp=-
    case "$(sdnvirt-udp send $1 {ECHO_PORT} {UDP_DATAGRAMS} {UDP_SIZE} {UDP_WAIT_MS})" in
    *" echoed={UDP_DATAGRAMS} corrupt=0 "*) udp=+ ;;
    *) udp=- ;;
    esac
    echo $1 $icmp $tcp $udp $(ip neigh show $1 | cut -d' ' -f5)
}}
bytes=/tmp/sdnvirt-probe
ip neigh flush all >/dev/null 2>&1
head -c {TCP_BYTES} /dev/urandom > $bytes
for address in "$@"; do probe $address > $bytes.$address.result & done
wait
for address in "$@"; do cat $bytes.$address.result; done
rm -f $bytes $bytes.*
"""


def _probe_from_vm(lab: Lab, source: Endpoint, targets: list[Endpoint]) -> list[dict[str, bool]]:
    """Every target address probed from inside the VM (through its agent), all at once."""
    addresses = sorted({str(t.nic.ip) for t in targets})
    status, output = lab.api().exec(source.guest, ["sh", "-c", VM_PROBE, "probe", *addresses], timeout=PROBE_TIMEOUT)
    if status != 0:
        raise RuntimeError(f"the probe in {source.guest} failed ({status}): {output.decode().strip()}")
    answered = {line.split()[0]: line.split()[1:] for line in output.decode().splitlines() if len(line.split()) >= 4}
    reached = []
    for target in targets:
        icmp, tcp, udp, *mac = answered.get(str(target.nic.ip), ["-", "-", "-"])
        right_mac = mac == [str(target.nic.mac)]
        reached.append({"icmp": icmp == "+" and right_mac, "tcp": tcp == "+" and right_mac,
                        "udp": udp == "+" and right_mac})
    return reached


def measure(lab: Lab, peers: int | None = None) -> list[Cell]:
    """Probe every pair of running guest NICs, a few sources at a time; with `peers`, each NIC
    probes only that many of its network's NICs and as many of other networks', the ones that
    follow it round the list (a matrix of fifty guests takes 85 s whole here).

    Every pair leaves an entry in the kernel's ARP table, which all namespaces
    share and which holds net.ipv4.neigh.default.gc_thresh3 entries at most
    (1024 by default): beyond that, guests silently stop answering. So the
    namespace guests' ARP caches are emptied before the first batch of
    sources and after each one.
    """
    every = endpoints(lab)
    cells: list[Cell] = []
    at_once = SOURCES_AT_ONCE if peers is None else 2 * SOURCES_AT_ONCE
    batches = range(0, len(every), at_once)
    _forget_neighbours(lab)
    with echo_services(lab, sorted({e.guest for e in every}), PROBE_TIMEOUT * (len(batches) + 1)), \
            ThreadPoolExecutor(max_workers=at_once) as pool:
        for first in batches:
            batch = every[first:first + at_once]
            rows = pool.map(lambda s: _probe(lab, s, _targets(every, s, peers)), batch)
            cells += [cell for row in rows for cell in row]
            _forget_neighbours(lab)
    return cells


def _targets(every: list[Endpoint], source: Endpoint, peers: int | None) -> list[Endpoint]:
    if peers is None:
        return [t for t in every if t.guest != source.guest]
    at = every.index(source)
    following = [t for t in every[at + 1:] + every[:at] if t.guest != source.guest]
    same = [t for t in following if t.nic.network == source.nic.network][:peers]
    return same + [t for t in following if t.nic.network != source.nic.network][:peers]


@contextmanager
def echo_services(lab: Lab, guests: list[str], limit: float) -> Iterator[None]:
    """Each guest's TCP and UDP echo service on ECHO_PORT, all running while the block runs
    (and each stopped after it, also those that started when another could not)."""
    with ThreadPoolExecutor(max_workers=SOURCES_AT_ONCE) as pool:
        starts = [pool.submit(guest_end(lab, guest).echo_service, ECHO_PORT, limit) for guest in guests]
    running = [start.result() for start in starts if start.exception() is None]
    try:
        for start in starts:
            start.result()
        yield
    finally:
        for job in running:
            job.stop()


def _forget_neighbours(lab: Lab) -> None:
    for name, guest in lab.topology.guests.items():
        if guest.kind == GuestKind.NETNS:
            with NetworkNamespace(naming.guest_namespace(lab.name, name)) as ns:
                ns.forget_neighbours()


def format_matrix(cells: list[Cell]) -> str:
    """Rows probe columns, by ICMP, TCP and UDP: '+' reached, '.' not reached; 'X' where that is wrong."""
    every = list(dict.fromkeys([c.source for c in cells] + [c.target for c in cells]))
    by_pair = {(c.source.label, c.target.label): c for c in cells}
    width = max(len(e.label) for e in every)
    networks = {e.label: e.nic.network for e in every}
    lines = [" " * width + "".join(f"{i:>4}" for i in range(len(every))) + "   (each cell: ICMP TCP UDP)"]
    for i, source in enumerate(every):
        marks = []
        for target in every:
            cell = by_pair.get((source.label, target.label))
            if cell is None:
                marks.append("   -")
            else:
                marks.append(" " + "".join("X" if p in cell.wrong else ("+" if getattr(cell, p) else ".")
                                           for p in PROTOCOLS))
        lines.append(f"{source.label:>{width}}" + "".join(marks) + f"   {i:>2} {networks[source.label]}")
    wrong = [c for c in cells if not c.ok]
    lines.append("")
    lines.append(f"{sum(c.reached for c in cells)} of {len(cells)} pairs reach each other by ICMP, TCP and UDP; "
                 f"{len(wrong)} differ from the tenant networks"
                 + ("" if not wrong else ": " + ", ".join(
                     f"{c.source.label}->{c.target.label} {'unreached' if c.expected else 'reached'} by "
                     + "/".join(c.wrong) for c in wrong)))
    return "\n".join(lines)
