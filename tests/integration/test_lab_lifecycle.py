"""lab up is all-or-nothing; lab down removes exactly what the lab made, also after a crash."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sdnvirt.lab.guest import NetnsGuest
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import start_time
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.model.loader import load_topology

from helpers.guests import nic, ping, wait_until
from helpers.labs import build_lab

TOPOLOGIES = Path(__file__).parent / "topologies"
SMALL = TOPOLOGIES / "small.yaml"
SDNVIRT = [str(Path(sys.executable).parent / "sdnvirt")]


def lab_namespaces(name: str) -> list[str]:
    return [ns for ns in netns.netns.listnetns() if ns.startswith(f"{name}-")]


def assert_nothing_left(name: str, pids: list[tuple[int, int]]) -> None:
    assert lab_namespaces(name) == []
    assert not LabPaths.of(name).root.exists()
    assert [pid for pid, began in pids if start_time(pid) == began] == []


def test_a_failure_part_way_removes_everything_made(monkeypatch):
    topology = load_topology(SMALL)
    lab = Lab(topology, LabPaths.of(topology.name))
    seen: list[tuple[int, int]] = []
    build = NetnsGuest.build

    def fail_on_second_guest(guest, record):
        seen.extend((p.pid, p.start_time) for p in record.processes)
        if guest.guest.name == "a2":
            raise OSError("injected failure while plugging a2")
        build(guest, record)

    monkeypatch.setattr(NetnsGuest, "build", fail_on_second_guest)
    with pytest.raises(LabError, match="injected failure while plugging a2"):
        lab.up(SMALL)
    assert len(seen) >= 5  # 2 x (ovsdb-server, ovs-vswitchd) + the controller had started
    assert_nothing_left(topology.name, seen)


def test_down_after_lab_up_was_killed_part_way():
    name = load_topology(SMALL).name
    record_path = LabPaths.of(name).record
    up = subprocess.Popen([*SDNVIRT, "lab", "up", str(SMALL)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it once it has started some daemons but before it finishes.
    wait_until(lambda: record_path.exists() and len(LabRecord.load(record_path).processes) >= 3, timeout=30,
               interval=0.01)
    os.kill(up.pid, signal.SIGKILL)
    up.wait(timeout=10)
    record = LabRecord.load(record_path)
    assert not record.complete
    started = [(p.pid, p.start_time) for p in record.processes]
    down = subprocess.run([*SDNVIRT, "lab", "down", name], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(name, started)


def test_two_labs_side_by_side(fabric_lab):
    """A second lab with the same addresses runs beside the first; removing it leaves the first alone."""
    second = build_lab(SMALL)
    small = next(second)
    try:
        assert ping(small, "a1", str(nic(small, "a2").ip)) == 3
        assert ping(fabric_lab, "a1", str(nic(fabric_lab, "a4").ip)) == 3
    finally:
        next(second, None)
    assert lab_namespaces(small.name) == []
    assert ping(fabric_lab, "a1", str(nic(fabric_lab, "a4").ip)) == 3
    assert fabric_lab.api().status()["converged"]


def test_up_twice_is_refused_and_changes_nothing(fabric_lab):
    before = sorted(lab_namespaces(fabric_lab.name))
    again = subprocess.run([*SDNVIRT, "lab", "up", str(TOPOLOGIES / "fabric.yaml")], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 1
    assert "already up" in again.stderr and "Traceback" not in again.stderr
    assert sorted(lab_namespaces(fabric_lab.name)) == before
    assert fabric_lab.api().status()["converged"]


def test_down_stops_only_recorded_pids(tmp_path):
    """An ovsdb-server the lab did not start survives its lab down (nothing is killed by name)."""
    db, sock = tmp_path / "decoy.db", tmp_path / "decoy.sock"
    subprocess.run(["ovsdb-tool", "create", str(db), "/usr/share/openvswitch/vswitch.ovsschema"], check=True)
    decoy = subprocess.Popen(["ovsdb-server", str(db), f"--remote=punix:{sock}", "--no-chdir",
                              f"--unixctl={tmp_path / 'decoy.ctl'}", f"--pidfile={tmp_path / 'decoy.pid'}"])
    try:
        lab = build_lab(SMALL)
        next(lab)
        next(lab, None)
        assert decoy.poll() is None
    finally:
        decoy.terminate()
        decoy.wait(timeout=10)
