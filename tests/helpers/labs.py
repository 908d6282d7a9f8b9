"""Labs for the tests: built from a topology file (or its text), always removed again.

With SDNVIRT_KEEP_LOGS=FOLDER every lab's logs (the controller's, each host's OVS and
libvirtd logs) are copied there before it goes, to study a failure after the fact.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from sdnvirt.lab.lab import Lab, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.model.loader import load_topology

KEEP_LOGS = "SDNVIRT_KEEP_LOGS"


def build_lab(path: Path, ssl: bool = False) -> Iterator[Lab]:
    topology = load_topology(path)
    lab = Lab(topology, LabPaths.of(topology.name))
    if topology.name in running_labs():
        Lab.open(topology.name).down()  # left over by an interrupted run
    lab.up(path, ssl=ssl)
    try:
        yield lab
    finally:
        _keep_logs(lab)
        lab.down()


def build_lab_from_text(text: str, folder: Path, ssl: bool = False) -> Iterator[Lab]:
    """A lab of a topology given as text (written to `folder`, a test's temporary folder)."""
    path = folder / "topology.yaml"
    path.write_text(text)
    yield from build_lab(path, ssl=ssl)


def _keep_logs(lab: Lab) -> None:
    keep = os.environ.get(KEEP_LOGS)
    if not keep:
        return
    target = Path(keep) / f"{lab.name}-{time.strftime('%H%M%S')}"
    logs = [lab.paths.controller_log, *lab.paths.root.glob("hosts/*/log/*")]
    for log in logs:
        if log.is_file():
            destination = target / log.relative_to(lab.paths.root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, destination)
