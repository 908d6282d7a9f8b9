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
- by "controller": switch-over (host: the target, detail: its trigger), sent (host: a bridge
  whose flow-mods were handed to its connection, detail: how many, and "staged" when only the
  commit of a staged bundle was), committed (host: a bridge that confirmed them), garp (host:
  where gratuitous ARPs were sent from)
- by "tap" (captures on the guest's ports, on request, taps.py; stamped by the kernel):
  last-from-guest (source), to-guest (frames into the source's port after that, or into
  the destination's before the guest answered there), first-from-guest (destination),
  no-capture (detail: why not)

From them, figures(): the guest's pause (stopped on the source to resumed on the
destination) and its pause on the wire (its last frame out on the source to its
first on the destination), how long after the pause the switch-over was started
and was committed on every bridge, the frames that reached the source's port
after the pause (lost there) and the destination's before the guest resumed,
and, with a probe, the probes lost elsewhere than in the source's port and what
the network added to the probe's longest gap beyond the pause (the wire's, when
captured).
"""

from __future__ import annotations

import time

MAX_MARKS = 500  # a migration's marks, at most (QEMU's passes of a long copy would be unbounded)
FIGURES = ("pause_ms", "wire_pause_ms", "switchover_started_after_pause_ms", "switchover_after_pause_ms",
           "frames_lost_in_source_tap", "frames_before_resume_in_destination_tap", "probes_lost_elsewhere",
           "network_added_gap_ms")
_QEMU = {"STOP": "stopped", "RESUME": "resumed", "MIGRATION": "migration", "MIGRATION_PASS": "pass"}  # its words


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


def tap_marks(side: str, host: str, frames: list, limit: int) -> list[dict]:
    """A capture's frames ([epoch, direction, length, kind], tap_capture.py) as marks: on the
    source, the guest's last frame out and up to `limit` frames in after it; on the destination,
    up to `limit` frames in before the guest's first frame out, and that one. A RARP frame is
    QEMU's announcement of a guest that has not run yet (or the swap's, for a netns guest), not
    the guest's own."""
    frames = sorted(frames)
    out = [f for f in frames if f[1] == "from-guest" and f[3] != "rarp"]
    if side == "source":
        last = out[-1] if out else None
        after = [f for f in frames if f[1] == "to-guest" and (last is None or f[0] > last[0])][:limit]
        return ([mark(last[0], "tap", "last-from-guest", host, last[3])] if last else []) + \
            [mark(f[0], "tap", "to-guest", host, f[3]) for f in after]
    first = out[0] if out else None
    before = [f for f in frames if f[1] == "to-guest" and (first is None or f[0] < first[0])][:limit]
    return [mark(f[0], "tap", "to-guest", host, f[3]) for f in before] + \
        ([mark(first[0], "tap", "first-from-guest", host, first[3])] if first else [])


def figures(marks: list[dict], source: str, destination: str, probe: dict | None) -> dict:
    """The gap decomposed (milliseconds, frames; None where the marks, or the probe's figures
    ("lost", "max_gap_ms"), do not tell)."""
    probe = probe or {}
    ordered = sorted(marks, key=lambda m: m["at"])
    stopped = _first(ordered, lambda m: m["by"] in ("qemu", "guest") and m["event"] == "stopped"
                     and m["host"] == source)
    resumed = _first(ordered, lambda m: m["by"] in ("qemu", "guest") and m["event"] == "resumed"
                     and m["host"] == destination and (stopped is None or m["at"] >= stopped["at"]))
    started = _first(ordered, lambda m: m["event"] == "switch-over" and m["host"] == destination)
    commits = _commits(ordered, started)
    last_out = _first(ordered[::-1], lambda m: m["event"] == "last-from-guest" and m["host"] == source)
    first_out = _first(ordered, lambda m: m["event"] == "first-from-guest" and m["host"] == destination)
    frames_in = [m for m in ordered if m["by"] == "tap" and m["event"] == "to-guest"]
    pause, wire_pause = _ms(stopped, resumed), _ms(last_out, first_out)
    gap_pause = wire_pause if wire_pause is not None else pause
    lost_in_source = None if last_out is None or stopped is None \
        else [m for m in frames_in if m["host"] == source and m["at"] >= stopped["at"]]
    return {
        "pause_ms": pause,
        "wire_pause_ms": wire_pause,
        "switchover_started_after_pause_ms": _ms(stopped, started),
        "switchover_after_pause_ms": _ms(stopped, max(commits, key=lambda m: m["at"])) if commits else None,
        "frames_lost_in_source_tap": None if lost_in_source is None else len(lost_in_source),
        "frames_before_resume_in_destination_tap": None if first_out is None or resumed is None
        else sum(1 for m in frames_in if m["host"] == destination and m["at"] < resumed["at"]),
        "probes_lost_elsewhere": None if lost_in_source is None or probe.get("lost") is None
        else probe["lost"] - sum(1 for m in lost_in_source if m["detail"] == "icmp-request"),
        "network_added_gap_ms": None if gap_pause is None or probe.get("max_gap_ms") is None
        else round(probe["max_gap_ms"] - gap_pause, 3),
    }


def timeline(report: dict) -> list[dict]:
    """The state transitions and the marks of a migration's report, in the order they happened,
    each with `t_ms` from the migration's start."""
    states = [mark(step["at"], "controller", "state", None,
                   step["state"] + (f": {step['note']}" if step.get("note") else ""))
              for step in report["timeline"]]
    began = report["started_at"]
    return [{**entry, "t_ms": round((entry["at"] - began) * 1000, 3)}
            for entry in sorted(states + list(report["flight"]), key=lambda m: m["at"])]


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
