"""lab up is all-or-nothing; lab down removes exactly what the lab made, also after a crash."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.guest import NetnsGuest
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import running_in
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import entering
from sdnvirt.model.loader import load_topology

from helpers.guests import nic, ping, wait_until
from helpers.labs import build_lab
from helpers.leftovers import LabTraces, lab_traces, remove_lab_leftovers, still_running

TOPOLOGIES = Path(__file__).parent / "topologies"
SMALL = TOPOLOGIES / "small.yaml"
SDNVIRT = [str(Path(sys.executable).parent / "sdnvirt")]


def lab_namespaces(name: str) -> list[str]:
    return [ns for ns in netns.netns.listnetns() if ns.startswith(f"{name}-")]


def test_a_failure_part_way_removes_everything_made(monkeypatch):
    topology = load_topology(SMALL)
    lab = Lab(topology, LabPaths.of(topology.name))
    seen: list[LabTraces] = []
    build = NetnsGuest.build

    def fail_on_second_guest(guest, record):
        if guest.guest.name == "a2":
            seen.append(lab_traces(topology.name))
            raise OSError("injected failure while plugging a2")
        build(guest, record)

    monkeypatch.setattr(NetnsGuest, "build", fail_on_second_guest)
    with pytest.raises(LabError, match="injected failure while plugging a2"):
        lab.up(SMALL)
    # 2 x (ovsdb-server, ovs-vswitchd), the northbound ovsdb-server and the controller had started
    assert len(seen[0].processes) == 6, seen[0]
    assert lab_traces(topology.name, set(seen[0].namespaces.values())).nothing
    assert still_running(seen[0].processes) == []


KILL_POINTS = 12
UP_TIMEOUT = 120
REDONE_AT_MOST = 6  # kill points redone because lab up had already finished (it ran faster than measured)


def test_lab_up_killed_at_any_point_leaves_nothing_after_down():
    """`lab up` killed (SIGKILL) at 12 moments spread over a whole run of it, from the moment its
    folder appears to its end; after `lab down` nothing of the lab is left: no namespace, no
    folder, no process started for it."""
    name = load_topology(SMALL).name
    span = run_lab_up(name, kill_after=None)
    take_down_and_check(name, "after a whole lab up")
    killed: list[tuple[float, str]] = []  # when (after the folder appeared) and what the lab had made by then
    redone = 0
    try:
        while len(killed) < KILL_POINTS:
            at = span * len(killed) / KILL_POINTS
            finished = run_lab_up(name, kill_after=at)
            if finished is None:
                killed.append((at, made_so_far(name)))
            else:  # it ran faster than before: kill this point again, on the shorter run
                redone += 1
                assert redone <= REDONE_AT_MOST, f"lab up took {finished:.2f}s, then {span:.2f}s"
                span = finished
            take_down_and_check(name, f"lab up killed {at:.2f}s after its folder appeared")
    finally:
        remove_lab_leftovers(name)
    print(f"lab up ran {span:.1f}s after making its folder; killed after: "
          + ", ".join(f"{at:.2f}s ({made})" for at, made in killed))
    assert {"hosts", "controller"} <= {made for _, made in killed}, killed


def run_lab_up(name: str, kill_after: float | None) -> float | None:
    """Run `lab up`, and SIGKILL it `kill_after` seconds after its folder appeared; how long it
    ran after that if it ended by itself first (None when it was killed)."""
    folder = LabPaths.of(name).root
    with tempfile.TemporaryFile("w+") as errors:
        up = subprocess.Popen([*SDNVIRT, "lab", "up", str(SMALL)], stdout=subprocess.DEVNULL, stderr=errors)
        try:
            wait_until(lambda: folder.exists() or up.poll() is not None, timeout=60, interval=0.002)
            made = time.monotonic()
            up.wait(timeout=UP_TIMEOUT if kill_after is None else kill_after)
        except subprocess.TimeoutExpired:
            assert kill_after is not None, f"lab up did not end within {UP_TIMEOUT}s"
            return None
        finally:
            up.kill()
            up.wait(timeout=10)
        errors.seek(0)
        assert up.returncode == 0, errors.read()
        return time.monotonic() - made


def test_down_after_lab_up_was_killed_between_starting_a_daemon_and_recording_it():
    """As a fresh-check run saw: `lab up` killed after it started hv2's ovs-vswitchd and before
    it recorded it; `lab down` stops it too (it runs in a namespace of the lab)."""
    name = load_topology(SMALL).name
    paths = LabPaths.of(name)
    pidfile = paths.host("hv2").vswitchd_pidfile
    up = subprocess.Popen([*SDNVIRT, "lab", "up", str(SMALL)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_until(pidfile.exists, timeout=60, interval=0.001)
        up.kill()
        up.wait(timeout=10)
        assert "hv2/ovs-vswitchd" not in [p.name for p in LabRecord.load(paths.record).processes]
        assert any("hv2/ovs/ovs-vswitchd.pid" in cmdline for _, cmdline in lab_traces(name).processes.values())
        take_down_and_check(name, "lab up killed while ovs-vswitchd started")
    finally:
        up.kill()
        up.wait(timeout=10)
        remove_lab_leftovers(name)


def made_so_far(name: str) -> str:
    paths = LabPaths.of(name)
    if not paths.record.exists():
        return "nothing"
    record = LabRecord.load(paths.record)
    if record.complete:
        return "all"
    return "controller" if any(p.name == "controller" for p in record.processes) else "hosts"


def take_down_and_check(name: str, when: str) -> None:
    before = lab_traces(name)
    if before.folder:
        down = subprocess.run([*SDNVIRT, "lab", "down", name], capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, f"{when}: {down.stderr}"
        assert "Traceback" not in down.stderr
    after = lab_traces(name, set(before.namespaces.values()))
    assert after.nothing, f"{when}, left: {after}"
    assert still_running(before.processes) == [], when


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_lab_up_stopped_part_way_removes_what_it_made(stop):
    """Ctrl-C in a terminal, or `timeout`'s SIGTERM, once the controller runs: sent to the whole
    process group, as those do, so that helpers `lab up` forked get it too. `lab up` removes
    all it made, with no `lab down`, and exits 130."""
    name = load_topology(SMALL).name
    record = LabPaths.of(name).record
    up = subprocess.Popen([*SDNVIRT, "lab", "up", str(SMALL)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, start_new_session=True)
    try:
        wait_until(lambda: record.exists() and "controller" in [p.name for p in LabRecord.load(record).processes],
                   timeout=60, interval=0.01)
        before = lab_traces(name)
        os.killpg(up.pid, stop)
        _, errors = up.communicate(timeout=60)
        assert up.returncode == 130, errors
        assert "Traceback" not in errors
        assert lab_traces(name, set(before.namespaces.values())).nothing
        assert still_running(before.processes) == []
    finally:
        up.kill()
        up.communicate(timeout=10)
        remove_lab_leftovers(name)


def test_down_of_a_folder_without_a_record():
    """`lab up` killed between making the lab's folder and its first record: `lab up` says how
    to remove it, and `lab down` does."""
    name = load_topology(SMALL).name
    paths = LabPaths.of(name)
    paths.root.mkdir(parents=True)
    try:
        shutil.copyfile(SMALL, paths.topology)
        refused = subprocess.run([*SDNVIRT, "lab", "up", str(SMALL)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1
        assert f"`sdnvirt lab down {name}` removes it" in refused.stderr
        down = subprocess.run([*SDNVIRT, "lab", "down", name], capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert lab_traces(name).nothing
    finally:
        shutil.rmtree(paths.root, ignore_errors=True)


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


def test_the_lab_finds_what_runs_in_its_namespaces_and_never_in_the_machines_own():
    """`lab down` stops what runs in the namespaces the lab recorded; a recorded name bound to the
    machine's own network namespace (which no lab makes) must not make it stop anything there."""
    made, machines = "itest-finds-inside", "itest-is-the-machines"
    netns.make(made)
    inside = subprocess.Popen([*entering(made), "sleep", "60"])
    try:
        netns.netns.attach(machines, os.getpid())  # this test runs in the machine's namespace
        wait_until(lambda: os.readlink(f"/proc/{inside.pid}/ns/net") != os.readlink("/proc/self/ns/net"))
        identities = lab_netns.identities([made, machines])
        assert list(identities) == [made]
        assert [p.pid for p in running_in(set(identities.values()))] == [inside.pid]
    finally:
        inside.kill()
        inside.wait(timeout=10)
        netns.remove(made)
        netns.remove(machines)
