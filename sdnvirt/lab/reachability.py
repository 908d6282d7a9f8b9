"""Who reaches whom: the connectivity matrix of a lab, measured with real packets.

Every running guest NIC probes every other one. A guest should reach exactly
the guests on its own tenant networks; anything else is a failure, printed
as such. "Reached" names one guest even where tenants reuse addresses: a
netns guest sends to the target's own MAC and IP (sdnvirt.lab.reachability_probe); a qemu
guest pings the address through its agent and must have resolved it to the
target's MAC.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.linux.netns import NetworkNamespace, run_in_namespace
from sdnvirt.model.topology import GuestKind, Nic

PROBE_TIMEOUT = 60.0
SOURCES_AT_ONCE = 8


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
    reached: bool

    @property
    def expected(self) -> bool:
        return self.source.nic.network == self.target.nic.network

    @property
    def ok(self) -> bool:
        return self.reached == self.expected


def endpoints(lab: Lab) -> list[Endpoint]:
    """Every NIC of every guest that runs now."""
    running = {vm["name"] for vm in lab.api().vms() if vm["state"] == "running"}
    return [Endpoint(g.name, nic) for g in lab.topology.guests.values() if g.name in running for nic in g.nics]


def measure_pairs(lab: Lab, source: Endpoint, targets: list[Endpoint]) -> list[Cell]:
    """Probe from one guest NIC to each target."""
    if lab.topology.guests[source.guest].kind == GuestKind.QEMU:
        reached = _ping_from_vm(lab, source, targets)
    else:
        argv = [sys.executable, "-m", "sdnvirt.lab.reachability_probe", "--iface",
                source.nic.interface, "--src-mac", str(source.nic.mac),
                "--src-ip", str(source.nic.ip)]
        argv += [f"{t.nic.mac},{t.nic.ip}" for t in targets]
        result = json.loads(run_in_namespace(naming.guest_namespace(lab.name, source.guest), argv,
                                             timeout=PROBE_TIMEOUT).stdout)
        reached = [result[f"{t.nic.mac},{t.nic.ip}"] for t in targets]
    return [Cell(source, t, r) for t, r in zip(targets, reached, strict=True)]


def _ping_from_vm(lab: Lab, source: Endpoint, targets: list[Endpoint]) -> list[bool]:
    """Ping each address once from inside the VM; which MAC answered for it."""
    addresses = sorted({str(t.nic.ip) for t in targets})
    script = "".join(f"ip neigh flush all >/dev/null 2>&1; if ping -c 1 -W 1 {a} >/dev/null 2>&1; "
                     f"then echo {a} $(ip neigh show {a} | cut -d' ' -f5); else echo {a} -; fi; "
                     for a in addresses)
    status, output = lab.api().exec(source.guest, ["sh", "-c", script], timeout=len(addresses) * 3 + 10)
    answered = dict(line.split()[:2] for line in output.decode().splitlines() if len(line.split()) >= 2)
    return [answered.get(str(t.nic.ip)) == str(t.nic.mac) for t in targets]


def measure(lab: Lab) -> list[Cell]:
    """Probe every pair of running guest NICs, a few sources at a time.

    Every pair leaves an entry in the kernel's ARP table, which all namespaces
    share and which holds net.ipv4.neigh.default.gc_thresh3 entries at most
    (1024 by default): beyond that, guests silently stop answering. So the
    namespace guests' ARP caches are emptied after each batch of sources.
    """
    every = endpoints(lab)
    cells: list[Cell] = []
    with ThreadPoolExecutor(max_workers=SOURCES_AT_ONCE) as pool:
        for first in range(0, len(every), SOURCES_AT_ONCE):
            batch = every[first:first + SOURCES_AT_ONCE]
            rows = pool.map(lambda s: measure_pairs(lab, s, [t for t in every if t.guest != s.guest]), batch)
            cells += [cell for row in rows for cell in row]
            _forget_neighbours(lab)
    return cells


def _forget_neighbours(lab: Lab) -> None:
    for name, guest in lab.topology.guests.items():
        if guest.kind == GuestKind.NETNS:
            with NetworkNamespace(naming.guest_namespace(lab.name, name)) as ns:
                ns.forget_neighbours()


def format_matrix(cells: list[Cell]) -> str:
    """Rows probe columns: '+' reached, '.' not reached; 'X' where that is wrong."""
    every = list(dict.fromkeys([c.source for c in cells] + [c.target for c in cells]))
    by_pair = {(c.source.label, c.target.label): c for c in cells}
    width = max(len(e.label) for e in every)
    networks = {e.label: e.nic.network for e in every}
    lines = [" " * (width + 1) + " ".join(f"{i:>2}" for i in range(len(every)))]
    for i, source in enumerate(every):
        marks = []
        for target in every:
            cell = by_pair.get((source.label, target.label))
            if cell is None:
                marks.append(" -")
            else:
                marks.append(" X" if not cell.ok else (" +" if cell.reached else " ."))
        lines.append(f"{source.label:>{width}} " + " ".join(marks) + f"   {i:>2} {networks[source.label]}")
    wrong = [c for c in cells if not c.ok]
    lines.append("")
    lines.append(f"{sum(c.reached for c in cells)} of {len(cells)} pairs reach each other; "
                 f"{len(wrong)} differ from the tenant networks"
                 + ("" if not wrong else ": " + ", ".join(
                     f"{c.source.label}->{c.target.label} {'reached' if c.reached else 'unreached'}" for c in wrong)))
    return "\n".join(lines)
