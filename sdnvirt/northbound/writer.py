"""One ordered writer for the northbound database.

What the controller records there (the bindings each host shows, where ports
are active, every migration's report) goes through one writer, on a thread of
its own so the flows never wait for the database. Writes land one at a time in
the order they were asked for. A write that fails (the server is away, a Raft
leader is being elected, a reply was lost) stays at the head of the line and is
tried again after a backoff until it lands; the ones behind it wait. Every write
sets a state rather than applying a delta, so trying one again after a lost
reply is harmless.

While no server answers, a write is tried again for as long as it takes. A write
the database refuses (or that fails for any other reason) is tried again too, since
a refusal can come from a copy of the database that a lost reply left stale; but
one refused REFUSALS times in a row will never land, so it is dropped, loudly,
rather than holding up every write behind it.

A keyed write (one host's bindings) that is followed at once by another of the
same key is dropped for it: the database then skips a state, but never shows
one the controller did not have, and a long outage does not pile up copies.
Unkeyed writes (a migration's every transition) all land.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sdnvirt.backoff import Backoff
from sdnvirt.northbound.database import NorthboundUnavailable

LOG = logging.getLogger(__name__)
RETRY_FIRST = 0.5  # seconds after a failed write before it is tried again, doubling...
RETRY_LIMIT = 10.0  # ...up to this
REFUSALS = 3  # attempts at a write that fail other than for want of a server, before it is dropped


@dataclass(frozen=True)
class Write:
    change: Callable[[], None]
    what: str  # for the log, when it fails or is never written
    key: Hashable | None = None


class NorthboundWriter:
    def __init__(self):
        self._queue: deque[Write] = deque()
        self._cond = threading.Condition()
        self._writing = False  # the head of the queue is being written now
        self._draining = False
        self._stopped = False
        self._backoff = Backoff(RETRY_FIRST, RETRY_LIMIT)
        self._refusals = 0  # of the write at the head of the queue, in a row
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self.error: str | None = None  # why the head of the queue failed last, until it lands
        threading.Thread(target=self._run, name="northbound-writer", daemon=True).start()

    def write(self, change: Callable[[], None], what: str, key: Hashable | None = None) -> None:
        """Write after every write asked for before; never blocks."""
        with self._cond:
            if self._stopped:
                LOG.error("northbound writer stopped: %s is not written", what)
                return
            waiting = len(self._queue) - self._writing  # those not being written now
            if key is not None and waiting and self._queue[-1].key == key:
                self._queue[-1] = Write(change, what, key)  # superseded before it was written
            else:
                self._queue.append(Write(change, what, key))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def status(self) -> dict:
        """For `/status`: writes waiting, attempts that failed, writes dropped, the last error."""
        with self._cond:
            return {"waiting": len(self._queue), "failures": self.failures, "dropped": self.dropped,
                    "error": self.error}

    def drain(self, timeout: float) -> list[str]:
        """Wait until every write asked for has landed (retrying at once, not after a long
        backoff), for at most `timeout` seconds; then stop. What was not written, in order
        (the first may still land: its answer was not in yet)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining = True
            self._cond.notify_all()
            while self._queue and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(remaining)
            self._stopped = True
            self._cond.notify_all()
            return [w.what for w in self._queue]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._queue or self._stopped):
                    self._cond.wait()
                if self._stopped:
                    return
                write = self._queue[0]
                self._writing = True
            try:
                write.change()
            except NorthboundUnavailable as error:  # no server: the same write again, later
                self._failed(write, error, refused=False)
                continue
            except Exception as error:  # refused, or a bug: again, a few times
                self._failed(write, error, refused=True)
                continue
            with self._cond:
                self._queue.popleft()
                self._writing = False
                self._refusals = 0
                self.written += 1
                self.error = None
                self._backoff.succeeded()
                self._cond.notify_all()

    def _failed(self, write: Write, error: Exception, refused: bool) -> None:
        why = f"{type(error).__name__}: {error}"
        with self._cond:
            self._writing = False
            self.failures += 1
            self.error = why
            self._refusals = self._refusals + 1 if refused else 0
            draining = self._draining
            delay = RETRY_FIRST if draining else self._backoff.failed()
            superseded = write.key is not None and len(self._queue) > 1 and self._queue[1].key == write.key
            dropped = not superseded and self._refusals >= REFUSALS
            if superseded or dropped:
                self._queue.popleft()
                self._refusals = 0
                self.dropped += dropped
                self._cond.notify_all()
            waiting = len(self._queue)
        if dropped:
            LOG.error("northbound: %s is NOT written: refused %d times, the last: %s (%d writes waiting)",
                      write.what, REFUSALS, why, waiting)
        else:
            LOG.warning("northbound: writing %s failed: %s; trying again in %.1fs (%d writes waiting)",
                        write.what, why, delay, waiting)
        with self._cond:  # a drain that begins cuts a long backoff short
            self._cond.wait_for(lambda: self._stopped or self._draining != draining, delay)
