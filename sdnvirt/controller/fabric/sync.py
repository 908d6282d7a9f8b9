"""Keeping one bridge's flow table equal to its compiled flows.

On (re)connect the reconciler reads the switch's flows; after that it keeps
its own copy of what the switch holds. Each round compiles the desired flows,
compares by flow key, and sends only the difference, deletes before adds, in
one atomic bundle. When nothing differs nothing is sent, which is what makes
a controller restart invisible to traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sdnvirt.controller.fabric.channel import SwitchChannel, SwitchError
from sdnvirt.controller.fabric.flow import Flow

LOG = logging.getLogger(__name__)
RETRY_DELAY = 0.5


@dataclass(frozen=True)
class FlowDiff:
    deletes: tuple[Flow, ...]
    adds: tuple[Flow, ...]

    def __len__(self) -> int:
        return len(self.deletes) + len(self.adds)


def diff_flows(installed: dict[tuple, Flow], desired: frozenset[Flow]) -> FlowDiff:
    """What to delete and what to add (or replace) to turn `installed` into `desired`."""
    wanted = {f.key: f for f in desired}
    deletes = tuple(f for key, f in installed.items() if key not in wanted)
    adds = tuple(f for key, f in wanted.items() if installed.get(key) != f)
    return FlowDiff(deletes, adds)


@dataclass
class SyncStats:
    syncs: int = 0
    flow_mods: int = 0
    failures: int = 0
    last_flow_mods: int = 0
    last_duration_ms: float = 0.0
    connected_at: float | None = None
    # from connection to the first complete table, in milliseconds
    converge_ms: float | None = None


class SwitchSync:
    """The reconciler of one host's integration bridge, on its own thread."""

    def __init__(self, host: str, compile_flows: Callable[[], frozenset[Flow]], ready: threading.Event):
        self.host = host
        self._compile = compile_flows
        self._ready = ready
        self._cond = threading.Condition()
        self._channel: SwitchChannel | None = None
        self._installed: dict[tuple, Flow] | None = None  # None: unknown, read the switch first
        self._dirty = False
        self._stopped = False
        self.stats = SyncStats()
        self.in_sync = False
        self._thread = threading.Thread(target=self._run, name=f"sync-{host}", daemon=True)
        self._thread.start()

    @property
    def channel(self) -> SwitchChannel | None:
        return self._channel

    def attach(self, channel: SwitchChannel) -> None:
        with self._cond:
            self._channel = channel
            self._installed = None
            self._dirty = True
            self.in_sync = False
            self.stats.connected_at = time.monotonic()
            self.stats.converge_ms = None
            self._cond.notify()

    def detach(self, channel: SwitchChannel) -> None:
        with self._cond:
            if self._channel is channel:
                self._channel = None
                self._installed = None
                self.in_sync = False
        channel.close()

    def request(self) -> None:
        """Desired state changed: reconcile soon (requests coalesce)."""
        with self._cond:
            self._dirty = True
            self.in_sync = False
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        self._ready.wait()
        while True:
            with self._cond:
                while not self._stopped and not (self._dirty and self._channel):
                    self._cond.wait()
                if self._stopped:
                    return
                self._dirty = False
                channel = self._channel
            try:
                self._sync(channel)
            except SwitchError as error:
                LOG.warning("host %s: %s; will read the switch again", self.host, error)
                self.stats.failures += 1
                with self._cond:
                    self._installed = None
                    self._dirty = True
                time.sleep(RETRY_DELAY)

    def _sync(self, channel: SwitchChannel) -> None:
        began = time.monotonic()
        with self._cond:
            installed = self._installed
        if installed is None:
            installed = {f.key: f for f in channel.dump_flows()}
        desired = self._compile()
        diff = diff_flows(installed, desired)
        if diff:
            channel.commit_flows(list(diff.deletes), list(diff.adds))
            self.stats.flow_mods += len(diff)
        elapsed = (time.monotonic() - began) * 1000
        with self._cond:
            if self._channel is not channel:
                return  # reconnected meanwhile: the next round reads the switch again
            self._installed = {f.key: f for f in desired}
            self.stats.syncs += 1
            self.stats.last_flow_mods = len(diff)
            self.stats.last_duration_ms = elapsed
            if self.stats.converge_ms is None and self.stats.connected_at is not None:
                self.stats.converge_ms = (time.monotonic() - self.stats.connected_at) * 1000
            self.in_sync = not self._dirty
        if diff:
            LOG.info("host %s: sent %d flow-mods (%d deletes, %d adds) in %.1f ms",
                     self.host, len(diff), len(diff.deletes), len(diff.adds), elapsed)
