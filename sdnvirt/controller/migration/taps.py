"""Short captures on a moving guest's ports (its taps, or a netns guest's veths) on the source and
the destination, for the migration's flight recorder; on request only, since each is a process on
each host for the migration's length.

They start when the destination's port is programmed (copying) and stop when the move is over,
before the migration's final state (its final report holds what they saw): by then a VM's
source QEMU has exited (its tap with it) and the destination has answered, and a netns guest
has made its announcements. The source keeps its last frames and the destination its first
(tap_capture.py), so each is bounded in size as in time. They run where the controller can enter
the host's network namespace (a lab); a host it cannot reach that way says so in the timeline.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.record import Migration
from sdnvirt.linux.netns import entering

LOG = logging.getLogger(__name__)
STOP_WAIT = 5.0  # seconds a capture may take to hand over what it kept once told to stop
READY_WAIT = 5.0  # seconds a capture may take to start
START_WAIT = 2 * READY_WAIT + 1  # seconds the end of a migration waits for its captures to start (one per host)
MARKS_PER_SIDE = 50  # frames of one side that become marks, at most

# (guest, host) -> the host's network namespace (None: it cannot be entered from here), and the
# guest's interfaces on that host's bridge
CapturePoint = Callable[[str, str], tuple[str | None, list[str]]]


@dataclass
class _Capture:
    host: str
    interface: str
    side: str  # "source" (its last frames kept) | "destination" (its first)
    process: subprocess.Popen


@dataclass
class _Captures:
    """One migration's captures: the thread starting them, those that run, and whether the
    migration has ended them (one that starts after that is stopped at once)."""

    starting: threading.Thread
    running: list[_Capture] = field(default_factory=list)
    ended: bool = False


class TapCaptures:
    def __init__(self, capture_point: CapturePoint):
        self._capture_point = capture_point
        self._lock = threading.Lock()
        self._migrations: dict[int, _Captures] = {}

    def begin(self, migration: Migration, on_marks: Callable[[list[dict]], None]) -> None:
        """Start capturing on both hosts, on a thread of its own (starting processes takes a while,
        and the caller holds the migration's lock); `on_marks` gets the hosts where it could not."""
        starting = threading.Thread(target=lambda: on_marks(self._start(migration)), name=f"capture-{migration.vm}",
                                    daemon=True)
        with self._lock:
            self._migrations[migration.id] = _Captures(starting)
        starting.start()

    def wait_started(self, migration: Migration) -> None:
        """Until the migration's captures run (bounded), so that a move as quick as a netns guest's
        is seen whole."""
        with self._lock:
            captures = self._migrations.get(migration.id)
        if captures is not None:
            captures.starting.join(START_WAIT)

    def end(self, migration: Migration) -> list[dict]:
        """Stop the migration's captures and turn what they saw into marks. Those still starting
        after START_WAIT are not waited for: each is stopped as soon as it starts."""
        with self._lock:
            captures = self._migrations.pop(migration.id, None)
        if captures is None:
            return []
        captures.starting.join(START_WAIT)
        with self._lock:
            captures.ended = True
            running, captures.running = captures.running, []
        marks = []
        for capture in running:
            seen = self._stop(capture)
            if seen.get("error") and not seen.get("frames"):
                marks.append(flight.mark(time.time(), "tap", "no-capture", capture.host, seen["error"]))
            marks += flight.tap_marks(capture.side, capture.host, seen.get("frames", []), MARKS_PER_SIDE)
        return marks

    def _start(self, migration: Migration) -> list[dict]:
        """Capture on both hosts now; marks for the hosts where that cannot be done."""
        with self._lock:
            captures = self._migrations.get(migration.id)
        missing: list[dict] = []
        try:
            for host, side in ((migration.source, "source"), (migration.destination, "destination")):
                namespace, interfaces = self._capture_point(migration.vm, host)
                if namespace is None or not interfaces:
                    missing.append(flight.mark(time.time(), "tap", "no-capture", host,
                                               "the host's namespace is not reachable from the controller"
                                               if namespace is None else "the guest has no port there yet"))
                    continue
                for interface in interfaces:
                    if captures is None or captures.ended:
                        return missing
                    missing += self._start_one(captures, host, side, namespace, interface)
        except Exception as error:  # a capture is an extra: it must never take its migration down
            LOG.exception("vm %s: captures did not start", migration.vm)
            missing.append(flight.mark(time.time(), "tap", "no-capture", migration.source, str(error)))
        return missing

    def _start_one(self, captures: _Captures, host: str, side: str, namespace: str, interface: str) -> list[dict]:
        """One capture, kept with the migration's (or stopped at once if the migration ended them meanwhile)."""
        try:
            process = subprocess.Popen(
                [*entering(namespace), sys.executable, "-m", "sdnvirt.compute.tap_capture", interface,
                 "--keep", "last" if side == "source" else "first"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as error:
            return [flight.mark(time.time(), "tap", "no-capture", host, str(error))]
        capture = _Capture(host, interface, side, process)
        started = _ready(process)
        with self._lock:
            kept = started and not captures.ended
            if kept:
                captures.running.append(capture)
        if kept:
            return []
        seen = self._stop(capture)
        if not started:
            return [flight.mark(time.time(), "tap", "no-capture", host,
                                seen.get("error") or f"{interface}: the capture did not start")]
        return []

    @staticmethod
    def _stop(capture: _Capture) -> dict:
        """What one capture kept (bounded in time: a capture that does not answer is killed)."""
        try:
            out, err = capture.process.communicate("stop\n", timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            capture.process.kill()
            capture.process.wait()
            return {"error": f"{capture.interface}: the capture did not stop within {STOP_WAIT:.0f} s"}
        try:
            seen = json.loads(out)
        except ValueError:
            LOG.warning("capture on %s/%s: %s", capture.host, capture.interface, err.strip())
            return {"error": f"{capture.interface}: the capture failed: {err.strip()[-200:]}"}
        return seen if isinstance(seen, dict) else {"error": f"{capture.interface}: the capture said nothing"}


def _ready(process: subprocess.Popen) -> bool:
    """The capture said it captures, within READY_WAIT. Read from the pipe itself, a byte at a
    time: nothing may wait in the file object's buffer, which communicate() would not see."""
    deadline, line = time.monotonic() + READY_WAIT, b""
    descriptor = process.stdout.fileno()
    while not line.endswith(b"\n") and len(line) < 16:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            return False
        byte = os.read(descriptor, 1)
        if not byte:
            return False
        line += byte
    return line.strip() == b"ready"
