"""The controller's event stream: fan-out, filtering, replay, and a slow subscriber."""

import time

from sdnvirt.controller import events
from sdnvirt.controller.events import EventStream

from helpers.interleaving import run_in_threads


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


def test_events_reach_subscribers_in_id_order_also_from_concurrent_publishers(monkeypatch):
    """One publisher is slow to hand its events over (the moment a thread loses the interpreter
    between taking an id and offering the event): the others' later events must not overtake."""
    monkeypatch.setattr(events, "SUBSCRIBER_BACKLOG", 4000)
    offer = events.Subscription.offer

    def slow_for_the_first_publisher(subscription, event):
        time.sleep(0.001 if event.data["thread"] == 0 else 0)
        offer(subscription, event)

    monkeypatch.setattr(events.Subscription, "offer", slow_for_the_first_publisher)
    stream = EventStream()
    subscriber = stream.subscribe()
    run_in_threads(4, lambda n: [stream.publish("vm", {"thread": n, "n": i}) for i in range(200)])
    ids = [e.id for e in iter(lambda: subscriber.next(0), None)]
    assert len(ids) == 800 and subscriber.missed == 0
    assert ids == sorted(ids)
    again = stream.subscribe(after=0)
    assert [e.id for e in iter(lambda: again.next(0), None)] == ids  # what is kept, in that order
