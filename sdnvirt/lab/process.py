"""Starting daemons inside lab namespaces and stopping exactly those, by pid.

A pid alone can be reused after a crash; a pid together with the process's
start time cannot, so that pair is what the record keeps and what `stop`
checks before sending any signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from sdnvirt.lab.record import ProcessRecord
from sdnvirt.linux.netns import entering, run_in_namespace

CONTROL_PLANE_NICE = -10


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
    run_in_namespace(namespace, argv, env)
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
    pidfile.write_text(f"{proc.pid}\n")
    began = start_time(proc.pid)
    if began is None:
        raise LabProcessError(f"{name} exited right after it started; see {log}")
    return ProcessRecord(name=name, pid=proc.pid, start_time=began, pidfile=str(pidfile))


def stop(process: ProcessRecord, timeout: float = 10, kill: bool = False) -> None:
    """SIGTERM, a bounded wait, then SIGKILL (only SIGKILL with `kill`: a crash, for the
    fault tests); only if it is still the process we started."""
    for sig in (signal.SIGKILL,) if kill else (signal.SIGTERM, signal.SIGKILL):
        if not is_running(process):
            break
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and is_running(process):
            _reap(process.pid)
            time.sleep(0.02)
    if is_running(process):
        raise LabProcessError(f"{process.name} (pid {process.pid}) did not stop")
    Path(process.pidfile).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
