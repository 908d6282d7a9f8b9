"""A migration's captures end with it, however they start: slowly (a guest with many NICs), or
with an error half-way. A capture left running would stay until its own cap, ten minutes later.
The capture program is a stand-in here that says "ready" after a delay and answers "stop"."""

from __future__ import annotations

import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from sdnvirt.controller.migration import taps
from sdnvirt.controller.migration.taps import TapCaptures

from helpers.guests import wait_until

STAND_IN = """
import json, sys, time
time.sleep(float(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps({"frames": []}), flush=True)
"""
MIGRATION = SimpleNamespace(id=7, vm="a1", source="hv1", destination="hv2")


@pytest.fixture
def started(monkeypatch, tmp_path):
    """Every capture process started, with each taking `delay` seconds to say it is ready."""
    program = tmp_path / "capture.py"
    program.write_text(STAND_IN)
    processes: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recording(*args, **kwargs):
        process = popen(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(taps, "entering", lambda namespace: [sys.executable, str(program), namespace, "--"])
    monkeypatch.setattr(taps.subprocess, "Popen", recording)
    monkeypatch.setattr(taps, "READY_WAIT", 2.0)
    monkeypatch.setattr(taps, "START_WAIT", 0.5)
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def all_ended(processes: list[subprocess.Popen]) -> bool:
    return bool(processes) and all(p.poll() is not None for p in processes)


def test_captures_still_starting_when_the_migration_ends_are_stopped_as_they_start(started):
    captures = TapCaptures(lambda vm, host: ("0.3", [f"vnet{n}" for n in range(4)]))  # 8 captures, 0.3 s each
    marks: list[list[dict]] = []
    captures.begin(MIGRATION, marks.append)
    captures.end(MIGRATION)  # after START_WAIT, with most of them still to start
    assert wait_until(lambda: marks, timeout=10) == [[]]
    assert wait_until(lambda: all_ended(started), timeout=5)
    assert len(started) < 8  # none started once the migration had ended them


def test_an_error_half_way_still_ends_the_captures_that_started(started):
    def capture_point(vm: str, host: str):
        if host == "hv2":
            raise RuntimeError("the destination's bindings could not be read")
        return "0", ["vnet0"]

    captures = TapCaptures(capture_point)
    marks: list[list[dict]] = []
    captures.begin(MIGRATION, marks.append)
    [missing] = wait_until(lambda: marks, timeout=10)
    assert [(m["event"], m["detail"]) for m in missing] == [
        ("no-capture", "the destination's bindings could not be read")]
    assert len(started) == 1 and started[0].poll() is None
    captures.end(MIGRATION)
    assert all_ended(started)


def test_a_migration_ended_before_its_captures_began_starts_none(started):
    gate = threading.Event()
    captures = TapCaptures(lambda vm, host: (gate.wait(5), ("0", ["vnet0"]))[1])
    marks: list[list[dict]] = []
    captures.begin(MIGRATION, marks.append)
    ender = threading.Thread(target=captures.end, args=(MIGRATION,))
    ender.start()
    ender.join(2)
    gate.set()
    assert wait_until(lambda: marks, timeout=10) == [[]]
    assert started == []
