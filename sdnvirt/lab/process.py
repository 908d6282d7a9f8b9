"""Starting daemons inside lab namespaces and stopping exactly those, by pid.

A pid alone can be reused after a crash; a pid together with the process's
start time cannot, so that pair is what the record keeps and what `stop`
checks before sending any signal.

Every daemon of a lab runs inside one of the lab's namespaces, and each
namespace is recorded before it is made. So `lab down` also finds a daemon
that `lab up` started a moment before it was killed, before it could record
the pid: by the network namespace the process runs in (`running_in`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from sdnvirt.lab.record import ProcessRecord
from sdnvirt.linux.netns import CommandError, entering, run_in_namespace

CONTROL_PLANE_NICE = -10
STOP_TIMEOUT = 10.0  # seconds a process has for SIGTERM, and then again for SIGKILL
POLL_INTERVAL = 0.02

# (st_dev, st_ino) of a namespace file: what /proc/PID/ns/net and /run/netns/NAME have in common
NamespaceId = tuple[int, int]


class LabProcessError(RuntimeError):
    pass


def control_plane(argv: list[str]) -> list[str]:
    """The command at a higher CPU priority than the lab's VMs: the switches and their
    controllers of a lab share two cores with QEMU, where a datacenter would not."""
    return ["nice", "-n", str(CONTROL_PLANE_NICE), *argv]


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when no such process runs (zombies included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it ends at the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def is_running(process: ProcessRecord) -> bool:
    return start_time(process.pid) == process.start_time


def start_detaching(name: str, namespace: str, argv: list[str], pidfile: Path,
                    env: dict[str, str] | None = None) -> ProcessRecord:
    """Start a daemon that detaches itself and writes `pidfile` (as OVS does)."""
    try:
        run_in_namespace(namespace, argv, env)
    except CommandError as error:
        raise LabProcessError(f"{name} did not start: {error}") from None
    pid = int(pidfile.read_text().strip())
    began = start_time(pid)
    if began is None:
        raise LabProcessError(f"{name} exited right after it started")
    return ProcessRecord(name=name, pid=pid, start_time=began, pidfile=str(pidfile))


def start_background(name: str, namespace: str | None, argv: list[str], pidfile: Path, log: Path,
                     env: dict[str, str] | None = None) -> ProcessRecord:
    """Start a process that does not detach itself; we keep its pid file for it."""
    full = entering(namespace) + argv
    with open(log, "ab") as out:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    # Whole or not at all: a reader never sees half a pid.
    written = pidfile.with_name(pidfile.name + ".tmp")
    written.write_text(f"{proc.pid}\n")
    os.replace(written, pidfile)
    began = start_time(proc.pid)
    if began is None:
        raise LabProcessError(f"{name} exited right after it started; see {log}")
    return ProcessRecord(name=name, pid=proc.pid, start_time=began, pidfile=str(pidfile))


def stop(process: ProcessRecord, timeout: float = STOP_TIMEOUT, kill: bool = False) -> None:
    """SIGTERM, a bounded wait, then SIGKILL (only SIGKILL with `kill`: a crash, for the
    fault tests); only if it is still the process we started."""
    stop_all([process], timeout, kill)
    if process.pidfile:
        Path(process.pidfile).unlink(missing_ok=True)


def stop_all(processes: Sequence[ProcessRecord], timeout: float = STOP_TIMEOUT, kill: bool = False) -> None:
    """Stop them all at once, each only while it is still the process recorded (pid and start
    time): SIGTERM, with SIGCONT so that a stopped process acts on it too, one bounded wait
    for all, then SIGKILL and another; raise naming any that still run."""
    for signals in ([signal.SIGKILL],) if kill else ([signal.SIGTERM, signal.SIGCONT], [signal.SIGKILL]):
        running = [p for p in processes if is_running(p)]
        for process in running:
            for sig in signals:
                try:
                    os.kill(process.pid, sig)
                except ProcessLookupError:
                    break
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            for process in running:
                _reap(process.pid)
            running = [p for p in running if is_running(p)]
            if running:
                time.sleep(POLL_INTERVAL)
    left = [p for p in processes if is_running(p)]
    if left:
        raise LabProcessError(", ".join(f"{p.name} (pid {p.pid})" for p in left)
                              + (" does" if len(left) == 1 else " do") + " not stop")


def namespace_id(path: str | Path) -> NamespaceId | None:
    """Which network namespace a namespace file (/run/netns/NAME, /proc/PID/ns/net) stands for."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def running_in(namespaces: Collection[NamespaceId]) -> list[ProcessRecord]:
    """Every process (but this one) whose network namespace is one of `namespaces`."""
    if not namespaces:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        if namespace_id(f"/proc/{pid}/ns/net") not in namespaces:
            continue
        began = start_time(pid)
        if began is not None:
            found.append(ProcessRecord(name=f"{_command(pid)} (not recorded)", pid=pid, start_time=began))
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
