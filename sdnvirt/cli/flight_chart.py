"""A migration's timeline drawn as SVG: one row per voice (the migration's states, QEMU and
libvirt on each host, the controller, each bridge), the guest's pause and the switch-over as
bands across the rows; the whole migration above, its final phase (the pause) magnified below.

Drawn with the standard library's ElementTree: the chart is a few hundred shapes, not worth a
plotting library in the controller's environment.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

LABEL_WIDTH = 160
PLOT_WIDTH = 900
ROW = 22
PANEL_GAP = 56
AXIS = 26
CHARACTER_WIDTH = 5.5  # pixels, at the labels' 9 px
LABEL_PRIORITY = {"stopped": 0, "resumed": 0, "switch-over": 0, "committed": 0, "suspended": 1, "migration": 1,
                  "sent": 1}
ZOOM_MARGIN_MS = (20.0, 40.0)  # shown before the pause and after its end in the magnified panel
COLOURS = {"migration": "#4c72b0", "qemu": "#dd8452", "guest": "#dd8452", "libvirt": "#55a868",
           "controller": "#c44e52", "bridge": "#8172b3", "tap": "#937860"}
STATE_COLOURS = {"requested": "#dfe7f3", "preparing": "#c7d5ec", "copying": "#a9c0e4", "switching": "#f2c14e",
                 "cancelling": "#f3a6a6", "completed": "#9fd59f", "cancelled": "#d9d9d9", "failed": "#f08080",
                 "rolled-back": "#f08080"}


def lane(entry: dict) -> str:
    """The row an entry of the timeline is drawn on."""
    if entry["event"] == "state":
        return "migration"
    if entry["event"] in ("sent", "committed"):
        return f"bridge {entry['host']}"
    return f"{entry['by']} {entry['host']}" if entry["by"] != "controller" else "controller"


def chart(timeline: dict) -> str:
    """The SVG document for a migration's timeline, as the API serves it."""
    entries = timeline["timeline"]
    lanes = sorted({lane(e) for e in entries}, key=_lane_order)
    end = max((e["t_ms"] for e in entries), default=0.0)
    panels = [("the whole migration", 0.0, max(end, 1.0))]
    window = _final_phase(entries)
    if window is not None:
        panels.append(("its final phase", *window))
    height = len(panels) * (len(lanes) * ROW + AXIS + PANEL_GAP) + 56
    svg = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", width=str(LABEL_WIDTH + PLOT_WIDTH + 140),
                     height=str(height), style="font-family: sans-serif; font-size: 11px")
    ET.SubElement(svg, "rect", width="100%", height="100%", fill="white")
    heading, figures = _title(timeline)
    _text(svg, 10, 20, heading, size=14, weight="bold")
    _text(svg, 10, 38, figures, size=12)
    top = 56.0
    for title, begin, finish in panels:
        _panel(svg, top, title, entries, lanes, begin, finish)
        top += len(lanes) * ROW + AXIS + PANEL_GAP
    return ET.tostring(svg, encoding="unicode")


def _title(timeline: dict) -> tuple[str, str]:
    """The migration, and the figures of its gap."""
    figures = [f"{name} {timeline[key]:.1f} ms" for key, name in (
        ("pause_ms", "guest pause"), ("wire_pause_ms", "on the wire"),
        ("switchover_after_pause_ms", "switch-over done on every bridge after the pause"),
        ("network_added_gap_ms", "network-added gap")) if timeline.get(key) is not None]
    return (f"migration {timeline['id']}: {timeline['vm']} {timeline['from']} -> {timeline['to']} "
            f"({timeline['kind']}, {timeline['state']})", ", ".join(figures) or "no figures: the marks do not tell")


def _lane_order(name: str) -> tuple[int, str]:
    kinds = ["migration", "qemu", "guest", "libvirt", "controller", "bridge", "tap"]
    kind = name.split()[0]
    return (kinds.index(kind) if kind in kinds else len(kinds), name)


def _final_phase(entries: list[dict]) -> tuple[float, float] | None:
    """From a little before the guest stopped (or before the switch-over began, when the fabric
    moved first) to a little after it resumed and every bridge confirmed."""
    stopped = [e["t_ms"] for e in entries if e["event"] == "stopped"]
    if not stopped:
        return None
    switched = [e["t_ms"] for e in entries if e["event"] == "switch-over"]
    begin = min(stopped[0], *switched[:1]) - ZOOM_MARGIN_MS[0]
    ends = [e["t_ms"] for e in entries if e["event"] in ("resumed", "committed") and e["t_ms"] >= begin]
    return begin, max(ends, default=stopped[0]) + ZOOM_MARGIN_MS[1]


