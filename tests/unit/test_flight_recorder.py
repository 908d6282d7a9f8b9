"""A migration's flight recorder: marks kept for the guest's migration (and only then, and bounded),
kept across a controller restart, the gap decomposed from them, and the timeline drawn and listed."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from sdnvirt.cli.flight_chart import chart
from sdnvirt.cli.migrate import describe_timeline
from sdnvirt.controller.migration import driver as driver_module
from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State

from helpers.migration_driving import FakeCaptures, Script, driver, ended, reached

T0 = 1_800_000_000.0  # an epoch second


def at(ms: float) -> float:
    return T0 + ms / 1000


def a_live_move(probe_gap_ms: float | None = 181.0) -> list[dict]:
    """Marks of a live migration hv1 -> hv2 as the recorder gets them, out of order (QEMU's events
    come through libvirt, the bridges' confirmations after the switch-over's handler ran)."""
    return [
        flight.mark(at(0), "qemu", "migration", "hv1", "active"),
        flight.mark(at(40), "qemu", "pass", "hv1", "2"),
        flight.mark(at(110.0), "controller", "committed", "hv2", "4 flow-mods"),  # the destination first
        flight.mark(at(100.0), "qemu", "stopped", "hv1"),
        flight.mark(at(104.5), "libvirt", "suspended", "hv1", "migration"),
        flight.mark(at(104.6), "controller", "switch-over", "hv2", "source-paused"),
        flight.mark(at(111.25), "controller", "committed", "hv3", "2 flow-mods"),
        flight.mark(at(110.5), "controller", "committed", "hv1", "6 flow-mods"),
        flight.mark(at(112), "controller", "garp", "hv2", "1 frames"),
        flight.mark(at(275.0), "qemu", "resumed", "hv2"),
        # a switch-back's confirmations are not this switch-over's
        flight.mark(at(400), "controller", "switch-over", "hv1", "rolled-back"),
        flight.mark(at(420), "controller", "committed", "hv3", "2 flow-mods"),
    ]


def test_the_gap_is_decomposed_from_the_marks_whatever_order_they_came_in():
    assert flight.figures(a_live_move(), "hv1", "hv2", {"max_gap_ms": 181.0 + 175.0 - 1.0, "lost": 3}) == {
        "pause_ms": 175.0,  # QEMU's stop on the source to its resume on the destination
        "wire_pause_ms": None,  # nothing was captured
        "switchover_started_after_pause_ms": 4.6,  # the controller heard of the pause (libvirt's event)
        "switchover_after_pause_ms": 11.25,  # the last bridge of that switch-over confirmed
        "frames_lost_in_source_tap": None, "frames_before_resume_in_destination_tap": None,
        "probes_lost_elsewhere": None, "network_added_gap_ms": 180.0,
    }


def test_what_the_marks_do_not_tell_is_none():
    marks = [m for m in a_live_move() if m["by"] != "qemu"]
    assert set(flight.figures(marks, "hv1", "hv2", {"max_gap_ms": 200.0, "lost": 1}).values()) == {None}
    assert flight.figures([], "hv1", "hv2", None)["pause_ms"] is None


def test_a_resume_before_the_stop_is_not_the_end_of_the_pause():
    """The destination's QEMU starts paused and may resume only after the stop; a resume of the
    destination before the source stopped (a retried migration) ends nothing."""
    marks = [flight.mark(at(5), "qemu", "resumed", "hv2"), flight.mark(at(10), "guest", "stopped", "hv1"),
             flight.mark(at(42), "guest", "resumed", "hv2")]
    assert flight.figures(marks, "hv1", "hv2", None)["pause_ms"] == 32.0


def test_qemu_events_in_the_recorders_words():
    assert flight.qemu_mark("STOP", at(1), "hv1", {}) == flight.mark(at(1), "qemu", "stopped", "hv1")
    assert flight.qemu_mark("MIGRATION", at(2), "hv1", {"status": "device"})["detail"] == "device"
    assert flight.qemu_mark("MIGRATION_PASS", at(3), "hv1", {"pass": 4})["detail"] == "4"
    assert flight.qemu_mark("RESUME", at(4), "hv2", {})["event"] == "resumed"


def test_the_timeline_merges_states_and_marks_in_time_order_from_the_start():
    report = {"started_at": at(-50), "flight": a_live_move(),
              "timeline": [{"state": "switching", "at": at(104.7), "note": None},
                           {"state": "completed", "at": at(300), "note": "done"}]}
    entries = flight.timeline(report)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert len(entries) == len(a_live_move()) + 2
    [completed] = [e for e in entries if e["event"] == "state" and e["detail"].startswith("completed")]
    assert completed["detail"] == "completed: done" and completed["t_ms"] == 350.0
    assert entries[0]["t_ms"] == 50.0


def test_marks_go_to_the_guests_migration_only_while_it_runs_or_just_ended(monkeypatch):
    mover = Script()
    mover.blocker = threading.Event()
    migrations, reports = driver(mover)
    migrations.mark("a1", flight.mark(at(0), "qemu", "stopped", "hv1"))  # no migration yet: nothing kept
    migration = migrations.start("a1", "hv2")
    reached(migration, State.PREPARING)
    migrations.mark("a1", flight.mark(at(1), "qemu", "pass", "hv1", "1"))
    migrations.mark("a2", flight.mark(at(1), "qemu", "stopped", "hv1"))  # another guest's
    mover.blocker.set()
    done = ended(migrations, migration)
    migrations.mark("a1", flight.mark(at(2), "controller", "garp", "hv2", "1 frames"))  # the late ARPs
    assert [m["event"] for m in done.flight] == ["pass", "garp"]
    assert reports[-1]["flight"] == done.flight  # a mark after the end is recorded on its own
    clock = [done.finished_at + driver_module.FLIGHT_TAIL + 0.1]
    monkeypatch.setattr(driver_module.time, "time", lambda: clock[0])
    migrations.mark("a1", flight.mark(at(3), "qemu", "resumed", "hv2"))  # long after: not this migration's
    assert len(done.flight) == 2


def test_a_migration_keeps_its_marks_bounded_and_counts_the_rest():
    migration = Migration(1, "a1", "hv1", "hv2", "live")
    for n in range(flight.MAX_MARKS + 7):
        migration.keep(flight.mark(at(n), "qemu", "pass", "hv1", str(n)))
    assert len(migration.flight) == flight.MAX_MARKS and migration.flight_dropped == 7


def test_a_restarted_controller_reads_the_marks_back_and_goes_on_marking():
    previous = Migration(7, "a1", "hv1", "hv2", "live", state=State.COPYING, flight=a_live_move()[:2],
                         timeline=[{"state": "copying", "at": at(0), "note": None}])
    report = previous.report()
    assert Migration.from_report(report).flight == previous.flight
    mover = Script()
    migrations, _ = driver(mover, history=[report])
    migrations.mark("a1", flight.mark(at(100), "qemu", "stopped", "hv1"))
    [migration] = migrations.unfinished()
    assert [m["event"] for m in migration.flight] == ["migration", "pass", "stopped"]


def served(report: dict) -> dict:
    """The timeline as the API serves it (GET /migrations/{id}/timeline)."""
    return {"id": 3, "vm": "vm1", "from": "hv1", "to": "hv2", "kind": "live", "state": "completed",
            "flight_dropped": 0, **flight.figures(report["flight"], "hv1", "hv2", {"max_gap_ms": 300.0, "lost": 2}),
            "timeline": flight.timeline(report)}


def test_the_chart_draws_every_mark_the_pause_and_the_switch_over_whole_and_magnified():
    marks = a_live_move()[:-2]
    report = {"started_at": at(-3000), "flight": marks,
              "timeline": [{"state": "copying", "at": at(-2950), "note": None},
                           {"state": "switching", "at": at(104.7), "note": None},
                           {"state": "completed", "at": at(310), "note": None}]}
    svg = ET.fromstring(chart(served(report)))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    # each mark once in the whole migration; those of the final phase (all but the first two) again
    assert len(svg.findall(".//svg:circle", ns)) == len(marks) + len(marks) - 2
    texts = [t.text for t in svg.findall(".//svg:text", ns)]
    assert "guest paused 175.0 ms" in texts and "switch-over 6.7 ms" in texts  # 104.6 -> 111.25
    assert {"migration", "qemu hv1", "qemu hv2", "libvirt hv1", "controller", "bridge hv1", "bridge hv2",
            "bridge hv3"} <= set(texts)
    assert any("guest pause 175.0 ms" in text for text in texts)


def test_a_migration_without_a_pause_is_drawn_whole_only():
    report = {"started_at": at(0), "flight": [], "timeline": [{"state": "requested", "at": at(0), "note": None},
                                                              {"state": "failed", "at": at(5), "note": "no"}]}
    svg = ET.fromstring(chart(served(report)))
    texts = [t.text for t in svg.findall(".//{http://www.w3.org/2000/svg}text")]
    assert "the whole migration" in texts and "its final phase" not in texts
    assert "no figures: the marks do not tell" in texts


def test_the_text_view_lists_every_entry_and_the_figures():
    report = {"started_at": at(-50), "flight": a_live_move(), "timeline": [{"state": "switching", "at": at(104.7),
                                                                            "note": None}]}
    text = describe_timeline(served(report)).splitlines()
    assert len(text) == 1 + len(a_live_move()) + 1 + 8
    assert "guest pause: 175.0 ms" in text[-8] and "on the wire: -" in text[-7] and "11.2 ms" in text[-5]


def frames(*entries: tuple[float, str, str]) -> list:
    """Frames as tap_capture gives them: [epoch, way, length, kind], from (ms, way, kind)."""
    return [[at(ms), way, 98, kind] for ms, way, kind in entries]


SOURCE_FRAMES = frames((90, "to-guest", "icmp-request"), (91, "from-guest", "icmp-reply"),
                       (95, "to-guest", "icmp-request"), (96, "from-guest", "icmp-reply"),
                       (100.5, "to-guest", "icmp-request"), (105.5, "to-guest", "icmp-request"))
DESTINATION_FRAMES = frames((110.5, "to-guest", "icmp-request"), (115.5, "to-guest", "icmp-request"),
                            (250, "to-guest", "arp"), (275.0, "from-guest", "rarp"),  # QEMU's, not the guest's
                            (276.0, "from-guest", "icmp-reply"), (280, "to-guest", "icmp-request"),
                            (281, "from-guest", "icmp-reply"))


def test_captures_become_the_guests_last_frame_out_and_first_in_and_what_came_between():
    source = flight.tap_marks("source", "hv1", list(reversed(SOURCE_FRAMES)), limit=50)
    destination = flight.tap_marks("destination", "hv2", DESTINATION_FRAMES, limit=50)
    assert [(m["event"], round((m["at"] - T0) * 1000, 1)) for m in source] == [
        ("last-from-guest", 96.0), ("to-guest", 100.5), ("to-guest", 105.5)]
    assert [(m["event"], m["detail"]) for m in destination] == [
        ("to-guest", "icmp-request"), ("to-guest", "icmp-request"), ("to-guest", "arp"),
        ("first-from-guest", "icmp-reply")]
    assert len(flight.tap_marks("destination", "hv2", DESTINATION_FRAMES, limit=1)) == 2  # bounded
    assert flight.tap_marks("source", "hv1", [], limit=50) == []
    figures = flight.figures(a_live_move() + source + destination, "hv1", "hv2", {"max_gap_ms": 185.0, "lost": 3})
    assert figures["wire_pause_ms"] == 180.0  # 96 -> 276: the guest's pause as the probe sees it
    assert figures["frames_lost_in_source_tap"] == 2  # in after QEMU stopped it at 100
    assert figures["probes_lost_elsewhere"] == 1  # of the 3 the probe lost
    assert figures["frames_before_resume_in_destination_tap"] == 3  # waiting when it resumed at 275
    assert figures["network_added_gap_ms"] == 5.0  # measured against the wire's pause, not QEMU's


def test_captures_begin_at_copying_end_after_the_migration_and_their_marks_are_kept():
    tap = flight.mark(at(1), "tap", "last-from-guest", "hv1", "icmp-reply")
    captures = FakeCaptures([tap])
    migrations, reports = driver(Script(), captures=captures)
    migration = ended(migrations, migrations.start("a1", "hv2", capture=True))
    assert migration.state == State.COMPLETED
    assert captures.calls == [("begin", migration.id), ("wait_started", migration.id), ("end", migration.id)]
    assert [m["event"] for m in migration.flight] == ["no-capture", "last-from-guest"]
    assert reports[-1]["flight"] == migration.flight and reports[-1]["capture"] is True


def test_no_capture_unless_asked_and_a_broken_one_costs_only_its_marks():
    captures = FakeCaptures()
    migrations, _ = driver(Script(), captures=captures)
    assert ended(migrations, migrations.start("a1", "hv2")).state == State.COMPLETED
    assert captures.calls == []
    broken = FakeCaptures(failing=True)
    migrations, _ = driver(Script(), captures=broken)
    migration = ended(migrations, migrations.start("a1", "hv2", capture=True))
    assert migration.state == State.COMPLETED and ("end", migration.id) in broken.calls
