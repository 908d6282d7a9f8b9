"""TCP and UDP between real VMs and namespace guests, intact on every path, also while a VM
moves live across segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdnvirt.lab.traffic import TcpStream

from helpers.guests import wait_until
from helpers.labs import build_lab
from helpers.traffic import assert_tcp_intact_both_ways, assert_udp_intact_both_ways, delivered_bytes

TOPOLOGIES = Path(__file__).parent / "topologies"
# (a VM, a guest, the path between them), each checked both ways
PATHS = [("vm1", "ns1", "VM and netns guest, same host"),
         ("vm1", "ns2", "VM and netns guest, across hosts"),
         ("vm1", "ns3", "VM and netns guest, across segments"),
         ("vm1", "vm2", "two VMs, same host"),
         ("vm1", "vm3", "two VMs, across hosts"),
         ("vm1", "vm4", "two VMs, across segments")]
STREAM_BYTES = 8 * 2**20
STREAM_RATE = 2**20  # bytes a second: the stream lasts 8 s, the migration ~1 s
FLOWING = 2**20  # bytes the VM's port delivers before it moves: the stream runs
MIGRATION_WAIT = 60.0


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(TOPOLOGIES / "traffic.yaml")


@pytest.mark.parametrize("vm,other,path", PATHS)
def test_tcp_carries_10_mib_intact_both_ways(lab, vm, other, path):
    assert_tcp_intact_both_ways(lab, vm, other, path)


@pytest.mark.parametrize("vm,other,path", PATHS)
def test_udp_datagrams_come_back_intact_both_ways(lab, vm, other, path):
    assert_udp_intact_both_ways(lab, vm, other, path)


def test_a_tcp_stream_to_a_vm_goes_on_through_live_migrations_across_segments(lab):
    """ns2 streams to vm4 while it moves from rack2 to rack1 and back: the connection is never
    reset and every byte arrives, part of them before the move, part after it."""
    home = lab.api().vm("vm4")["host"]
    try:
        for source, destination in ((home, "hv1"), ("hv1", home)):
            with TcpStream(lab, "ns2", "vm4", STREAM_BYTES, rate=STREAM_RATE) as stream:
                wait_until(lambda s=source: delivered_bytes(lab, s, "vm4") >= FLOWING, timeout=20)
                migration = lab.api().migrate("vm4", destination)
                report = lab.api().migration(migration["id"], wait=MIGRATION_WAIT)
                assert report["result"] == "completed", report
                result = stream.result()
            assert result.intact, result
            assert result.received.bytes == STREAM_BYTES
            assert lab.api().vm("vm4")["host"] == destination
            assert delivered_bytes(lab, destination, "vm4") >= FLOWING  # the stream went on there
    finally:
        if lab.api().vm("vm4")["host"] != home:
            lab.api().migration(lab.api().migrate("vm4", home)["id"], wait=MIGRATION_WAIT)