def _panel(svg: ET.Element, top: float, title: str, entries: list[dict], lanes: list[str], begin: float,
           finish: float) -> None:
    def x(t_ms: float) -> float:
        return LABEL_WIDTH + (t_ms - begin) / (finish - begin) * PLOT_WIDTH

    rows = {name: top + AXIS + i * ROW for i, name in enumerate(lanes)}
    bottom = top + AXIS + len(lanes) * ROW
    _text(svg, 10, top + 10, title, weight="bold")
    for name, y in rows.items():
        ET.SubElement(svg, "line", x1=str(LABEL_WIDTH), x2=str(LABEL_WIDTH + PLOT_WIDTH), y1=str(y + ROW / 2),
                      y2=str(y + ROW / 2), stroke="#eeeeee")
        _text(svg, 10, y + ROW / 2 + 4, name, colour=COLOURS.get(name.split()[0], "black"))
    _axis(svg, top + AXIS - 4, bottom, begin, finish, x)
    _bands(svg, entries, top + AXIS, bottom, begin, finish, x)
    _states(svg, [e for e in entries if e["event"] == "state"], rows["migration"], begin, finish, x)
    shown = [e for e in entries if e["event"] != "state" and begin <= e["t_ms"] <= finish]
    for entry in shown:
        y = rows[lane(entry)] + ROW / 2
        dot = ET.SubElement(svg, "circle", cx=f"{x(entry['t_ms']):.1f}", cy=f"{y:.1f}", r="3.5",
                            fill=COLOURS.get(lane(entry).split()[0], "black"))
        ET.SubElement(dot, "title").text = _describe(entry)
    for entry, label in _labelled(shown, x):
        _text(svg, x(entry["t_ms"]) + 5, rows[lane(entry)] + ROW / 2 - 4, label, size=9)


def _labelled(entries: list[dict], x) -> list[tuple[dict, str]]:
    """The marks that get a written label, and the label: in each row, the telling ones first
    (the pause, the switch-over), then the others where there is room; the rest keep their tooltip."""
    placed: dict[str, list[tuple[float, float]]] = {}
    chosen = []
    for entry in sorted(entries, key=lambda e: (LABEL_PRIORITY.get(e["event"], len(LABEL_PRIORITY)), e["t_ms"])):
        terse = entry["detail"] is None or entry["event"] == "sent"
        label = entry["event"] if terse else f"{entry['event']} {entry['detail']}"
        left = x(entry["t_ms"]) + 5
        right = left + len(label) * CHARACTER_WIDTH
        row = placed.setdefault(lane(entry), [])
        if all(right < begin or left > end for begin, end in row):
            row.append((left, right))
            chosen.append((entry, label))
    return chosen


def _axis(svg: ET.Element, y: float, bottom: float, begin: float, finish: float, x) -> None:
    step = _tick_step(finish - begin)
    tick = math.ceil(begin / step) * step
    while tick <= finish:
        ET.SubElement(svg, "line", x1=f"{x(tick):.1f}", x2=f"{x(tick):.1f}", y1=str(y), y2=str(bottom),
                      stroke="#dddddd")
        _text(svg, x(tick) - 12, y - 4, f"{tick:g} ms", size=9, colour="#666666")
        tick += step


def _tick_step(span_ms: float) -> float:
    """A round step giving 5 to 10 ticks over the span."""
    step = 10 ** math.floor(math.log10(max(span_ms, 1e-3)))
    for factor in (1, 2, 5, 10):
        if span_ms / (step * factor) <= 10:
            return step * factor
    return step * 10


def _bands(svg: ET.Element, entries: list[dict], top: float, bottom: float, begin: float, finish: float, x) -> None:
    """The guest's pause and the switch-over, across every row."""
    stopped = next((e for e in entries if e["event"] == "stopped"), None)
    resumed = next((e for e in entries if e["event"] == "resumed" and stopped and e["t_ms"] >= stopped["t_ms"]), None)
    started = next((e for e in entries if e["event"] == "switch-over"), None)
    commits = [e for e in entries if e["event"] == "committed" and started and e["t_ms"] >= started["t_ms"]]
    for row, (first, last, colour, label) in enumerate((
            (stopped, resumed, "#b8860b", "guest paused"),
            (started, commits[-1] if commits else None, "#c44e52", "switch-over"))):
        if first is None or last is None:
            continue
        left, right = max(first["t_ms"], begin), min(last["t_ms"], finish)
        if right < left:
            continue
        ET.SubElement(svg, "rect", x=f"{x(left):.1f}", y=str(top), width=f"{max(x(right) - x(left), 1.0):.1f}",
                      height=str(bottom - top), fill=colour, opacity="0.18")
        _text(svg, x(left) + 2, bottom + 12 + 12 * row, f"{label} {last['t_ms'] - first['t_ms']:.1f} ms", size=9,
              colour=colour)


def _states(svg: ET.Element, states: list[dict], y: float, begin: float, finish: float, x) -> None:
    for entry, following in zip(states, [*states[1:], None], strict=True):
        name = entry["detail"].split(":")[0]
        left = max(entry["t_ms"], begin)
        right = min(following["t_ms"] if following else max(entry["t_ms"], finish), finish)
        if right < left:
            continue
        bar = ET.SubElement(svg, "rect", x=f"{x(left):.1f}", y=f"{y + 4:.1f}",
                            width=f"{max(x(right) - x(left), 2.0):.1f}", height=str(ROW - 8),
                            fill=STATE_COLOURS.get(name, "#cccccc"), stroke="white")
        ET.SubElement(bar, "title").text = _describe(entry)
        if x(right) - x(left) > 50:
            _text(svg, x(left) + 3, y + ROW / 2 + 4, name, size=9)


def _describe(entry: dict) -> str:
    where = f" on {entry['host']}" if entry["host"] else ""
    detail = f" ({entry['detail']})" if entry["detail"] else ""
    return f"{entry['t_ms']:.3f} ms: {entry['by']} {entry['event']}{where}{detail}"


def _text(svg: ET.Element, x: float, y: float, content: str, size: int = 11, weight: str = "normal",
          colour: str = "black") -> None:
    ET.SubElement(svg, "text", x=f"{x:.1f}", y=f"{y:.1f}", fill=colour, style=f"font-size: {size}px; "
                  f"font-weight: {weight}").text = content
