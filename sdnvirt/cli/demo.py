"""`sdnvirt demo`: the main job on the default topology, start to finish.

Brings the lab up, prints the picture and the connectivity matrix (who
reaches whom, and that tenants are isolated), and brings the lab down again,
also when something on the way fails.
"""

from __future__ import annotations

import time
from pathlib import Path

from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.reachability import format_matrix, measure
from sdnvirt.model.loader import load_topology
from sdnvirt.model.picture import render

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "demo.yaml"


def register(verbs) -> None:
    demo = verbs.add_parser("demo", help="lab up on a topology, connectivity matrix, lab down")
    demo.add_argument("file", type=Path, nargs="?", default=DEFAULT_TOPOLOGY)
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
        t = _step("connectivity matrix: does each guest reach each other one itself (its own MAC and IP)?")
        cells = measure(lab)
        print(format_matrix(cells))
        print(f"    measured in {time.monotonic() - t:.1f}s")
    finally:
        t = _step("lab down")
        lab.down()
        print(f"    down in {time.monotonic() - t:.1f}s")
    wrong = [c for c in cells if not c.ok]
    print(f"==> demo {'passed' if not wrong else 'FAILED'} in {time.monotonic() - began:.1f}s")
    if wrong:
        raise LabError(f"{len(wrong)} pairs differ from the tenant networks")
    return 0
