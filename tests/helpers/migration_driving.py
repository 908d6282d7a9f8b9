"""The migration driver with a fake guest kind and a fake switch-over, for tests of its logic."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from sdnvirt.controller.migration.driver import Migrations
from sdnvirt.controller.migration.move import Mover, MoveSteps
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State

from helpers.fabric_views import TOPOLOGY

WAIT = 10.0  # seconds a test waits for a migration's thread, at most


class FakeSwitchOver:
    """Switches at once, or never (`stuck`), or fails (`broken`); remembers every order."""

    def __init__(self):
        self.orders: list[tuple[str, str, str]] = []
        self.forgotten: list[str] = []  # VMs whose staged switch-over was dropped
        self.stuck = False
        self.broken = False

    def now(self, vm: str, host: str, trigger: str) -> Future:
        self.orders.append((vm, host, trigger))
        done: Future = Future()
        if self.broken:
            done.set_exception(RuntimeError("the switch went away"))
        elif not self.stuck:
            done.set_result(None)
        return done

    def source_paused(self, vm: str, destination: str, received: float, trigger: str) -> None:
        self.orders.append((vm, destination, trigger))

    def prepare(self, vm: str, host: str) -> None:
        self.orders.append((vm, host, "prepare"))

    def forget(self, vm: str) -> None:
        self.forgotten.append(vm)


class Script(Mover):
    """A guest kind whose move walks the usual steps and raises `failure` at step number `fail_at`."""

    migration_kinds = ("live", "offline")
    STEPS = ("preparing", "copying", "cancel-check", "switching", "switch-over", "finish")

    def __init__(self, fail_at: int | None = None, failure: BaseException | None = None):
        self.fail_at, self.failure = fail_at, failure
        self.location = "hv1"
        self.cancelled: list[int] = []
        self.settled: State | None = None
        self.blocker: threading.Event | None = None  # the move waits on it (a hung hypervisor)
        self.honours_cancel = True
        self.refusal: Exception | None = None  # what check_move raises (a host's libvirtd down)

    def where(self, name: str, migration_kind: str) -> str:
        return self.location

    def check_move(self, migration: Migration) -> None:
        if self.refusal is not None:
            raise self.refusal

    def move(self, migration: Migration, steps: MoveSteps) -> None:
        for number, step in enumerate(self.STEPS):
            if number == self.fail_at:
                raise self.failure
            if step == "preparing":
                steps.enter(State.PREPARING)
                if self.blocker is not None:
                    while not self.blocker.wait(0.01):
                        if self.honours_cancel:
                            steps.check_cancel()
            elif step == "copying":
                steps.enter(State.COPYING)
            elif step == "cancel-check":
                steps.check_cancel()
            elif step == "switching":
                steps.enter(State.SWITCHING)
            elif step == "switch-over":
                steps.switch_over("test")
            elif step == "finish":
                self.location = migration.destination

    def cancel_move(self, migration: Migration) -> None:
        self.cancelled.append(migration.id)

    def settle(self, migration: Migration) -> State | None:
        return self.settled


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCaptures:
    """Captures that say what they were asked, and hand over `marks` at the end."""

    def __init__(self, marks: list[dict] | None = None, failing: bool = False):
        self.calls: list[tuple[str, int]] = []
        self.marks = marks or []
        self.failing = failing

    def begin(self, migration: Migration, on_marks) -> None:
        self.calls.append(("begin", migration.id))
        on_marks([{"at": 1.0, "by": "tap", "event": "no-capture", "host": migration.source, "detail": "a test"}])

    def wait_started(self, migration: Migration) -> None:
        self.calls.append(("wait_started", migration.id))

    def end(self, migration: Migration) -> list[dict]:
        self.calls.append(("end", migration.id))
        if self.failing:
            raise RuntimeError("the capture broke")
        return self.marks


def driver(mover: Script, switch_over: FakeSwitchOver | None = None, history=(), clock=None,
           captures: FakeCaptures | None = None):
    reports: list[dict] = []
    migrations = Migrations(TOPOLOGY, lambda vm: mover, switch_over or FakeSwitchOver(), reports.append,
                            list(history), captures or FakeCaptures(), clock=clock or Clock(), switch_wait=0.2)
    return migrations, reports


def ended(migrations: Migrations, migration: Migration) -> Migration:
    done = migrations.wait(migration.id, WAIT)
    assert done.state.final, done.report()
    stopped = threading.Event()
    for _ in range(int(WAIT * 100)):  # the driving thread lets go right after the final transition
        if not migrations.driven(done):
            break
        stopped.wait(0.01)
    assert not migrations.driven(done)
    return done


def reached(migration: Migration, state: State) -> None:
    """Until the migration's thread has brought it to `state` (bounded)."""
    stopped = threading.Event()
    for _ in range(int(WAIT * 100)):
        if migration.state == state:
            return
        stopped.wait(0.01)
    raise AssertionError(f"migration {migration.id} is {migration.state}, not {state}, after {WAIT}s")
