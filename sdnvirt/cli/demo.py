"""`sdnvirt demo`: the main job on the default topology, start to finish.

Brings the lab up (VMs booted), prints the picture and the connectivity
matrix (who reaches whom, and that tenants are isolated), migrates each qemu
guest live to a host in another segment while a namespace guest of its
network probes it every 5 ms, prints the migration report and the matrix
again, and brings the lab down, also when something on the way fails.
"""

from __future__ import annotations

import time
from pathlib import Path

from sdnvirt.cli.migrate import describe
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.migration_probe import migrate
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.reachability import format_matrix, measure
from sdnvirt.model.loader import load_topology
from sdnvirt.model.picture import render
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.resources import DEMO_TOPOLOGY


def register(verbs) -> None:
    demo = verbs.add_parser("demo", help="lab up on a topology, connectivity matrix, lab down")
    demo.add_argument("file", type=Path, nargs="?", default=DEMO_TOPOLOGY)
    demo.set_defaults(run=_demo)


def _step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.monotonic()


def _demo(args) -> int:
    topology = load_topology(args.file)
    began = _step(f"topology {topology.name} from {args.file}")
    print(render(topology, "text"))
    lab = Lab(topology, LabPaths.of(topology.name))
    t = _step("lab up")
    lab.up(args.file)
    print(f"    up in {time.monotonic() - t:.1f}s")
    try:
        wrong = _matrix(lab)
        for vm, destination, probe in _moves(topology):
            _step(f"live migration of {vm} to {destination} (another segment), {probe} probing it every 5 ms")
            report = migrate(lab, vm, destination, probe=probe)
            print(describe(report))
            if report["result"] != "completed":
                raise LabError(f"the migration of {vm} {report['result']}")
        if _moves(topology):
            wrong += _matrix(lab)
    finally:
        t = _step("lab down")
        lab.down()
        print(f"    down in {time.monotonic() - t:.1f}s")
    print(f"==> demo {'passed' if not wrong else 'FAILED'} in {time.monotonic() - began:.1f}s")
    if wrong:
        raise LabError(f"{len(wrong)} pairs differ from the tenant networks")
    return 0


def _matrix(lab: Lab) -> list:
    t = _step("connectivity matrix: does each guest reach each other one itself (its own MAC and IP)?")
    cells = measure(lab)
    print(format_matrix(cells))
    print(f"    measured in {time.monotonic() - t:.1f}s")
    return [c for c in cells if not c.ok]


def _moves(topology: Topology) -> list[tuple[str, str, str]]:
    """Each qemu guest to a host of another segment, probed by a netns guest of its network."""
    moves = []
    for name, guest in topology.guests.items():
        segment = topology.hosts[guest.host].segment
        elsewhere = sorted(h for h, host in topology.hosts.items() if host.segment != segment)
        probes = [g for g, other in topology.guests.items() if other.kind == GuestKind.NETNS
                  and {n.network for n in other.nics} & {n.network for n in guest.nics}]
        if guest.kind == GuestKind.QEMU and elsewhere and probes:
            moves.append((name, elsewhere[0], probes[0]))
    return moves
