"""Live migration of real VMs across segments, with a probe, on the controller's fabric."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether

from sdnvirt.client.api import ApiError
from sdnvirt.controller.fabric.cookies import owner_cookie
from sdnvirt.controller.fabric.sync import STAGED_FRESH
from sdnvirt.lab.migration_probe import migrate

from helpers.accounts import accounted, assert_counters_went_on
from helpers.guests import listen, nic, on_guest, ping, vm_ping, wait_until
from helpers.labs import build_lab
from helpers.migrations import (
    assert_the_flight_recorded_it,
    assert_the_wire_saw_only_the_pause,
    copying,
    migrate_beside_a_still_guest,
    slow_copy,
    wait_for_state,
)

TOPOLOGIES = Path(__file__).parent / "topologies"
LONG_COPY = 5  # MiB/s: the guest (about 80 MiB of its memory written) copies for about 16 s
BUNDLE_IDLE = 10.0  # seconds Open vSwitch keeps a bundle no message touches


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(TOPOLOGIES / "migration.yaml")


def where(lab, vm: str) -> tuple[str, str]:
    state = lab.api().vm(vm)
    return state["host"], state["state"]


def across_the_router(lab, guest: str) -> str:
    """A host in another segment than the guest's now (the tests run in any order: each starts
    from wherever the one before left the guests)."""
    here = lab.topology.hosts[where(lab, guest)[0]].segment
    return next(name for name, host in sorted(lab.topology.hosts.items()) if host.segment != here)


def port_flows(lab, host: str, vm: str, index: int = 0) -> list[str]:
    owner = owner_cookie(("port", lab.topology.guests[vm].nics[index].port_id))
    dump = lab.hosts()[host].openvswitch.ofctl("dump-flows", "br-int", f"cookie={owner:#x}/-1")
    return [line for line in dump.splitlines() if "actions=" in line]


def old_port_traces(lab, host: str, vm: str, ofport: int) -> list[str]:
    """Flows on the host's bridge that still name the VM's old port there."""
    return [line for line in port_flows(lab, host, vm) if f"in_port={ofport}," in line or f"output:{ofport}" in line]


def ofport_of(lab, host: str, vm: str) -> int:
    [line] = [f for f in port_flows(lab, host, vm) if "table=0," in f]
    return int(line.split("in_port=")[1].split()[0].rstrip(","))


def test_live_migration_across_segments_and_back_under_a_probe(lab):
    vm1 = nic(lab, "vm1")
    home = where(lab, "vm1")[0]
    away = across_the_router(lab, "vm1")
    for source, destination in ((home, away), (away, home)):
        old_ofport = ofport_of(lab, source, "vm1")
        [watch] = listen(on_guest(lab, "watcher", "arp"))
        report = migrate(lab, "vm1", destination, probe="prober", capture=destination == away)
        garps = [Ether(f)[ARP] for f in watch.frames()]

        assert report["result"] == "completed", report
        assert (report["from"], report["to"]) == (source, destination)
        assert where(lab, "vm1") == (destination, "running")
        assert report["hypervisor_downtime_ms"] > 0 and report["total_ms"] > report["hypervisor_downtime_ms"]
        assert report["trigger"] in ("qemu-stopped", "source-paused")  # the pause itself switched the fabric
        # the network adds nothing: every bridge points at the destination before the VM runs there
        assert report["switchover_after_resume_ms"] <= 5.0, report
        assert_the_wire_saw_only_the_pause(report)
        assert_the_flight_recorded_it(lab, report)
        # a third guest of the network hears where vm1 is now
        assert any(g.op == 1 and g.psrc == g.pdst == str(vm1.ip) and g.hwsrc == str(vm1.mac) for g in garps)
        assert ping(lab, "prober", str(vm1.ip)) == 3 and ping(lab, "watcher", str(vm1.ip)) == 3
        wait_until(lambda s=source, o=old_ofport: not old_port_traces(lab, s, "vm1", o), timeout=10)


def test_a_copy_that_outlasts_a_staged_bundle_still_switches_over_with_one_commit_per_bridge(lab):
    """Open vSwitch drops a bundle left idle for 10 s, and the controller commits none older than
    STAGED_FRESH: a copy that lasts longer has its switch-over staged again while it runs."""
    source, _ = where(lab, "vm1")
    destination = across_the_router(lab, "vm1")
    with slow_copy(lab, source, "vm1", LONG_COPY):
        report = migrate(lab, "vm1", destination)
    # longer than a bundle staged at the start could have lived, let alone been committed
    assert report["result"] == "completed" and report["total_ms"] > BUNDLE_IDLE * 1000 > STAGED_FRESH * 1000, report
    timeline = lab.api().migration_timeline(report["id"])["timeline"]
    [started] = [e for e in timeline if (e["by"], e["event"], e["host"]) == ("controller", "switch-over", destination)]
    sent = [e for e in timeline if (e["by"], e["event"]) == ("controller", "sent") and e["at"] >= started["at"]]
    assert {source, destination} <= {e["host"] for e in sent}, timeline
    assert all(e["detail"].endswith(", staged") for e in sent), sent
    assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3


def start_libvirtd(lab, host: str) -> None:
    """Start a host's libvirtd again, and wait until the controller is connected to it."""
    lab.start_process(f"{host}/libvirtd")
    wait_until(lambda: lab.api().status()["hosts"][host]["libvirt_connected"], timeout=30)


