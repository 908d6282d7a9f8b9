"""Migrations a test can act on while they run: libvirt's copy slowed down, and what its job says."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from sdnvirt.compute.live_migration import job_active
from sdnvirt.controller.migration.switchover import GARP_REPEATS
from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab
from sdnvirt.lab.migration_probe import MigrationProbe, migrate, probe_target

from helpers.guests import wait_until

SLOW_COPY = 16  # MiB/s: a 128 MiB guest then copies for about 8 s, time enough to act while it does
# libvirt's downtime is QEMU's figure, taken on the source; the guest's real pause on the wire (its
# last reply out of the source tap to its first out of the destination tap) was measured ~20 ms
# longer (156 vs 175 ms, /work/shared/FACTS.md): the cold translation cache of the new QEMU.
WIRE_PAUSE_OVER_LIBVIRT_DOWNTIME_MS = 20.0


@contextmanager
def libvirt_domain(lab: Lab, host: str, vm: str) -> Iterator[libvirt.virDomain]:
    """The VM as the host's own libvirtd sees it (the test's own connection, not the controller's)."""
    connection = libvirt.open(lab.hosts()[host].libvirtd.uri)
    try:
        yield connection.lookupByName(vm)
    finally:
        connection.close()


@contextmanager
def slow_copy(lab: Lab, host: str, vm: str, mib_per_second: int = SLOW_COPY) -> Iterator[None]:
    """libvirt copies the VM's memory from `host` at that speed while the block runs (the speed is
    the domain's: a VM that moved away took it along to a QEMU that no longer exists, and its
    source copy may still be listed, stopped, while libvirt undefines it after the move)."""
    with libvirt_domain(lab, host, vm) as domain:
        before = domain.migrateGetMaxSpeed()
        domain.migrateSetMaxSpeed(mib_per_second)
    try:
        yield
    finally:
        connection = libvirt.open(lab.hosts()[host].libvirtd.uri)
        try:
            connection.lookupByName(vm).migrateSetMaxSpeed(before)
        except libvirt.libvirtError as error:  # not a listing first: the VM may leave in between
            if error.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                raise
        finally:
            connection.close()


def copying(lab: Lab, host: str, vm: str) -> bool:
    """libvirt runs a migration job for the VM on the host now."""
    with libvirt_domain(lab, host, vm) as domain:
        return job_active(domain)


def wait_for_state(lab: Lab, migration_id: int, state: str, timeout: float = 60) -> dict:
    """The migration's report once it is in `state` (its timeline says it got there)."""
    return wait_until(lambda: (report := lab.api().migration(migration_id))["state"] == state and report,
                      timeout=timeout, interval=0.02)


def guest_pause_ms(report: dict) -> float:
    """How long the moving guest can be silent on the wire, from what was measured of its move: a
    VM's libvirt downtime plus what the wire adds to it; a netns guest's downtime runs from the
    fabric's switch-over to its new links being up (the controller measures it), the pause itself."""
    assert report["hypervisor_downtime_ms"] is not None and report["hypervisor_downtime_ms"] > 0, report
    if report["kind"] == "netns":
        return report["hypervisor_downtime_ms"]
    return report["hypervisor_downtime_ms"] + WIRE_PAUSE_OVER_LIBVIRT_DOWNTIME_MS


def migrate_beside_a_still_guest(lab: Lab, vm: str, destination: str, probe: str, still: str,
                                 capture: bool = False) -> tuple[dict, dict]:
    """Migrate `vm` under `probe`'s probe while a second probe from the same guest watches `still`,
    a guest that does not move: the migration's report, and the baseline's figures (what the
    machine and the fabric do to a probe's gaps at that time, the move aside)."""
    baseline = MigrationProbe(naming.guest_namespace(lab.name, probe), probe_target(lab, still, probe))
    try:
        report = migrate(lab, vm, destination, probe=probe, capture=capture)
    finally:
        figures = baseline.stop()
    return report, figures


def assert_the_wire_saw_only_the_pause(report: dict, baseline: dict | None = None) -> None:
    """The probe judges the migration by the wire: it lost only probes sent into the guest's pause
    (a window of P ms holds at most P / interval + 1 of them), and it saw the pause (a VM is paused
    for libvirt's downtime at least: no reply can come out of it meanwhile). A fabric that drops
    the guest's traffic after the move, or a probe that missed the move, fails it.

    A netns guest's longest gap is bounded too, against `baseline`: a probe of a guest that did
    not move, run at the same time from the same guest."""
    pause, interval = guest_pause_ms(report), report["probe_interval_ms"]
    assert report["probe_sent"] is not None and report["probe_sent"] > 100, report
    assert report["probe_duplicates"] == 0, report
    assert report["probe_lost"] <= pause / interval + 1, report
    assert report["probe_max_gap_ms"] is not None, report
    if report["kind"] == "netns":
        # The pause plus the longest gap of a probe of a guest that did not move, sent from the
        # same guest at the same time. A fixed bound (pause + one interval) assumed a machine that
        # never stalls: measured over 14 moves on an idle lab, both probes went silent for 15 to
        # 63 ms together, at the same instants, away from the pause (about when Open vSwitch added
        # and removed the moving guest's ports), and with two CPU burners probes went out up to
        # 52 ms apart. A fabric that holds the moving guest's traffic past its pause still fails:
        # a guest kept silent 40 ms past its reported pause failed this bound in two moves of
        # three, and the loss bound in the third. The bystander's own losses are not judged here:
        # about one move in ten costs it one probe, a fault of its own to find.
        assert baseline is not None and baseline["sent"] > 100 and baseline["duplicates"] == 0, baseline
        assert report["probe_max_gap_ms"] <= pause + baseline["max_gap_ms"], (report, baseline)
    else:
        # Not bounded above yet: FACTS.md's +20 ms does not hold here. Measured (8 migrations, three
        # orders): gap = libvirt's downtime + 26 to 122 ms, while the fabric had switched 77 to
        # 211 ms before the resume and the losses stayed in the pause: the rest is the guest's own
        # silence after it resumed (cold TCG). Bound it once that is measured on its own.
        assert report["probe_max_gap_ms"] >= report["hypervisor_downtime_ms"], report


