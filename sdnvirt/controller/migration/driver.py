"""The migration driver: one for every kind of guest, and every migration ends.

Starting a migration checks it and records it under one lock, so of two starts
of one VM exactly one wins. A thread of its own then drives the move through the
guest kind's `move` (kinds know how to move their guests; the driver knows the
states, see states.py), and ends it in `finally` whatever was raised. What the
hosts signal meanwhile (the destination port programmed, the source paused, a
switch-over done) moves the state machine on from other threads. The watchdog
(watchdog.py) ends what overran its deadline and what nobody drives any more.

Every transition is recorded at once, in order (`record`: the northbound
database's ordered writer and the event stream), with a timeline entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

from sdnvirt.controller.migration.move import MoveCancelled, Mover, MoveRolledBack, MoveSteps
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import DEADLINES, State, check_transition
from sdnvirt.controller.migration.switchover import QEMU_STOPPED, SOURCE_PAUSED, SwitchedOver, SwitchOver
from sdnvirt.controller.migration.taps import TapCaptures
from sdnvirt.errors import Conflict, Failed, Invalid, NotFound, SdnvirtError, TimedOut
from sdnvirt.model.topology import Topology

LOG = logging.getLogger(__name__)
SWITCH_OVER_WAIT = 30.0  # seconds an ordered switch-over may wait, behind others in a storm
# Seconds after its end a migration still takes marks: the last gratuitous ARPs, and the
# destination's own word that the guest runs, can come after libvirt's job has returned.
FLIGHT_TAIL = 2.0
PATH = (State.REQUESTED, State.PREPARING, State.COPYING, State.SWITCHING)  # the way forward, in order


class Migrations:
    def __init__(self, topology: Topology, movers: Callable[[str], Mover], switch_over: SwitchOver,
                 record: Callable[[dict], None], history: list[dict], captures: TapCaptures,
                 deadlines: dict[State, float] = DEADLINES, clock: Callable[[], float] = time.monotonic,
                 switch_wait: float = SWITCH_OVER_WAIT):
        self.topology = topology
        self._movers = movers  # guest name -> its kind
        self._switch_over = switch_over
        self._captures = captures
        self._record = record  # every transition's report, in order
        self._deadlines = deadlines
        self._clock = clock
        self._switch_wait = switch_wait
        self._lock = threading.Condition()
        self._all: dict[int, Migration] = {}
        self._latest: dict[str, Migration] = {}  # each guest's last migration, for the flight recorder
        for report in history:
            migration = Migration.from_report(report)
            migration.entered_at = clock()  # a restarted controller gives it its deadline afresh
            self._all[migration.id] = migration
        for migration in sorted(self._all.values(), key=lambda m: m.id):
            self._latest[migration.vm] = migration
        self._next_id = max(self._all, default=0) + 1  # taken by a start only once it is checked
        self._steps: dict[int, _Steps] = {}  # the migrations a thread drives now
        self._listeners: dict[int, list[Callable[[], None]]] = {}  # called at a migration's next transition

    def use_topology(self, topology: Topology) -> None:
        self.topology = topology

    # -- records -------------------------------------------------------------------------------

    def list(self) -> list[Migration]:
        with self._lock:
            return list(self._all.values())

    def get(self, migration_id: int) -> Migration:
        with self._lock:
            migration = self._all.get(migration_id)
        if migration is None:
            raise NotFound(f"no migration {migration_id}", "migration")
        return migration

    def unfinished(self, vm: str | None = None) -> list[Migration]:
        with self._lock:
            return [m for m in self._all.values() if not m.state.final and vm in (None, m.vm)]

    def migrating(self) -> set[str]:
        """The guests a migration moves now."""
        return {m.vm for m in self.unfinished()}

    def driven(self, migration: Migration) -> bool:
        with self._lock:
            return migration.id in self._steps

    def mark(self, vm: str, entry: dict) -> None:
        """A mark (flight.mark) for the flight recorder of the guest's migration, if one runs or
        ended within FLIGHT_TAIL seconds; nothing otherwise (a guest that is not moving)."""
        with self._lock:
            migration = self._latest.get(vm)
            if migration is None or (migration.state.final and migration.finished_at is not None
                                     and time.time() - migration.finished_at > FLIGHT_TAIL):
                return
            migration.keep(entry)
            if migration.state.final:
                self._report(migration)  # no transition will record it any more

    def attach_probe(self, migration_id: int, probe: dict) -> Migration:
        migration = self.get(migration_id)
        with self._lock:
            migration.probe = probe
            self._report(migration)
        return migration

    # -- starting, waiting, cancelling -----------------------------------------------------------

    def start(self, vm: str, destination: str, offline: bool = False, capture: bool = False) -> Migration:
        """Check and record a migration, then drive it on a thread of its own; with `capture`, its
        flight recorder gets short captures on the guest's ports (taps.py)."""
        if vm not in self.topology.guests:
            raise NotFound(f"no guest named {vm!r}", "vm")
        if destination not in self.topology.hosts:
            raise NotFound(f"no host named {destination!r}", "to")
        mover = self._movers(vm)
        kind = "offline" if offline else mover.migration_kinds[0]
        if kind not in mover.migration_kinds:
            raise Invalid(f"a {self.topology.guests[vm].kind.value} guest has no {kind} migration", "offline")
        with self._lock:
            busy = [m for m in self._all.values() if m.vm == vm and not m.state.final]
            if busy:
                raise Conflict(f"vm {vm} is migrating already (migration {busy[0].id})", "vm")
            source = mover.where(vm, kind)
            if source == destination:
                raise Conflict(f"vm {vm} is on {destination} already", "to")
            migration = Migration(self._next_id, vm, source, destination, kind, capture, entered_at=self._clock())
            mover.check_move(migration)  # a refused start leaves no gap in the numbers
            self._next_id += 1
            self._all[migration.id] = self._latest[vm] = migration
            self._note(migration, None)
            steps = self._steps[migration.id] = _Steps(self, migration)
        threading.Thread(target=self._drive, args=(migration, mover, steps), name=f"migrate-{vm}",
                         daemon=True).start()
        return migration

    def wait(self, migration_id: int, timeout: float) -> Migration:
        """The migration once it has ended, or as it is after `timeout` seconds."""
        migration = self.get(migration_id)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not migration.state.final and (remaining := deadline - time.monotonic()) > 0:
                self._lock.wait(remaining)
        return migration

    def when_changed(self, migration_id: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from another thread) at the migration's next transition; returns a
        function that forgets it. For waiters that must not hold a thread (the API)."""
        self.get(migration_id)
        with self._lock:
            self._listeners.setdefault(migration_id, []).append(callback)

        def forget() -> None:
            with self._lock:
                listeners = self._listeners.get(migration_id, [])
                if callback in listeners:
                    listeners.remove(callback)
        return forget

    def cancel(self, migration_id: int, timeout: float) -> Migration:
        """Stop the migration named; answered with what happened once it has ended (cancelled,
        or completed because it was too late), or as it is after `timeout`. Asking again is
        harmless: it answers the same."""
        migration = self.get(migration_id)
        with self._lock:
            asked = not migration.state.final and not migration.cancel_requested
            migration.cancel_requested = migration.cancel_requested or not migration.state.final
            asked = asked and migration.state != State.SWITCHING  # too late: it goes on to its end
            if asked:
                self._enter(migration, State.CANCELLING, "cancel asked")
                steps = self._steps.get(migration.id)
                if steps is not None:
                    steps.cancel.set()
        if asked:
            self._movers(migration.vm).cancel_move(migration)
        return self.wait(migration_id, timeout)

    # -- what the hosts signal ---------------------------------------------------------------------

    def destination_ready(self, host: str, port_ids: set[str]) -> None:
        """The destination's port of a moving guest is programmed: the guest's state goes over now."""
        for migration in self.unfinished():
            guest = self.topology.guests.get(migration.vm)
            if guest and migration.destination == host and {n.port_id for n in guest.nics} & port_ids:
                self.advance(migration, State.COPYING)

    def source_paused(self, vm: str, host: str, received: float) -> None:
        """libvirt says the source paused the VM for the last of its memory: point the fabric at
        the destination now, so what is sent meanwhile waits there instead of being lost."""
        self._switch_at_pause(vm, host, received, SOURCE_PAUSED, (State.PREPARING, State.COPYING, State.CANCELLING))

    def source_stopped(self, vm: str, host: str, received: float) -> None:
        """QEMU stopped the VM on the source (its STOP, some milliseconds before libvirt's event):
        while the memory is copied, that is the pause for the last of it."""
        self._switch_at_pause(vm, host, received, QEMU_STOPPED, (State.COPYING, State.CANCELLING))

    def _switch_at_pause(self, vm: str, host: str, received: float, trigger: str, states: tuple[State, ...]) -> None:
        """The first word of the pause switches over (before anything is recorded: nothing may
        delay it); a later one finds the migration switching already."""
        for migration in self.unfinished(vm):
            if migration.source == host and migration.kind == "live" and migration.state in states:
                self._switch_over.source_paused(vm, migration.destination, received, trigger)
                self.advance(migration, State.SWITCHING)

    def resumed(self, vm: str, host: str, at: float) -> None:
        """libvirt says the VM runs on `host` after a migration."""
        with self._lock:
            for migration in self._all.values():
                if migration.vm == vm and not migration.state.final and migration.destination == host:
                    migration.resumed_at = migration.resumed_at or at

    def switched(self, event: SwitchedOver) -> None:
        """A switch-over of a guest's ports, whatever triggered it: where the fabric points now."""
        with self._lock:
            for migration in self._all.values():
                if migration.vm != event.vm or migration.state.final:
                    continue
                migration.fabric_at = event.host
                if event.host == migration.destination and migration.trigger is None:
                    migration.trigger = event.trigger
                    migration.switchover_ms = round(event.latency_ms, 3)
                    migration.switchover_flow_mods = event.flow_mods
                    migration.switched_at = event.completed
                self._report(migration)

    # -- the state machine -------------------------------------------------------------------------

    def advance(self, migration: Migration, target: State) -> None:
        """Forward along requested -> preparing -> copying -> switching to `target`, recording every
        state passed; nothing if it is there or beyond already, or ended. A cancelling migration
        moves on only to switching (too late to cancel)."""
        with self._lock:
            if migration.state.final or (migration.state == State.CANCELLING and target != State.SWITCHING):
                return
            if migration.state == State.CANCELLING:
                self._enter(migration, State.SWITCHING, "too late to cancel")
                return
            here, there = PATH.index(migration.state), PATH.index(target)
            passed = PATH[here + 1:there + 1]
            for state in passed:
                self._enter(migration, state)
        if State.COPYING in passed:  # the destination's port is bound: its switch-over can be readied
            self._switch_over.prepare(migration.vm, migration.destination)

    def _enter(self, migration: Migration, state: State, note: str | None = None) -> None:
        """One transition; callers hold the lock."""
        check_transition(migration.state, state)
        migration.state = state
        migration.entered_at = self._clock()
        if state.final:
            migration.finished_at = time.time()
        if state == State.COPYING and migration.capture:  # both hosts have the guest's port now
            self._captures.begin(migration, lambda marks: self._keep(migration, marks))
        self._note(migration, note)

    def _note(self, migration: Migration, note: str | None) -> None:
        """Timeline, whoever waits, and the record."""
        migration.timeline.append({"state": str(migration.state), "at": time.time(), "note": note})
        self._lock.notify_all()
        for callback in self._listeners.pop(migration.id, []):
            callback()
        self._report(migration)

    def _keep(self, migration: Migration, marks: list[dict]) -> None:
        """Marks for the migration's flight recorder that came apart from any transition."""
        with self._lock:
            for entry in marks:
                migration.keep(entry)
            self._report(migration)

    def _report(self, migration: Migration) -> None:
        """A recorder that fails costs a record, never a transition."""
        try:
            self._record(migration.report())
        except Exception:
            LOG.exception("migration %d: its %s could not be recorded", migration.id, migration.state)

    def deadline(self, migration: Migration) -> float:
        """When (clock time) the migration's present state must have ended."""
        return migration.entered_at + self._deadlines[migration.state]

    def _drive(self, migration: Migration, mover: Mover, steps: _Steps) -> None:
        outcome, error = State.FAILED, "the move ended without saying how"
        try:
            mover.move(migration, steps)
            outcome, error = State.COMPLETED, None
        except MoveCancelled as stopped:
            outcome, error = (State.FAILED, f"{migration.expired} took too long") if migration.expired \
                else (State.CANCELLED, str(stopped))
        except MoveRolledBack as undone:
            outcome, error = State.ROLLED_BACK, str(undone)
        except BaseException as failure:  # whatever it was, the migration ends, and says why
            outcome, error = State.FAILED, str(failure) or type(failure).__name__
            if not isinstance(failure, SdnvirtError):
                LOG.exception("vm %s: the move to %s raised", migration.vm, migration.destination)
        finally:
            try:
                self._end_captures(migration)  # before the end, so that its final report holds them
                self.conclude(migration, mover, outcome, error)
            finally:
                with self._lock:
                    self._steps.pop(migration.id, None)

    def _end_captures(self, migration: Migration) -> None:
        """The move is over (the source's port gone with its guest, the destination's first answers
        out): what the captures saw goes into the flight recorder."""
        if not migration.capture:
            return
        try:
            self._keep(migration, self._captures.end(migration))
        except Exception:  # the captures cost the flight recorder some marks, nothing more
            LOG.exception("migration %d: its captures could not be read", migration.id)

    def conclude(self, migration: Migration, mover: Mover, outcome: State, error: str | None) -> None:
        """End a migration as `outcome`, first making the fabric agree with where the guest runs:
        at the destination for a completed move (the guest runs there: a slow or failed switch-over
        is in the report, never a failure), back at the source for one that failed after the fabric
        had switched (then it is rolled back)."""
        if migration.state.final:
            return  # the watchdog or the driving thread got there first
        if outcome != State.COMPLETED and self._runs_on(mover, migration) == migration.destination:
            outcome, error = State.COMPLETED, None  # the hypervisor's error came after it was done
        if outcome == State.COMPLETED and migration.fabric_at != migration.destination:
            try:
                self._switch(migration, migration.destination, "migration-completed")
            except SdnvirtError as late:
                migration.switchover_error = str(late)
        elif outcome != State.COMPLETED and migration.trigger is not None:  # it had switched over
            outcome = State.ROLLED_BACK
            if migration.fabric_at != migration.source:
                try:
                    self._switch(migration, migration.source, "rolled-back")
                except SdnvirtError as stuck:
                    outcome, error = State.FAILED, f"{error}; switching back to {migration.source} failed: {stuck}"
        self.finish(migration, outcome, error)

    def finish(self, migration: Migration, outcome: State, error: str | None) -> None:
        self._switch_over.forget(migration.vm)  # a switch-over staged and not made: its bundles go
        with self._lock:
            if migration.state.final:
                return
            if outcome == State.COMPLETED and migration.state != State.CANCELLING:
                self.advance(migration, State.SWITCHING)  # every state it went through is in the timeline
            elif outcome == State.CANCELLED and migration.state != State.CANCELLING:
                outcome = State.FAILED  # a move past cancelling that ended on the source failed
            migration.error = error
            self._enter(migration, outcome, error)
        LOG.info("migration %d of %s %s -> %s: %s%s", migration.id, migration.vm, migration.source,
                 migration.destination, outcome, f" ({error})" if error else "")

    def _runs_on(self, mover: Mover, migration: Migration) -> str | None:
        try:
            return mover.where(migration.vm, migration.kind)
        except Exception:  # nobody can say: it is not known to run on the destination
            return None

    def _switch(self, migration: Migration, host: str, trigger: str) -> None:
        """Point the guest's ports at `host` now, and wait until every bridge does (bounded)."""
        try:
            self._switch_over.now(migration.vm, host, trigger).result(timeout=self._switch_wait)
        except FutureTimeout:
            raise TimedOut(f"vm {migration.vm}: the fabric did not switch over to {host} within "
                           f"{self._switch_wait:.0f} s", "migration") from None
        except SdnvirtError:
            raise
        except Exception as error:  # raised on the switch-over thread, logged there
            raise Failed(f"vm {migration.vm}: switch-over to {host} failed: {error}", "migration") from None
        with self._lock:
            migration.fabric_at = host
            if host == migration.destination and migration.trigger is None:
                migration.trigger = trigger  # the switched() signal, should it come late

    # -- the watchdog's view -------------------------------------------------------------------

    def expire(self, migration: Migration) -> None:
        """Its state's deadline passed: note it, and ask its move to stop."""
        with self._lock:
            if migration.state.final or migration.expired:
                return
            migration.expired = str(migration.state)
            migration.timeline.append({"state": str(migration.state), "at": time.time(),
                                       "note": f"the deadline of {migration.state} passed"})
            self._report(migration)
            steps = self._steps.get(migration.id)
            if steps is not None:
                steps.cancel.set()
        self._movers(migration.vm).cancel_move(migration)

    def mover_of(self, migration: Migration) -> Mover:
        return self._movers(migration.vm)


class _Steps(MoveSteps):
    """One migration's link between its kind's move and the driver."""

    def __init__(self, driver: Migrations, migration: Migration):
        self._driver = driver
        self._migration = migration
        self.cancel = threading.Event()

    def enter(self, state: State) -> None:
        self._driver.advance(self._migration, state)
        if state == State.COPYING and self._migration.capture:
            self._driver._captures.wait_started(self._migration)  # a quick move is captured whole

    def switch_over(self, trigger: str) -> None:
        self._driver._switch(self._migration, self._migration.destination, trigger)

    def switch_back(self) -> None:
        self._driver._switch(self._migration, self._migration.source, "rolled-back")

    def mark(self, entry: dict) -> None:
        self._driver.mark(self._migration.vm, entry)

    def remaining(self) -> float:
        return max(0.0, self._driver.deadline(self._migration) - self._driver._clock())