def test_a_migration_to_a_host_whose_libvirtd_is_down_is_refused_and_the_vm_stays(lab):
    source, _ = where(lab, "vm1")
    destination = "hv2" if source != "hv2" else "hv1"
    before = lab.api().migrations()
    lab.stop_process(f"{destination}/libvirtd")
    try:
        wait_until(lambda: not lab.api().status()["hosts"][destination]["libvirt_connected"], timeout=30)
        with pytest.raises(ApiError) as refused:
            lab.api().migrate("vm1", destination)
    finally:
        start_libvirtd(lab, destination)
    assert refused.value.status == 503 and f"host {destination}'s libvirtd" in str(refused.value)
    assert lab.api().migrations() == before  # nothing was started
    assert where(lab, "vm1") == (source, "running")
    assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3
    assert ofport_absent(lab, destination, "vm1")


def ofport_absent(lab, host: str, vm: str) -> bool:
    """The VM has no local port on the host (only flows that point elsewhere)."""
    return not [f for f in port_flows(lab, host, vm) if "table=0," in f]


def test_a_destination_that_dies_mid_way_leaves_the_vm_running_where_it_was(lab):
    source, _ = where(lab, "vm1")
    destination = "hv3" if source != "hv3" else "hv2"
    with slow_copy(lab, source, "vm1"):
        migration = lab.api().migrate("vm1", destination)
        wait_for_state(lab, migration["id"], "copying")  # the destination port is programmed, memory goes over
        try:
            assert copying(lab, source, "vm1")  # the destination dies mid-way (its loss ends the job at once)
            lab.stop_process(f"{destination}/libvirtd", kill=True)
            report = lab.api().migration(migration["id"], wait=120)
            assert report["result"] == "failed", report
            assert report["fabric_at"] is None  # it never switched
            assert where(lab, "vm1") == (source, "running")
            assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3
        finally:
            start_libvirtd(lab, destination)
    # the destination's libvirtd cleans up its half-made copy; its port and flows go with it
    wait_until(lambda: ofport_absent(lab, destination, "vm1"), timeout=30)
    assert lab.api().status()["converged"]


def test_cancel_leaves_the_vm_on_the_source(lab):
    source, _ = where(lab, "vm1")
    destination = "hv3" if source != "hv3" else "hv2"
    api = lab.api()
    with slow_copy(lab, source, "vm1"):
        migration = api.migrate("vm1", destination)
        wait_for_state(lab, migration["id"], "copying")
        assert copying(lab, source, "vm1")  # cancelled while libvirt copies
        report = api.cancel_migration(migration["id"])
    assert report["result"] == "cancelled", report
    assert [step["state"] for step in report["timeline"]] == [
        "requested", "preparing", "copying", "cancelling", "cancelled"]
    assert api.cancel_migration(migration["id"]) == report  # asked again: the same answer, nothing more
    assert where(lab, "vm1") == (source, "running")
    wait_until(lambda: ofport_absent(lab, destination, "vm1"), timeout=30)
    assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3


