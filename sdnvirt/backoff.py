"""How long to wait before trying again what failed: doubling, up to a bound.

A part that retries forever (a bridge's sync round, a northbound write) must
neither hammer what is failing nor wait so long that it misses the repair;
each keeps one Backoff and says when an attempt failed or succeeded.
"""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float, limit: float):
        self.first = first
        self.limit = limit
        self._next = first

    def failed(self) -> float:
        """An attempt failed: the seconds to wait before the next one."""
        delay, self._next = self._next, min(self._next * 2, self.limit)
        return delay

    def succeeded(self) -> None:
        self._next = self.first
