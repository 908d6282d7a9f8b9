"""A real lab for the integration tests: real OVS, the real controller, real namespaces.

One lab per test module; it is removed when the module ends, also when a
test fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.labs import build_lab

TOPOLOGIES = Path(__file__).parent / "topologies"


@pytest.fixture(scope="module")
def fabric_lab():
    yield from build_lab(TOPOLOGIES / "fabric.yaml")
