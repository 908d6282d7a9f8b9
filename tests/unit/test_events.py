"""The controller's event stream: fan-out, filtering, replay, and a slow subscriber."""

import time

from sdnvirt.controller import events
from sdnvirt.controller.events import EventStream


def test_every_subscriber_gets_the_kinds_it_follows_in_order():
    stream = EventStream()
    everything, migrations = stream.subscribe(), stream.subscribe(["migration"])
    stream.publish("vm", {"vm": "a"})
    stream.publish("migration", {"vm": "a", "result": "running"})
    stream.publish("binding", {"port": "p"})
    assert [e.kind for e in iter(lambda: everything.next(0), None)] == ["vm", "migration", "binding"]
    assert [e.data for e in iter(lambda: migrations.next(0), None)] == [{"vm": "a", "result": "running"}]


def test_a_client_that_comes_back_gets_what_it_missed_and_nothing_twice():
    stream = EventStream()
    with stream.subscribe() as first:
        stream.publish("vm", {"n": 1})
        seen = first.next(0)
    stream.publish("vm", {"n": 2})
    stream.publish("vm", {"n": 3})
    again = stream.subscribe(after=seen.id)
    assert [e.data["n"] for e in iter(lambda: again.next(0), None)] == [2, 3]
    assert stream.subscribers == 1  # the first one left


def test_a_subscriber_that_falls_behind_loses_its_oldest_events_and_is_told(monkeypatch):
    monkeypatch.setattr(events, "SUBSCRIBER_BACKLOG", 3)
    stream = EventStream()
    slow = stream.subscribe()
    for n in range(5):
        stream.publish("vm", {"n": n})  # never blocks the publisher
    assert [e.data["n"] for e in iter(lambda: slow.next(0), None)] == [2, 3, 4]
    assert slow.missed == 2


def test_ids_grow_across_a_restart():
    before = EventStream()
    before.publish("vm", {})
    last = before.subscribe(after=0).next(0).id
    time.sleep(0.01)  # a restarted controller comes far later than this
    after = EventStream()
    after.publish("vm", {})
    assert after.subscribe(after=0).next(0).id > last
