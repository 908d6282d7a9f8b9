"""`sdnvirt demo`: the main job on the default topology, start to finish.

Brings the lab up (VMs booted), prints the picture and the connectivity
matrix (who reaches whom by ICMP, TCP and UDP, and that tenants are
isolated), sends 10 MB over TCP each way between a VM and a guest in another
segment and checks every byte, migrates each qemu guest live to a host in
another segment while a namespace guest of its network probes it every 5 ms,
prints the migration report and the matrix again, and brings the lab down,
also when something on the way fails.
"""

from __future__ import annotations

import time
from pathlib import Path

from sdnvirt.cli.migrate import describe
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.migration_probe import migrate
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.reachability import format_matrix, measure
from sdnvirt.lab.traffic import tcp_transfer
from sdnvirt.model.loader import load_topology
from sdnvirt.model.picture import render
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.resources import DEMO_TOPOLOGY

TCP_CHECK_BYTES = 10 * 1024 * 1024


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
        wrong += _tcp_check(lab)
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
        raise LabError(f"{len(wrong)} checks failed: pairs that differ from the tenant networks, "
                       "transfers that lost or changed bytes")
    return 0


def _matrix(lab: Lab) -> list:
    t = _step("connectivity matrix: does each guest reach each other one itself (its own MAC and IP), "
              "by ICMP, TCP and UDP?")
    cells = measure(lab)
    print(format_matrix(cells))
    print(f"    measured in {time.monotonic() - t:.1f}s")
    return [c for c in cells if not c.ok]


def _tcp_check(lab: Lab) -> list:
    """10 MB each way between two guests of a network in different segments (a VM where
    there is one), every byte checked; the transfers that were not intact."""
    pair = _across_segments(lab.topology)
    if pair is None:
        return []
    broken = []
    for source, target in (pair, pair[::-1]):
        t = _step(f"TCP: {TCP_CHECK_BYTES // 2**20} MiB from {source} to {target}, another segment; every byte checked")
        result = tcp_transfer(lab, source, target, TCP_CHECK_BYTES)
        print(f"    {result}")
        print(f"    in {time.monotonic() - t:.1f}s")
        broken += [] if result.intact else [result]
    return broken


def _across_segments(topology: Topology) -> tuple[str, str] | None:
    """Two guests that share a network, on hosts of different segments; a qemu guest first if any."""
    guests = sorted(((name, guest) for name, guest in topology.guests.items() if guest.autostart),
                    key=lambda item: (item[1].kind != GuestKind.QEMU, item[0]))
    for name, guest in guests:
        segment = topology.hosts[guest.host].segment
        networks = {nic.network for nic in guest.nics}
        for other, peer in guests:
            if topology.hosts[peer.host].segment != segment and networks & {nic.network for nic in peer.nics}:
                return name, other
    return None


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
