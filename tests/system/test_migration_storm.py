"""A migration storm: fifty namespace guests of two tenants move between hosts all at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sdnvirt.lab.migration_probe import migrate
from sdnvirt.lab.reachability import format_matrix, measure

from helpers.labs import build_lab

TOPOLOGIES = Path(__file__).parent / "topologies"
NEXT_HOST = {"hv1": "hv3", "hv2": "hv1", "hv3": "hv2"}  # a third of the moves cross the router


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(TOPOLOGIES / "storm.yaml")


def test_fifty_guests_migrate_at_once_and_every_network_still_holds(lab):
    moves = {name: NEXT_HOST[guest.host] for name, guest in lab.topology.guests.items()}
    assert len(moves) == 50
    with ThreadPoolExecutor(max_workers=len(moves)) as pool:
        reports = dict(zip(moves, pool.map(lambda move: migrate(lab, *move), moves.items()), strict=True))
    assert {name: r["result"] for name, r in reports.items()} == dict.fromkeys(moves, "completed")
    placed = {vm["name"]: vm["host"] for vm in lab.api().vms()}
    assert placed == moves
    lab.wait_converged()
    # Each guest probes the eight of its network that follow it and eight of the other's: every
    # host's guests of a network between them still probe each guest of it, wherever it went.
    cells = measure(lab, peers=8)
    assert len(cells) == 50 * 16
    probed = {(placed[c.source.guest], c.target.guest) for c in cells if c.expected}
    assert probed == {(host, target) for host in set(placed.values()) for target in moves}, probed
    assert not [c for c in cells if not c.ok], format_matrix(cells)
