"""The migration driver and its watchdog, with a fake guest kind and a fake switch-over: a failure
injected at every step of a move (and exceptions of unexpected types) still ends every migration
where it must, each transition recorded in order."""

from __future__ import annotations

import threading

import pytest

from sdnvirt.controller.migration.driver import Migrations
from sdnvirt.controller.migration.move import MoveCancelled
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import DEADLINES, FINAL, TRANSITIONS, State
from sdnvirt.controller.migration.watchdog import Watchdog
from sdnvirt.errors import Conflict, Failed, NotFound, Unavailable

from helpers.fabric_views import TOPOLOGY
from helpers.migration_driving import WAIT, Clock, FakeCaptures, FakeSwitchOver, Script, driver, ended, reached


def states(migration: Migration) -> list[str]:
    """The states it went through (a note in the timeline, like a deadline passing, is no new state)."""
    seen = [step["state"] for step in migration.timeline]
    return [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]


def assert_recorded_in_order(reports: list[dict], migration: Migration) -> None:
    """Every transition reached the recorder, in the order it happened, each report complete."""
    seen = [r["timeline"][-1]["state"] for r in reports if r["id"] == migration.id]
    transitions = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert transitions == states(migration)
    assert reports[-1]["state"] == migration.state


def test_a_move_that_succeeds_passes_every_state_in_order():
    mover = Script()
    switch_over = FakeSwitchOver()
    migrations, reports = driver(mover, switch_over)
    migration = ended(migrations, migrations.start("a1", "hv2"))
    assert migration.state == State.COMPLETED and migration.error is None
    assert ("a1", "hv2", "prepare") in switch_over.orders and switch_over.forgotten == ["a1"]
    assert states(migration) == ["requested", "preparing", "copying", "switching", "completed"]
    assert migration.fabric_at == "hv2"
    assert_recorded_in_order(reports, migration)


UNEXPECTED = [Failed("libvirt refused", "vm"), RuntimeError("a bug"), KeyError("nothing"),
              MoveCancelled("asked"), KeyboardInterrupt()]


@pytest.mark.parametrize("fail_at", range(len(Script.STEPS)), ids=lambda n: Script.STEPS[n])
@pytest.mark.parametrize("failure", UNEXPECTED, ids=lambda e: type(e).__name__)
def test_a_failure_at_any_step_ends_the_migration_where_it_must(fail_at, failure):
    mover = Script(fail_at, failure)
    switch_over = FakeSwitchOver()
    migrations, reports = driver(mover, switch_over)
    migration = ended(migrations, migrations.start("a1", "hv2"))
    switched = fail_at > Script.STEPS.index("switch-over")
    assert mover.location == "hv1"  # the fake guest never got to the destination
    if switched:  # the fabric had moved: it is moved back, and the migration says so
        assert migration.state == State.ROLLED_BACK
        assert switch_over.orders[-1] == ("a1", "hv1", "rolled-back")
        assert migration.fabric_at == "hv1"
    else:
        assert migration.state == State.FAILED  # nobody asked to cancel: a MoveCancelled too is a failure
        assert all(host == "hv2" for _, host, _ in switch_over.orders)
    assert migration.error
    assert switch_over.forgotten == ["a1"]  # a switch-over staged for it is dropped
    assert_recorded_in_order(reports, migration)
    assert migrations.start("a1", "hv2")  # it can move again


def test_states_move_only_as_the_state_machine_allows():
    for state in State:
        if state.final:
            assert state not in TRANSITIONS
        else:
            assert state in DEADLINES and TRANSITIONS[state] & FINAL


def test_two_starts_at_once_exactly_one_wins():
    mover = Script()
    mover.blocker = threading.Event()
    migrations, _ = driver(mover)
    results: list[object] = []
    barrier = threading.Barrier(8)

    def start():
        barrier.wait()
        try:
            results.append(migrations.start("a1", "hv2"))
        except Conflict as refused:
            results.append(refused)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    won = [r for r in results if isinstance(r, Migration)]
    assert len(won) == 1 and len(results) == 8
    mover.blocker.set()
    assert ended(migrations, won[0]).state == State.COMPLETED


def test_start_refuses_what_cannot_move():
    migrations, _ = driver(Script())
    with pytest.raises(NotFound, match="no guest"):
        migrations.start("nobody", "hv2")
    with pytest.raises(NotFound, match="no host"):
        migrations.start("a1", "hv9")
    with pytest.raises(Conflict, match="on hv1 already"):
        migrations.start("a1", "hv1")


