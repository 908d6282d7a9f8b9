"""A migration as it is recorded: where it is in its state machine, how it got there, its figures.

The report is what the API answers, what the northbound database keeps after
every transition, and what a restarted controller reads back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.states import State

PROBE_FIGURES = ("sent", "lost", "duplicates", "max_gap_ms", "interval_ms")


@dataclass
class Migration:
    id: int
    vm: str
    source: str
    destination: str
    kind: str  # "live" | "offline" | "netns"
    capture: bool = False  # short captures on the guest's ports for the flight recorder (taps.py)
    state: State = State.REQUESTED
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    error: str | None = None
    timeline: list[dict] = field(default_factory=list)  # {"state", "at" (epoch s), "note"}
    flight: list[dict] = field(default_factory=list)  # the flight recorder's marks (flight.py)
    flight_dropped: int = 0  # marks beyond flight.MAX_MARKS
    cancel_requested: bool = False
    expired: str | None = None  # the state whose deadline passed, if one did
    hypervisor_downtime_ms: float | None = None
    total_ms: float | None = None
    switchover_ms: float | None = None
    switchover_flow_mods: int | None = None
    switchover_error: str | None = None  # the fabric's switch-over failed or was late (the move went on)
    trigger: str | None = None
    probe: dict | None = None
    hypervisor: dict | None = None  # libvirt's own figures for the job
    fabric_at: str | None = None  # where the fabric last pointed the guest's ports, for this migration
    entered_at: float = field(default_factory=time.monotonic)  # when it entered its state (deadlines)
    resumed_at: float | None = None  # time.monotonic(): the hypervisor says the VM runs on the destination
    switched_at: float | None = None  # time.monotonic(): every bridge points at the destination

    @property
    def switchover_after_resume_ms(self) -> float | None:
        """What the network added to the downtime (negative: the flows were ready first)."""
        if self.resumed_at is None or self.switched_at is None:
            return None
        return round((self.switched_at - self.resumed_at) * 1000, 3)

    def keep(self, entry: dict) -> None:
        """One mark more for the flight recorder (bounded)."""
        if len(self.flight) < flight.MAX_MARKS:
            self.flight.append(entry)
        else:
            self.flight_dropped += 1

    def report(self) -> dict:
        probe = self.probe or {}
        return {
            "id": self.id, "vm": self.vm, "from": self.source, "to": self.destination, "kind": self.kind,
            "capture": self.capture,
            "state": str(self.state), "result": str(self.state) if self.state.final else None,
            "error": self.error, "started_at": self.started_at, "finished_at": self.finished_at,
            "timeline": list(self.timeline), "cancel_requested": self.cancel_requested, "expired": self.expired,
            "hypervisor_downtime_ms": self.hypervisor_downtime_ms, "total_ms": self.total_ms,
            "switchover_ms": self.switchover_ms, "switchover_flow_mods": self.switchover_flow_mods,
            "switchover_error": self.switchover_error, "trigger": self.trigger,
            "switchover_after_resume_ms": self.switchover_after_resume_ms,
            **{f"probe_{key}": probe.get(key) for key in PROBE_FIGURES},
            "hypervisor": self.hypervisor, "fabric_at": self.fabric_at,
            "flight": list(self.flight), "flight_dropped": self.flight_dropped,
            **flight.figures(self.flight, self.source, self.destination, self.probe),
        }

    @classmethod
    def from_report(cls, report: dict) -> Migration:
        """A migration as its report, kept in the database, tells it (a restarted controller)."""
        probe = {key: report.get(f"probe_{key}") for key in PROBE_FIGURES}
        return cls(
            id=report["id"], vm=report["vm"], source=report["from"], destination=report["to"], kind=report["kind"],
            capture=report.get("capture", False),
            state=State(report["state"]), started_at=report["started_at"], finished_at=report["finished_at"],
            error=report["error"], timeline=list(report["timeline"]), cancel_requested=report["cancel_requested"],
            expired=report["expired"], hypervisor_downtime_ms=report["hypervisor_downtime_ms"],
            total_ms=report["total_ms"], switchover_ms=report["switchover_ms"],
            switchover_flow_mods=report["switchover_flow_mods"], switchover_error=report["switchover_error"],
            trigger=report["trigger"], probe=probe if probe["sent"] is not None else None,
            hypervisor=report["hypervisor"], fabric_at=report["fabric_at"],
            # an older controller's reports have no flight recorder
            flight=list(report.get("flight", [])), flight_dropped=report.get("flight_dropped", 0),
        )
