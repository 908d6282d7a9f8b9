"""Labs for the tests: built from a topology file, always removed again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sdnvirt.lab.lab import Lab, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.model.loader import load_topology


def build_lab(path: Path, ssl: bool = False) -> Iterator[Lab]:
    topology = load_topology(path)
    lab = Lab(topology, LabPaths.of(topology.name))
    if topology.name in running_labs():
        Lab.open(topology.name).down()  # left over by an interrupted run
    lab.up(path, ssl=ssl)
    try:
        yield lab
    finally:
        lab.down()


def build_lab_from_text(folder: Path, text: str, ssl: bool = False) -> Iterator[Lab]:
    """A lab from a topology written in the test itself (kept in `folder`)."""
    path = folder / "topology.yaml"
    path.write_text(text)
    yield from build_lab(path, ssl)


def two_racks(name: str) -> str:
    """The head of a small topology: two segments, a host in each, tenant blue's network
    web; the test adds its `vms:`."""
    return f"""\
name: {name}
segments:
  rack1: {{subnet: 100.64.1.0/24}}
  rack2: {{subnet: 100.64.2.0/24}}
hosts:
  hv1: {{segment: rack1}}
  hv2: {{segment: rack2}}
tenants:
  blue:
    networks:
      web: {{subnet: 10.0.0.0/24}}
"""