def test_a_refused_start_takes_no_number():
    mover = Script()
    migrations, reports = driver(mover)
    first = ended(migrations, migrations.start("a1", "hv2"))
    mover.refusal = Unavailable("host hv1's libvirtd is not connected", "to")
    with pytest.raises(Unavailable):
        migrations.start("a1", "hv1")
    mover.refusal = None
    assert [m.id for m in migrations.list()] == [first.id]  # nothing was recorded
    assert migrations.start("a1", "hv1").id == first.id + 1  # the numbers a user sees have no gap


def test_cancel_while_preparing_cancels_and_asking_again_answers_the_same():
    mover = Script()
    mover.blocker = threading.Event()
    migrations, reports = driver(mover)
    migration = migrations.start("a1", "hv2")
    first = migrations.cancel(migration.id, WAIT)
    assert first.state == State.CANCELLED and mover.cancelled == [migration.id]
    assert states(first) == ["requested", "preparing", "cancelling", "cancelled"]
    again = migrations.cancel(migration.id, WAIT)
    assert again.state == State.CANCELLED and mover.cancelled == [migration.id]  # the hypervisor is told once
    assert_recorded_in_order(reports, ended(migrations, migration))


def test_cancel_after_the_end_answers_what_happened():
    migrations, _ = driver(Script())
    migration = ended(migrations, migrations.start("a1", "hv2"))
    assert migrations.cancel(migration.id, WAIT).state == State.COMPLETED  # too late


def test_cancel_while_switching_is_too_late_and_it_completes():
    mover = Script()
    gate = threading.Event()
    original = mover.move

    def move(migration, steps):
        steps.enter(State.SWITCHING)
        gate.wait(WAIT)
        original(migration, steps)

    mover.move = move
    migrations, _ = driver(mover)
    migration = migrations.start("a1", "hv2")
    reached(migration, State.SWITCHING)
    canceller = threading.Thread(target=migrations.cancel, args=(migration.id, WAIT))
    canceller.start()
    gate.set()
    canceller.join(WAIT)
    done = ended(migrations, migration)
    assert done.state == State.COMPLETED and "cancelling" not in states(done) and done.cancel_requested


def test_a_slow_switch_over_after_a_successful_move_is_completed_with_the_delay_reported():
    mover = Script()
    mover.STEPS = ("preparing", "copying", "switching", "finish")  # the signal never came
    switch_over = FakeSwitchOver()
    switch_over.stuck = True
    migrations, _ = driver(mover, switch_over)
    migration = ended(migrations, migrations.start("a1", "hv2"))
    assert migration.state == State.COMPLETED
    assert "did not switch over" in migration.switchover_error


def test_a_hypervisor_error_after_the_guest_runs_on_the_destination_is_completed():
    mover = Script(fail_at=len(Script.STEPS), failure=None)

    def move(migration, steps):
        steps.enter(State.SWITCHING)
        mover.location = migration.destination
        raise Failed("libvirt lost the connection while finishing", "vm")

    mover.move = move
    migrations, _ = driver(mover)
    migration = ended(migrations, migrations.start("a1", "hv2"))
    assert migration.state == State.COMPLETED and migration.error is None


def test_a_recorder_that_fails_costs_records_not_the_migration():
    mover = Script()
    migrations = Migrations(TOPOLOGY, lambda vm: mover, FakeSwitchOver(), lambda report: 1 / 0, [], FakeCaptures(),
                            clock=Clock(), switch_wait=0.2)
    assert ended(migrations, migrations.start("a1", "hv2")).state == State.COMPLETED


def test_the_watchdog_ends_a_move_past_its_deadline_that_stops_when_asked():
    clock = Clock()
    mover = Script()
    mover.blocker = threading.Event()
    migrations, _ = driver(mover, clock=clock)
    watchdog = Watchdog(migrations, clock=clock, grace=5.0)
    migration = migrations.start("a1", "hv2")
    reached(migration, State.PREPARING)
    watchdog.look()
    assert migration.state == State.PREPARING  # not late yet
    clock.now += DEADLINES[State.PREPARING] + 1
    watchdog.look()
    done = ended(migrations, migration)
    assert done.state == State.FAILED and done.expired == "preparing"
    assert "preparing took too long" in done.error and mover.cancelled == [migration.id]


