"""Labs for the tests: built from a topology file, always removed again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sdnvirt.lab.lab import Lab, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.model.loader import load_topology


def build_lab(path: Path) -> Iterator[Lab]:
    topology = load_topology(path)
    lab = Lab(topology, LabPaths.of(topology.name))
    if topology.name in running_labs():
        Lab.open(topology.name).down()  # left over by an interrupted run
    lab.up(path)
    try:
        yield lab
    finally:
        lab.down()
