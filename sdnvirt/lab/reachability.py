"""Who reaches whom: the connectivity matrix of a lab, measured with real packets.

Every guest NIC probes every other guest NIC (see sdnvirt.lab.probe). A
guest should reach exactly the guests on its own tenant networks; anything
else is a failure, printed as such.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sdnvirt.lab import naming
from sdnvirt.lab.process import run_in_namespace
from sdnvirt.model.topology import GuestKind, Nic, Topology

PROBE_TIMEOUT = 60.0


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


def endpoints(topology: Topology) -> list[Endpoint]:
    return [Endpoint(g.name, nic) for g in topology.guests.values() if g.kind == GuestKind.NETNS for nic in g.nics]


def measure_pairs(topology: Topology, source: Endpoint, targets: list[Endpoint]) -> list[Cell]:
    """Probe from one netns guest NIC to each target."""
    argv = [sys.executable, "-m", "sdnvirt.lab.probe", "--iface", naming.guest_nic_name(source.nic.index),
            "--src-mac", str(source.nic.mac), "--src-ip", str(source.nic.ip)]
    argv += [f"{t.nic.mac},{t.nic.ip}" for t in targets]
    result = json.loads(run_in_namespace(naming.guest_namespace(topology.name, source.guest), argv,
                                         timeout=PROBE_TIMEOUT).stdout)
    return [Cell(source, t, result[f"{str(t.nic.mac).lower()},{t.nic.ip}"]) for t in targets]


def measure(topology: Topology) -> list[Cell]:
    """Probe every pair of guest NICs, all sources at once."""
    every = endpoints(topology)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = pool.map(lambda s: measure_pairs(topology, s, [t for t in every if t.guest != s.guest]), every)
        return [cell for row in rows for cell in row]


def format_matrix(topology: Topology, cells: list[Cell]) -> str:
    """Rows probe columns: '+' reached, '.' not reached; 'X' where that is wrong."""
    every = endpoints(topology)
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
