"""A lab with real VMs: each host's libvirtd, QEMU guests (TCG), and namespace guests beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.labs import build_lab

TOPOLOGIES = Path(__file__).parent / "topologies"


@pytest.fixture(scope="module")
def vm_lab():
    yield from build_lab(TOPOLOGIES / "vms.yaml")
