"""The northbound writer with a fake database that fails where a test tells it to: every write
lands, in order, whatever fails how often; a drain on the way out keeps its deadline and says
what it could not write. The controller's store hands it changes in the order they were made,
also from several threads."""

from __future__ import annotations

import threading
import time

import pytest

from sdnvirt.controller.state import MemoryStore
from sdnvirt.controller.store import NorthboundStore
from sdnvirt.northbound import writer as writer_module
from sdnvirt.northbound.database import NorthboundUnavailable
from sdnvirt.northbound.writer import NorthboundWriter
from sdnvirt.vswitch.ports import Binding

from helpers.fabric_views import TOPOLOGY, port_id, view
from helpers.guests import wait_until
from helpers.interleaving import run_in_threads

WAIT = 5.0
A1 = port_id("a1")
AWAY = NorthboundUnavailable("northbound database unix:nb.sock: no server took a transaction within 2s")
REFUSED = RuntimeError('OVSDB Error: {"details":"Transaction causes multiple rows in \\"Binding\\" table to have '
                       'identical values","error":"constraint violation"}')
ERRORS = [AWAY, REFUSED, ConnectionResetError("reset by peer"), KeyError("Logical_Port")]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(writer_module, "RETRY_LIMIT", 0.04)


class FakeDatabase:
    """Keyed states, set by writes; fails the attempts a test chooses. A "lost reply" applies
    the write and then fails, as a server that died before it answered."""

    def __init__(self):
        self.state: dict[str, object] = {}
        self.applied: list[tuple[str, object]] = []  # every write that took effect, in order
        self.attempts = 0
        self.failing: Exception | None = None
        self.refusing: dict[str, Exception] = {}  # keys whose every write fails so
        self.lost_replies = 0
        self.fail_each_once = False
        self._seen: set[tuple[str, object]] = set()
        self._lock = threading.Lock()

    def setter(self, key: str, value: object):
        def write() -> None:
            with self._lock:
                self.attempts += 1
                error = self.failing
                once = self.fail_each_once and (key, value) not in self._seen
                self._seen.add((key, value))
                lose = self.lost_replies > 0
                self.lost_replies -= lose
            if error is not None:
                raise error
            if key in self.refusing:
                raise self.refusing[key]
            if once:
                raise RuntimeError(f"first attempt at {key}={value} fails")
            with self._lock:
                self.state[key] = value
                self.applied.append((key, value))
            if lose:
                raise NorthboundUnavailable("the server went away before it answered")
        return write


@pytest.fixture
def writer():
    writer = NorthboundWriter()
    yield writer
    writer.drain(0)


def distinct(applied: list) -> list:
    """Writes that took effect, with repeats of one write (a retry after a lost reply) as one."""
    return [w for i, w in enumerate(applied) if i == 0 or applied[i - 1] != w]


def test_writes_land_in_the_order_they_were_asked_for(writer):
    db = FakeDatabase()
    wanted = [(f"k{n % 7}", n) for n in range(300)]
    for key, value in wanted:
        writer.write(db.setter(key, value), f"{key}={value}")
    assert writer.drain(WAIT) == []
    assert db.applied == wanted


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_write_that_fails_is_tried_again_in_order_until_it_lands(writer, error):
    db = FakeDatabase()
    db.fail_each_once = True
    wanted = [(f"k{n % 3}", n) for n in range(50)]
    for key, value in wanted:
        writer.write(db.setter(key, value), f"{key}={value}")
    assert writer.drain(WAIT) == []
    assert db.applied == wanted and writer.failures == 50 and writer.written == 50


def test_while_no_server_answers_nothing_overtakes_the_write_at_the_head(writer):
    db = FakeDatabase()
    db.failing = AWAY
    for n in range(5):
        writer.write(db.setter("migration 1", n), f"migration 1 step {n}")
    wait_until(lambda: writer.failures >= 2 * writer_module.REFUSALS, timeout=WAIT, interval=0.005)  # and again
    assert db.applied == [] and writer.pending == 5 and writer.dropped == 0
    assert writer.error == f"NorthboundUnavailable: {AWAY}"
    db.failing = None
    wait_until(lambda: writer.pending == 0, timeout=WAIT, interval=0.005)
    assert db.applied == [("migration 1", n) for n in range(5)]  # unkeyed: every step lands
    assert writer.error is None


@pytest.mark.parametrize("error", ERRORS[1:], ids=lambda e: type(e).__name__)
def test_a_write_refused_every_time_is_dropped_loudly_and_the_rest_land(writer, error, caplog):
    db = FakeDatabase()
    db.refusing["migration 2"] = error
    writer.write(db.setter("bindings hv1", 1), "the bindings of hv1")
    writer.write(db.setter("migration 2", "rolling-back"), "migration 2")  # say, a state the schema lacks
    writer.write(db.setter("bindings hv1", 2), "the bindings of hv1")
    assert writer.drain(WAIT) == []
    assert db.applied == [("bindings hv1", 1), ("bindings hv1", 2)]
    assert writer.dropped == 1 and writer.failures == writer_module.REFUSALS
    assert f"migration 2 is NOT written: refused {writer_module.REFUSALS} times" in caplog.text