@pytest.mark.parametrize("hosts_say, outcome", [(State.COMPLETED, State.COMPLETED), (None, State.FAILED),
                                                (State.FAILED, State.FAILED)])
def test_the_watchdog_ends_a_hung_move_the_way_the_hosts_say(hosts_say, outcome):
    clock = Clock()
    mover = Script()
    mover.blocker = threading.Event()
    mover.honours_cancel = False  # a hypervisor that hangs and ignores the abort
    mover.settled = hosts_say
    migrations, reports = driver(mover, clock=clock)
    watchdog = Watchdog(migrations, clock=clock, grace=5.0)
    migration = migrations.start("a1", "hv2")
    reached(migration, State.PREPARING)
    clock.now += DEADLINES[State.PREPARING] + 1
    watchdog.look()
    assert not migration.state.final  # its thread gets the grace to end it
    clock.now += 6
    watchdog.look()
    assert migration.state == outcome
    mover.blocker.set()  # the hypervisor comes back: the late end changes nothing
    done = ended(migrations, migration)
    assert done.state == outcome and states(done).count(str(outcome)) == 1
    assert_recorded_in_order(reports, done)


def test_a_migration_left_unfinished_by_a_previous_controller_is_ended_as_the_hosts_say():
    previous = Migration(7, "a1", "hv1", "hv2", "live", state=State.COPYING,
                         timeline=[{"state": "requested", "at": 1.0, "note": None},
                                   {"state": "preparing", "at": 2.0, "note": None},
                                   {"state": "copying", "at": 3.0, "note": None}])
    clock = Clock()
    mover = Script()
    migrations, reports = driver(mover, history=[previous.report()], clock=clock)
    watchdog = Watchdog(migrations, clock=clock)
    [migration] = migrations.unfinished()
    watchdog.look()
    assert migration.state == State.COPYING  # the hosts cannot say yet: libvirt still copies
    mover.settled = State.COMPLETED
    watchdog.look()
    assert migration.state == State.COMPLETED
    assert states(migration) == ["requested", "preparing", "copying", "switching", "completed"]
    assert migrations.start("a1", "hv2").id == 8  # numbering goes on from the history


def test_signals_move_a_live_migration_on_and_late_ones_change_nothing():
    mover = Script()
    mover.blocker = threading.Event()
    switch_over = FakeSwitchOver()
    migrations, _ = driver(mover, switch_over)
    migration = migrations.start("a1", "hv2")
    port = TOPOLOGY.guests["a1"].nics[0].port_id
    reached(migration, State.PREPARING)
    migrations.destination_ready("hv3", {port})  # another host: not this migration's
    assert migration.state == State.PREPARING
    migrations.destination_ready("hv2", {port})
    assert migration.state == State.COPYING
    migrations.source_stopped("a1", "hv2", 0.0)  # not the source's
    assert migration.state == State.COPYING
    migrations.source_stopped("a1", "hv1", 0.0)  # QEMU's word comes first
    migrations.source_paused("a1", "hv1", 0.0)  # libvirt's finds it done
    assert migration.state == State.SWITCHING
    assert [o for o in switch_over.orders if o[2] != "prepare"] == [("a1", "hv2", "qemu-stopped")]
    mover.blocker.set()
    done = ended(migrations, migration)
    migrations.destination_ready("hv2", {port})
    migrations.source_paused("a1", "hv1", 0.0)
    migrations.source_stopped("a1", "hv1", 0.0)
    assert done.state == State.COMPLETED
    assert states(done) == ["requested", "preparing", "copying", "switching", "completed"]


def test_a_stop_before_the_memory_is_copied_is_no_pause_of_the_migration():
    """QEMU stops a VM for any pause (a person's too); only while the memory is copied is it the
    migration's. libvirt's "paused for migration" is the migration's whenever it comes."""
    mover = Script()
    mover.blocker = threading.Event()
    switch_over = FakeSwitchOver()
    migrations, _ = driver(mover, switch_over)
    migration = migrations.start("a1", "hv2")
    reached(migration, State.PREPARING)
    migrations.source_stopped("a1", "hv1", 0.0)
    assert migration.state == State.PREPARING and switch_over.orders == []
    migrations.source_paused("a1", "hv1", 0.0)
    assert migration.state == State.SWITCHING and ("a1", "hv2", "source-paused") in switch_over.orders
    mover.blocker.set()
    assert ended(migrations, migration).state == State.COMPLETED
