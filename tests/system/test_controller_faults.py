"""The controller crashes (SIGKILL) while libvirt migrates a real VM: the migration must still
end, completed or rolled back, with the VM running on one host and reachable there."""

from __future__ import annotations

import pytest

from helpers.guests import nic, ping, vm_ping, wait_until
from helpers.labs import build_lab
from helpers.migrations import copying, slow_copy, wait_for_state

# One VM that moves between segments, a guest in each segment to reach it from.
TOPOLOGY = """\
name: sysflt
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24}
hosts:
  hv1: {segment: rack1}
  hv2: {segment: rack2}
tenants:
  blue:
    networks:
      web: {subnet: 10.0.0.0/24}
vms:
  vm1: {host: hv1, kind: qemu, memory: 128, nics: [{network: blue/web, ip: 10.0.0.11}]}
  near: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.2}]}
  far: {host: hv2, nics: [{network: blue/web, ip: 10.0.0.3}]}
"""
MIGRATION_LIMIT = 120.0  # seconds for the migration to end, the controller's restart included


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "sysflt.yaml"
    path.write_text(TOPOLOGY)
    yield from build_lab(path)


def test_a_controller_killed_during_a_live_migration_still_ends_it(lab):
    """libvirt goes on with a peer-to-peer migration whose caller died: the one right end is
    `completed`, found by the restarted controller from libvirt's job and where the VM runs."""
    with slow_copy(lab, "hv1", "vm1"):
        migration = lab.api().migrate("vm1", "hv2")
        wait_for_state(lab, migration["id"], "copying")
        lab.stop_process("controller", kill=True)
        assert copying(lab, "hv1", "vm1")  # the kill came mid-migration
        lab.start_process("controller")
        report = lab.api().migration(migration["id"], wait=MIGRATION_LIMIT)

    print(f"\nmigration after a controller SIGKILL: {report['result']} ({report['error']})")
    assert report["result"] == "completed", report
    assert "copying" in [step["state"] for step in report["timeline"]]
    vm = lab.api().vm("vm1")
    assert (vm["host"], vm["state"]) == ("hv2", "running"), (vm, report)
    lab.wait_converged()  # every bridge in sync, the VM's port bound once
    vm1 = str(nic(lab, "vm1").ip)
    assert wait_until(lambda: ping(lab, "far", vm1, count=1) == 1, timeout=30)
    assert ping(lab, "near", vm1) == 3
    assert vm_ping(lab, "vm1", str(nic(lab, "far").ip)) == 3
