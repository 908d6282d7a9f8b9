"""Stopping a lab's processes by pid and start time, on real child processes (no lab, no root)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sdnvirt.lab.libvirtd import HostLibvirtd, stop_domains
from sdnvirt.lab.paths import HostPaths
from sdnvirt.lab.process import is_running, start_time, stop
from sdnvirt.lab.record import ProcessRecord

# A process that says when it is ready, and leaves a mark when SIGTERM ends it.
TERMINABLE = """
import signal, sys, time
def terminated(*_):
    open(sys.argv[1], "w").write("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, terminated)
print("ready", flush=True)
time.sleep(60)
"""
DEAF = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def started(tmp_path):
    children: list[subprocess.Popen] = []

    def start(script: str) -> tuple[ProcessRecord, Path]:
        mark = tmp_path / f"mark{len(children)}"
        child = subprocess.Popen([sys.executable, "-c", script, str(mark)], stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline() == "ready\n"
        pidfile = tmp_path / f"child{len(children)}.pid"
        pidfile.write_text(f"{child.pid}\n")
        return ProcessRecord("child", child.pid, start_time(child.pid), str(pidfile)), mark

    yield start
    for child in children:
        child.kill()
        child.wait(timeout=10)


def test_a_stopped_process_ends_on_sigterm(started):
    """A stopped process (a hung libvirtd, say) is let go on with its SIGTERM, not left until SIGKILL."""
    process, mark = started(TERMINABLE)
    os.kill(process.pid, signal.SIGSTOP)
    stop(process, timeout=5)
    assert not is_running(process)
    assert mark.read_text() == "SIGTERM"
    assert not Path(process.pidfile).exists()


def test_a_process_deaf_to_sigterm_gets_sigkill(started):
    process, _ = started(DEAF)
    stop(process, timeout=0.5)
    assert not is_running(process)


def test_a_reused_pid_is_left_alone(started):
    """The pid of a process the lab started, now another process's: it gets no signal."""
    process, mark = started(TERMINABLE)
    other = ProcessRecord("an earlier process", process.pid, process.start_time - 1, process.pidfile)
    stop(other, timeout=0.5)
    assert is_running(process)
    assert not mark.exists()


def test_stop_domains_leaves_what_is_not_a_vm_of_this_host(started, tmp_path):
    """With no libvirtd to ask, VMs are stopped by QEMU's pid files: a pid file QEMU is still
    writing, or one whose pid is no QEMU of this host now, makes it stop nothing."""
    process, mark = started(TERMINABLE)
    paths = HostPaths(tmp_path / "hv1")
    pids = paths.libvirt / "run" / "qemu"
    pids.mkdir(parents=True)
    (pids / "vm1.pid").write_text("")
    (pids / "vm2.pid").write_text(f"{process.pid}\n")
    stop_domains(HostLibvirtd("hv1", "lab-host-hv1", paths, "198.18.0.1"), timeout=1)
    assert is_running(process)
    assert not mark.exists()