def assert_the_flight_recorded_it(lab: Lab, report: dict) -> dict:
    """The migration's flight recorder tells its story whole and in order, on one clock: the guest
    stopped on the source and resumed on the destination (QEMU's stamps for a VM, with libvirt's
    copy passes before; the swap's for a netns guest), the switch-over to the destination confirmed
    by the bridges of both hosts, then every round of gratuitous ARPs from the destination; and
    the gap decomposed from those marks. A migration with captures has the guest's last frame out
    of the source's port before its first out of the destination's (for a VM: before QEMU stopped
    it, and after QEMU resumed it), and the probes that reached the source after the pause are
    among those the probe lost. Returns the timeline the API serves."""
    source, destination = report["from"], report["to"]
    api = lab.api()
    # the last gratuitous ARPs go out 0.2 s after the switch-over, which may be after the end
    timeline = wait_until(lambda: (served := api.migration_timeline(report["id"]))
                          and len(_entries(served, "controller", "garp")) == len(GARP_REPEATS) and served, timeout=10)
    entries = timeline["timeline"]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    states = [e["detail"].split(":")[0] for e in _entries(timeline, "controller", "state")]
    assert (states[0], states[-1]) == ("requested", "completed"), states
    pausing = "guest" if report["kind"] == "netns" else "qemu"
    [stopped] = _entries(timeline, pausing, "stopped", source)
    [resumed] = _entries(timeline, pausing, "resumed", destination)
    started = _entries(timeline, "controller", "switch-over", destination)[0]
    commits = [e for e in _entries(timeline, "controller", "committed") if e["at"] >= started["at"]]
    garps = _entries(timeline, "controller", "garp", destination)
    assert {source, destination} <= {c["host"] for c in commits}, entries
    sent = {e["host"]: e["at"] for e in _entries(timeline, "controller", "sent") if e["at"] >= started["at"]}
    assert all(started["at"] <= sent[c["host"]] <= c["at"] for c in commits), entries  # sent, then confirmed
    assert stopped["at"] < resumed["at"] and started["at"] <= commits[0]["at"] <= commits[-1]["at"] <= garps[0]["at"]
    if report["kind"] == "netns":  # the fabric points at the destination before the guest's links go
        assert commits[-1]["at"] <= stopped["at"], entries
    else:
        passes = _entries(timeline, "qemu", "pass", source)
        assert passes and passes[0]["at"] < stopped["at"], entries
        assert {"active", "completed"} <= {e["detail"] for e in _entries(timeline, "qemu", "migration", source)}
        [suspended] = [e for e in _entries(timeline, "libvirt", "suspended", source) if e["detail"] == "migration"]
        assert stopped["at"] <= suspended["at"] and stopped["at"] <= started["at"], entries  # QEMU stamps first
        assert _entries(timeline, "libvirt", "resumed", destination), entries
    assert timeline["pause_ms"] == round((resumed["at"] - stopped["at"]) * 1000, 3)
    assert timeline["switchover_after_pause_ms"] == round((commits[-1]["at"] - stopped["at"]) * 1000, 3)
    pause = timeline["pause_ms"]
    if report["capture"]:
        assert not _entries(timeline, "tap", "no-capture"), entries
        [last_out] = _entries(timeline, "tap", "last-from-guest", source)
        [first_out] = _entries(timeline, "tap", "first-from-guest", destination)
        assert last_out["at"] < first_out["at"], entries
        if report["kind"] != "netns":  # QEMU stamps its stop after the guest's last frame, its resume before the first
            assert last_out["at"] <= stopped["at"] and resumed["at"] <= first_out["at"], entries
        lost_here = [e for e in _entries(timeline, "tap", "to-guest", source)
                     if e["at"] >= stopped["at"] and e["detail"] == "icmp-request"]
        if report["probe_lost"] is not None:  # a request into the stopped source is a probe lost
            assert timeline["probes_lost_elsewhere"] == report["probe_lost"] - len(lost_here) >= 0, entries
        assert timeline["frames_lost_in_source_tap"] is not None, entries
        assert timeline["frames_before_resume_in_destination_tap"] is not None, entries
        pause = timeline["wire_pause_ms"]
        assert pause == round((first_out["at"] - last_out["at"]) * 1000, 3)
    if report["probe_max_gap_ms"] is not None:
        assert timeline["network_added_gap_ms"] == round(report["probe_max_gap_ms"] - pause, 3)
    assert timeline["flight_dropped"] == 0
    return timeline


def _entries(timeline: dict, by: str, event: str, host: str | None = None) -> list[dict]:
    return [e for e in timeline["timeline"] if (e["by"], e["event"]) == (by, event) and host in (None, e["host"])]