def test_a_write_whose_reply_was_lost_is_sent_again_harmlessly(writer):
    db = FakeDatabase()
    db.lost_replies = 3
    wanted = [("bindings hv1", n) for n in range(10)]
    for key, value in wanted:
        writer.write(db.setter(key, value), f"{key}={value}")
    assert writer.drain(WAIT) == []
    assert distinct(db.applied) == wanted and len(db.applied) == 13
    assert db.state == {"bindings hv1": 9}


def test_a_keyed_write_waiting_behind_a_failure_is_replaced_by_a_newer_one(writer):
    db = FakeDatabase()
    db.failing = AWAY
    for n in range(100):
        writer.write(db.setter("bindings hv1", n), "the bindings of hv1", key=("bindings", "hv1"))
        writer.write(db.setter("migration 1", n), "migration 1")  # unkeyed: none replaced
    writer.write(db.setter("bindings hv1", 100), "the bindings of hv1", key=("bindings", "hv1"))
    writer.write(db.setter("bindings hv1", 101), "the bindings of hv1", key=("bindings", "hv1"))
    wait_until(lambda: writer.failures >= 1, timeout=WAIT, interval=0.005)
    db.failing = None
    assert writer.drain(WAIT) == []
    # Only the two last bindings were one after the other: the newer replaced the older.
    assert [v for k, v in db.applied if k == "bindings hv1"] == [*range(100), 101]
    assert [v for k, v in db.applied if k == "migration 1"] == list(range(100))
    assert db.applied[-1] == ("bindings hv1", 101)


def test_a_drain_keeps_its_deadline_and_says_what_was_not_written():
    db = FakeDatabase()
    db.failing = AWAY
    writer = NorthboundWriter()
    writer.write(db.setter("bindings hv1", 1), "the bindings of hv1")
    writer.write(db.setter("migration 3", "completed"), "migration 3")
    began = time.monotonic()
    assert writer.drain(0.5) == ["the bindings of hv1", "migration 3"]
    assert 0.5 <= time.monotonic() - began < 0.5 + WAIT
    attempts = db.attempts
    writer.write(db.setter("bindings hv1", 2), "the bindings of hv1")  # after the drain: refused, logged
    time.sleep(0.1)  # the thread has ended: nothing more is tried
    assert db.attempts == attempts and db.applied == []


def test_a_drain_does_not_wait_out_a_long_backoff(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_FIRST", 60.0)
    monkeypatch.setattr(writer_module, "RETRY_LIMIT", 60.0)
    db = FakeDatabase()
    db.fail_each_once = True
    writer = NorthboundWriter()
    writer.write(db.setter("bindings hv1", 1), "the bindings of hv1")
    wait_until(lambda: writer.failures == 1, timeout=WAIT, interval=0.005)  # now waiting 60 s
    began = time.monotonic()
    assert writer.drain(WAIT) == []
    assert time.monotonic() - began < 2.0 and db.applied == [("bindings hv1", 1)]


# -- the store hands the writer its changes -------------------------------------------------------

class FakeNorthbound:
    """What the store writes, as states: each host's bindings, each port's active host."""

    def __init__(self):
        self.bindings: dict[str, list[dict]] = {}
        self.active_hosts: dict[str, str] = {}
        self.written: list[dict[str, str]] = []  # every set_active, in the order it came

    def active(self) -> dict[str, str]:
        return {}

    def set_bindings(self, host: str, rows: list[dict]) -> None:
        self.bindings[host] = rows

    def set_active(self, placements: dict[str, str]) -> None:
        self.written.append(placements)
        self.active_hosts.update(placements)


def test_the_store_writes_changes_in_the_order_it_made_them_also_from_several_threads(monkeypatch):
    """Switch-overs that move one port back and forth, from two threads at once, where a thread
    may lose the processor between making its change and queueing its write (here: every move
    to hv1 does): the database must see the moves in the order the store made them."""
    made: list[str] = []
    activate = MemoryStore.activate

    def noting_the_order(store, port_ids, host):
        with noting:
            change = activate(store, port_ids, host)
            if change:
                made.append(host)
        return change

    remember = NorthboundStore._remember

    def slow_to_queue_moves_to_hv1(store, change):
        if change and change.view.active.get(A1) == "hv1":
            time.sleep(0.001)
        remember(store, change)

    noting = threading.Lock()
    monkeypatch.setattr(MemoryStore, "activate", noting_the_order)
    monkeypatch.setattr(NorthboundStore, "_remember", slow_to_queue_moves_to_hv1)
    northbound = FakeNorthbound()
    store = NorthboundStore(northbound, TOPOLOGY)
    migrating = view(extra=(Binding(A1, "hv3", "vnet9", 7, "02:00:00:00:0a:01", "a1"),))  # bound on two hosts
    for ports in migrating.ports.values():
        store.set_host_ports(ports)
    run_in_threads(2, lambda n: [store.activate([A1], ("hv1", "hv3")[(i + n) % 2]) for i in range(100)])
    assert store.drain(WAIT) == []
    assert len(made) > 10  # the threads did race
    assert [w[A1] for w in northbound.written if A1 in w][-len(made):] == made
    assert northbound.active_hosts[A1] == store.view().active[A1]
    assert {h: [r["interface"] for r in rows] for h, rows in northbound.bindings.items()} == {
        h: [b.interface for b in p.bindings] for h, p in store.view().ports.items()}
