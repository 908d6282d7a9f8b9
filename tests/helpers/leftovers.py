"""What a lab leaves on the machine, looked at the way a person would check it.

Its namespaces (`ip netns`), its folder, and its processes: any process whose
command line names the lab's folder, or whose network namespace is (or was)
one of the lab's. A process can outlive a deleted namespace and keep it, so
the namespaces are remembered by inode (`net:[INODE]` in /proc/PID/ns/net)
from a look taken before `lab down`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field

from sdnvirt.lab.lab import LabError, take_down
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import start_time, stop
from sdnvirt.lab.record import ProcessRecord
from sdnvirt.linux import netns

NETNS_FOLDER = "/run/netns"


@dataclass(frozen=True)
class LabTraces:
    folder: bool
    namespaces: dict[str, int] = field(default_factory=dict)  # name -> inode
    processes: dict[int, tuple[int, str]] = field(default_factory=dict)  # pid -> (start time, command line)

    @property
    def nothing(self) -> bool:
        return not (self.folder or self.namespaces or self.processes)


def lab_traces(lab: str, inodes: set[int] = frozenset()) -> LabTraces:
    """Everything of `lab` on the machine now; `inodes`: its namespaces seen in an earlier look."""
    namespaces = {}
    for name in sorted(os.listdir(NETNS_FOLDER)) if os.path.isdir(NETNS_FOLDER) else []:
        if name.startswith(f"{lab}-"):
            namespaces[name] = os.stat(os.path.join(NETNS_FOLDER, name)).st_ino
    folder = LabPaths.of(lab).root
    names_folder = re.compile(re.escape(str(folder)) + r"(/|$)")
    inodes = set(inodes) | set(namespaces.values())
    processes = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace").split("\0")
            inode = int(re.fullmatch(r"net:\[(\d+)\]", os.readlink(f"/proc/{entry}/ns/net")).group(1))
        except (OSError, AttributeError):
            continue  # gone meanwhile, or a zombie
        began = start_time(int(entry))
        if began is not None and (inode in inodes or any(names_folder.search(arg) for arg in cmdline)):
            processes[int(entry)] = (began, " ".join(cmdline).strip())
    return LabTraces(folder.exists(), namespaces, processes)


def still_running(processes: dict[int, tuple[int, str]]) -> list[str]:
    """Those of `processes` (from an earlier look) that still run: the same pid, started at the same time."""
    return [f"{pid} {cmdline}" for pid, (began, cmdline) in processes.items() if start_time(pid) == began]


def remove_lab_leftovers(lab: str) -> None:
    """After a failed test: all that `lab down` removes, then by hand whatever of the lab it left
    (processes by pid, namespaces, the folder), so that the tests after it find the machine clean."""
    paths = LabPaths.of(lab)
    try:
        take_down(paths)
    except LabError:
        pass
    left = lab_traces(lab)
    for pid, (began, _) in left.processes.items():
        stop(ProcessRecord(f"left by lab {lab}", pid, began))
    for namespace in left.namespaces:
        netns.remove(namespace)
    shutil.rmtree(paths.root, ignore_errors=True)
