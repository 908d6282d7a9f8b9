"""A migration's flight recorder: what happened, on one clock, and what the gap is made of.

Every migration keeps marks besides its state transitions: the hypervisor's
events (QEMU's own, stamped by QEMU when they happened; libvirt's, stamped
when the controller got them), the controller's switch-over (when its trigger
arrived, when each bridge confirmed its flows) and the gratuitous ARPs sent.
One clock for all: the wall clock (QEMU stamps its events with it), in epoch
seconds; what the controller times with time.monotonic() is converted when it
is marked. On real hosts QEMU's stamps are only as good as the hosts' clock
sync, which is why libvirt's arrival is marked too.

A mark is {"at", "by", "event", "host", "detail"}:
- by "qemu": stopped, resumed, migration (detail: QEMU's status), pass (detail: the pass)
- by "guest": stopped, resumed (a netns guest's links, as its swap reports them)
- by "libvirt": a lifecycle event as the controller received it (suspended, resumed, ...)
- by "controller": switch-over (host: the target, detail: its trigger), committed (host:
  a bridge that confirmed its flows), garp (host: where gratuitous ARPs were sent from)

From them, figures(): the guest's pause (stopped on the source to resumed on the
destination), how long after the pause the switch-over was started and was
committed on every bridge, and, with a probe, what the network added to the
probe's longest gap beyond the pause.
"""

from __future__ import annotations

import time

MAX_MARKS = 500  # a migration's marks, at most (QEMU's passes of a long copy would be unbounded)
BY = ("qemu", "guest", "libvirt", "controller")
FIGURES = ("pause_ms", "switchover_started_after_pause_ms", "switchover_after_pause_ms", "network_added_gap_ms")


def wall(monotonic_at: float) -> float:
    """A time.monotonic() instant on the recorder's clock (epoch seconds)."""
    return time.time() - (time.monotonic() - monotonic_at)


def mark(at: float, by: str, event: str, host: str | None = None, detail: str | None = None) -> dict:
    return {"at": at, "by": by, "event": event, "host": host, "detail": detail}


def qemu_mark(name: str, at: float, host: str, data: dict) -> dict:
    """QEMU's event (STOP, RESUME, MIGRATION, MIGRATION_PASS) in the recorder's words."""
    event, detail = _QEMU.get(name, name.lower()), None
    if name == "MIGRATION":
        detail = str(data.get("status"))
    elif name == "MIGRATION_PASS":
        detail = str(data.get("pass"))
    return mark(at, "qemu", event, host, detail)


_QEMU = {"STOP": "stopped", "RESUME": "resumed", "MIGRATION": "migration", "MIGRATION_PASS": "pass"}


def figures(marks: list[dict], source: str, destination: str, probe_max_gap_ms: float | None) -> dict:
    """The gap decomposed (milliseconds; None where the marks do not tell)."""
    ordered = sorted(marks, key=lambda m: m["at"])
    stopped = _first(ordered, lambda m: m["by"] in ("qemu", "guest") and m["event"] == "stopped"
                     and m["host"] == source)
    resumed = _first(ordered, lambda m: m["by"] in ("qemu", "guest") and m["event"] == "resumed"
                     and m["host"] == destination and (stopped is None or m["at"] >= stopped["at"]))
    started = _first(ordered, lambda m: m["event"] == "switch-over" and m["host"] == destination)
    commits = _commits(ordered, started)
    pause = _ms(stopped, resumed)
    return {
        "pause_ms": pause,
        "switchover_started_after_pause_ms": _ms(stopped, started),
        "switchover_after_pause_ms": _ms(stopped, max(commits, key=lambda m: m["at"])) if commits else None,
        "network_added_gap_ms": None if pause is None or probe_max_gap_ms is None
        else round(probe_max_gap_ms - pause, 3),
    }


def timeline(report: dict) -> list[dict]:
    """The state transitions and the marks of a migration's report, in the order they happened,
    each with `t_ms` from the migration's start."""
    states = [mark(step["at"], "controller", "state", None,
                   step["state"] + (f": {step['note']}" if step.get("note") else ""))
              for step in report["timeline"]]
    began = report["started_at"]
    return [{**entry, "t_ms": round((entry["at"] - began) * 1000, 3)}
            for entry in sorted(states + list(report.get("flight") or []), key=lambda m: m["at"])]


def _first(marks: list[dict], wanted) -> dict | None:
    return next((m for m in marks if wanted(m)), None)


def _commits(ordered: list[dict], started: dict | None) -> list[dict]:
    """The bridges' confirmations of the switch-over that `started` began (up to the next one)."""
    if started is None:
        return []
    after = ordered[ordered.index(started) + 1:]
    following = _first(after, lambda m: m["event"] == "switch-over")
    return [m for m in after[:after.index(following) if following else None] if m["event"] == "committed"]


def _ms(begin: dict | None, end: dict | None) -> float | None:
    if begin is None or end is None:
        return None
    return round((end["at"] - begin["at"]) * 1000, 3)
