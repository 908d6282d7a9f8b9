"""`lab down` of a lab with a VM whose host's libvirtd hangs (SIGSTOP) or is gone (SIGKILL):
QEMU outlives libvirtd, and libvirt's client would wait for ever on a stopped libvirtd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sdnvirt.lab.lab import Lab
from sdnvirt.lab.libvirtd import ANSWER_TIMEOUT, stop_domains
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import is_running, start_time
from sdnvirt.lab.record import LabRecord, ProcessRecord
from sdnvirt.model.loader import load_topology

from helpers.leftovers import lab_traces, remove_lab_leftovers, still_running

DOWN = Path(__file__).parent / "topologies" / "down.yaml"
SDNVIRT = [str(Path(sys.executable).parent / "sdnvirt")]
QEMU_STOP_TIMEOUT = 30  # stop_domains' own bound for stopping a host's VMs


@pytest.fixture
def vm_lab():
    topology = load_topology(DOWN)
    lab = Lab(topology, LabPaths.of(topology.name))
    remove_lab_leftovers(lab.name)  # of an interrupted run
    lab.up(DOWN)
    try:
        yield lab
    finally:
        remove_lab_leftovers(lab.name)


def libvirtd_and_qemu(lab: Lab) -> tuple[ProcessRecord, ProcessRecord]:
    libvirtd = next(p for p in LabRecord.load(lab.paths.record).processes if p.name == "hv1/libvirtd")
    pidfile = lab.paths.host("hv1").libvirt / "run" / "qemu" / "vm1.pid"
    pid = int(pidfile.read_text())
    qemu = ProcessRecord("qemu vm1", pid, start_time(pid))
    assert is_running(libvirtd) and is_running(qemu)
    return libvirtd, qemu


def test_lab_down_stops_qemu_that_outlived_libvirtd(vm_lab):
    libvirtd, qemu = libvirtd_and_qemu(vm_lab)
    os.kill(libvirtd.pid, signal.SIGKILL)
    assert_lab_down_leaves_nothing(vm_lab, qemu)


def test_a_stopped_libvirtd_holds_up_neither_stop_domains_nor_lab_down(vm_lab):
    """stop_domains (as `lab apply` uses it when it removes a host) stops the VMs by pid when
    libvirtd does not answer, and `lab down` stops libvirtd too."""
    libvirtd, qemu = libvirtd_and_qemu(vm_lab)
    os.kill(libvirtd.pid, signal.SIGSTOP)
    stopping = threading.Thread(target=stop_domains, args=(vm_lab.hosts()["hv1"].libvirtd,), daemon=True)
    stopping.start()
    stopping.join(timeout=ANSWER_TIMEOUT + QEMU_STOP_TIMEOUT)
    assert not stopping.is_alive(), "stop_domains waits for a libvirtd that does not answer"
    assert not is_running(qemu)
    assert is_running(libvirtd)
    assert_lab_down_leaves_nothing(vm_lab, libvirtd)


def assert_lab_down_leaves_nothing(lab: Lab, running: ProcessRecord) -> None:
    """`sdnvirt lab down`, and then nothing of the lab is left; `running`: a process of it that runs before."""
    before = lab_traces(lab.name)
    assert before.processes[running.pid][0] == running.start_time
    down = subprocess.run([*SDNVIRT, "lab", "down", lab.name], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert lab_traces(lab.name, set(before.namespaces.values())).nothing
    assert still_running(before.processes) == []