def test_a_vm_with_nics_in_two_networks_migrates_with_both(lab):
    source, destination = where(lab, "multi")[0], across_the_router(lab, "multi")
    report = migrate(lab, "multi", destination, probe="prober")
    assert report["result"] == "completed" and where(lab, "multi") == (destination, "running")
    assert_the_wire_saw_only_the_pause(report)
    web, db = lab.topology.guests["multi"].nics
    assert ping(lab, "prober", str(web.ip)) == 3
    assert ping(lab, "dbclient", str(db.ip)) == 3
    assert ofport_absent(lab, source, "multi")


def test_two_migrations_at_once(lab):
    moves = {"vm1": "hv2" if where(lab, "vm1")[0] != "hv2" else "hv1",
             "multi": "hv1" if where(lab, "multi")[0] != "hv1" else "hv2"}
    reports: dict = {}
    movers = [threading.Thread(target=lambda vm=vm, to=to: reports.update({vm: migrate(lab, vm, to)}))
              for vm, to in moves.items()]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join(timeout=180)
    assert {vm: r["result"] for vm, r in reports.items()} == {"vm1": "completed", "multi": "completed"}
    for vm, to in moves.items():
        assert where(lab, vm) == (to, "running")
    assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3
    assert vm_ping(lab, "multi", str(nic(lab, "dbclient").ip)) == 3


def test_a_migration_while_the_controller_restarts_ends_with_every_binding_right(lab):
    source, _ = where(lab, "vm1")
    destination = "hv3" if source != "hv3" else "hv1"
    with slow_copy(lab, source, "vm1"):
        migration = lab.api().migrate("vm1", destination)
        wait_for_state(lab, migration["id"], "copying")
        assert copying(lab, source, "vm1")  # libvirt copies memory, peer to peer, while the controller goes away
        lab.restart_process("controller")
        wait_until(lambda: where(lab, "vm1") == (destination, "running"), timeout=60)
    # the restarted controller reads the migration back and ends it the way libvirt did
    assert wait_until(lambda: lab.api().migration(migration["id"])["result"], timeout=60) == "completed"
    lab.wait_converged()
    wait_until(lambda: ofport_absent(lab, source, "vm1"), timeout=30)
    assert ping(lab, "prober", str(nic(lab, "vm1").ip)) == 3
    assert vm_ping(lab, "vm1", str(nic(lab, "watcher").ip)) == 3


def test_offline_migration_moves_a_stopped_copy_and_starts_it(lab):
    source, _ = where(lab, "vm1")
    destination = "hv3" if source != "hv3" else "hv1"
    before = accounted(lab, "vm1")
    report = migrate(lab, "vm1", destination, offline=True)
    assert report["result"] == "completed" and report["kind"] == "offline"
    assert where(lab, "vm1") == (destination, "running")
    lab.wait_for_agents(["vm1"])
    assert wait_until(lambda: ping(lab, "prober", str(nic(lab, "vm1").ip), count=1) == 1, timeout=30)
    after = accounted(lab, "vm1")
    assert_counters_went_on(before, after)
    arrived = before["by_host"].get(destination, {}).get("received_packets", 0)
    assert after["by_host"][destination]["received_packets"] > arrived  # the pings, counted where it runs now


def test_a_netns_guest_migrates_the_same_way(lab):
    watcher = nic(lab, "watcher")
    destination = across_the_router(lab, "watcher")
    report, baseline = migrate_beside_a_still_guest(lab, "watcher", destination, probe="prober", still="still",
                                                    capture=True)
    assert report["result"] == "completed" and report["kind"] == "netns", report
    assert report["trigger"] == "netns-move"
    assert_the_wire_saw_only_the_pause(report, baseline)
    timeline = assert_the_flight_recorded_it(lab, report)
    # its downtime runs from the switch-over's start, which comes before its links went down
    assert report["hypervisor_downtime_ms"] >= timeline["pause_ms"] > 0, (report, timeline)
    assert lab.api().vm("watcher")["host"] == destination
    assert ping(lab, "prober", str(watcher.ip)) == 3
    assert vm_ping(lab, "vm1", str(watcher.ip)) == 3
