"""TCP and UDP between real VMs and namespace guests, intact on every path, also while a VM
moves live across segments."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sdnvirt.lab.traffic import TcpStream, udp_exchange

from helpers.accounts import accounted
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
DATAGRAMS, DATAGRAM_SIZE = 4000, 1000
FLOWING_DATAGRAMS = 200  # the exchange runs before the VM moves
OTHER_FRAMES = 40  # what the VM sends and receives besides the datagrams (ARP, QEMU's RARPs)
FRAMING = 42  # Ethernet, IPv4 and UDP headers


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


def scraped(lab, vm: str, metric: str) -> dict[str, float]:
    """A VM's series of one metric in /metrics, by host."""
    page = lab.api().metrics()
    return {s.labels["host"]: s.value for family in text_string_to_metric_families(page)
            for s in family.samples if s.name == metric and s.labels["vm"] == vm}


def test_a_vms_counters_go_on_across_a_live_migration_and_a_controller_kill(lab):
    """ns2 exchanges datagrams with vm4 while vm4 moves from rack2 to rack1: every datagram vm4 echoed
    was counted once, on the host where it arrived, the figures on the old host stay, /metrics says
    what /counters says, and a controller killed and restarted goes on from the same figures."""
    home = lab.api().vm("vm4")["host"]
    before = accounted(lab, "vm4")
    try:
        with ThreadPoolExecutor(1) as pool:
            exchange = pool.submit(udp_exchange, lab, "ns2", "vm4", DATAGRAMS, DATAGRAM_SIZE, 200)
            start = before["counters"]["received_packets"]
            wait_until(lambda: accounted(lab, "vm4")["counters"]["received_packets"] >= start + FLOWING_DATAGRAMS,
                       timeout=20)
            report = lab.api().migration(lab.api().migrate("vm4", "hv1")["id"], wait=MIGRATION_WAIT)
            assert report["result"] == "completed", report
            result = exchange.result(timeout=120)
        after = accounted(lab, "vm4")

        def grew(counter: str, host: str | None = None) -> int:
            now, then = (after, before) if host is None else (after["by_host"][host], before["by_host"].get(host, {}))
            return (now if host else now["counters"])[counter] - (then if host else then["counters"]).get(counter, 0)

        assert result.echoed > DATAGRAMS * 0.99, result
        assert result.echoed <= grew("received_packets") <= result.sent + OTHER_FRAMES
        assert result.echoed <= grew("sent_packets") <= result.echoed + OTHER_FRAMES
        assert grew("received_bytes") >= result.echoed * (DATAGRAM_SIZE + FRAMING)
        assert grew("received_packets", home) >= FLOWING_DATAGRAMS  # counted where it arrived: both hosts
        assert grew("received_packets", "hv1") > 0
        assert after["host"] == "hv1"
        series = scraped(lab, "vm4", "sdnvirt_port_received_packets_total")
        assert series[home] == after["by_host"][home]["received_packets"]
        assert after["counters"]["received_packets"] <= sum(series.values()) <= after["counters"]["received_packets"] \
            + OTHER_FRAMES

        lab.restart_process("controller", kill=True)
        wait_until(lambda: lab.api().status()["converged"], timeout=30)
        again = accounted(lab, "vm4")
        assert again["by_host"][home] == after["by_host"][home]  # what ended there is remembered
        assert after["counters"]["received_packets"] <= again["counters"]["received_packets"] \
            <= after["counters"]["received_packets"] + OTHER_FRAMES
    finally:
        if lab.api().vm("vm4")["host"] != home:
            lab.api().migration(lab.api().migrate("vm4", home)["id"], wait=MIGRATION_WAIT)
