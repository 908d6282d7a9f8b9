"""What happens in the controller, as a stream operators and tools can follow.

VM lifecycle, bindings and switch-overs, migrations and topology changes are
published here as they happen and fanned out to every subscriber (the API's
`/events`, served as server-sent events). Publishing never blocks the thread
that publishes, which may be a switch-over: a subscriber that does not keep up
loses its oldest events, and is told how many. Every subscriber gets events in
the order of their ids, also when several threads publish at once. The last events are kept, so a
client that reconnects with the id it saw last gets what it missed.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sdnvirt.errors import Unavailable

KINDS = ("vm", "binding", "switch-over", "migration", "topology")
KEPT = 1000  # recent events kept for clients that reconnect
SUBSCRIBER_BACKLOG = 1000  # events waiting for one subscriber, at most
MAX_SUBSCRIBERS = 64  # clients following at once, at most


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    at: float  # epoch seconds
    data: dict


class Subscription:
    """`wake` is called (from the publishing thread) whenever an event is queued, so a reader
    need not block a thread on `next`."""

    def __init__(self, stream: EventStream, kinds: frozenset[str], replay: Iterable[Event],
                 wake: Callable[[], None] = lambda: None):
        self._stream = stream
        self.kinds = kinds
        self._wake = wake
        self._queue: queue.Queue[Event] = queue.Queue(SUBSCRIBER_BACKLOG)
        self.missed = 0  # events dropped because this subscriber fell behind (offers come under the stream's lock)
        for event in replay:
            self.offer(event)

    def offer(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        while True:
            try:
                self._queue.put_nowait(event)
                self._wake()
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.missed += 1
                except queue.Empty:
                    pass

    def next(self, timeout: float) -> Event | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def pending(self) -> list[Event]:
        """What is queued now, without waiting."""
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events

    def close(self) -> None:
        self._stream.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_) -> None:
        self.close()


class EventStream:
    def __init__(self):
        self._ids = itertools.count(int(time.time() * 1000))  # ids still grow across restarts
        self._recent: deque[Event] = deque(maxlen=KEPT)
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()

    def publish(self, kind: str, data: dict) -> None:
        # An event is numbered and handed to every subscriber under one lock, so that
        # subscribers get events in id order whichever thread publishes (offering never blocks).
        with self._lock:
            event = Event(next(self._ids), kind, time.time(), data)
            self._recent.append(event)
            for subscriber in self._subscribers:
                subscriber.offer(event)

    def subscribe(self, kinds: Iterable[str] = KINDS, after: int | None = None,
                  wake: Callable[[], None] = lambda: None) -> Subscription:
        """Events of `kinds` from now on; with `after`, first the kept ones after that id.
        Unavailable while MAX_SUBSCRIBERS follow already."""
        with self._lock:
            if len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise Unavailable(f"{MAX_SUBSCRIBERS} clients follow the events already; try again later", "events")
            replay = [e for e in self._recent if after is not None and e.id > after]
            subscription = Subscription(self, frozenset(kinds), replay, wake)
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
