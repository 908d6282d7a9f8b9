"""The lab's record of everything it made, written as it goes.

`lab down` reads it to remove exactly what the lab made, also after a crash
part way through `lab up`. A namespace is recorded before it is made; a
process the moment its pid is known, and since every process of the lab runs
in one of its namespaces, `lab down` also finds one whose pid `lab up` did
not live to record (see process.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    """A process the lab started; `start_time` tells it apart from a reused pid."""

    name: str
    pid: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat
    pidfile: str = ""  # "" for a process found running in a lab namespace, which keeps none


@dataclass
class LabRecord:
    name: str
    path: Path
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    management: dict[str, str] = field(default_factory=dict)  # host -> its management address
    ssl: bool = False  # the controller reaches hosts over SSL on the management network
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> LabRecord:
        data = json.loads(path.read_text())
        return cls(
            name=data["name"],
            path=path,
            namespaces=list(data["namespaces"]),
            processes=[ProcessRecord(**p) for p in data["processes"]],
            management=dict(data["management"]),
            ssl=data["ssl"],
            complete=data["complete"],
        )

    def save(self) -> None:
        data = {
            "name": self.name,
            "namespaces": self.namespaces,
            "processes": [asdict(p) for p in self.processes],
            "management": self.management,
            "ssl": self.ssl,
            "complete": self.complete,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.path)

    def add_namespace(self, name: str) -> None:
        self.namespaces.append(name)
        self.save()

    def forget_namespace(self, name: str) -> None:
        self.namespaces = [n for n in self.namespaces if n != name]
        self.save()

    def add_process(self, process: ProcessRecord) -> None:
        self.processes.append(process)
        self.save()

    def forget_process(self, name: str) -> None:
        self.processes = [p for p in self.processes if p.name != name]
        self.save()
