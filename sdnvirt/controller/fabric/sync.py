"""Keeping one bridge's flow table equal to its compiled flows.

On (re)connect the reconciler reads the switch's flows; after that it keeps
its own copy of what the switch holds and of the desired flows, owner by
owner. A round recompiles the owners a change touched (everything only at
the first round or after a failure: a bridge that reconnects is compared
with what it was compiled to, plus what changed while it was away), compares
by flow key, and sends only the difference, deletes before adds, in one
atomic bundle. When nothing differs nothing is sent, which is what makes a
controller restart invisible to traffic.

Whatever fails in a round (the switch, the compiler, a bug) fails that bridge's
round only: the round is released, the bridge says why in its state and error,
and its thread tries again after a backoff, reading the switch and compiling
everything afresh, until it is in sync again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sdnvirt.backoff import Backoff
from sdnvirt.controller.fabric.channel import Commit, StagedBundle, SwitchChannel, SwitchError
from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.state import OwnerKey

LOG = logging.getLogger(__name__)
RETRY_FIRST = 0.5  # seconds after a failed round before the next, doubling with each failure...
RETRY_LIMIT = 10.0  # ...up to this
# A staged round older than this is not committed (Open vSwitch forgets a bundle idle for 10 s).
STAGED_FRESH = 8.0

# A bridge's sync state, as `/status` shows it.
DISCONNECTED = "disconnected"  # no OpenFlow connection
SYNCING = "syncing"  # a change is on its way to the switch
IN_SYNC = "in_sync"
RETRYING = "retrying"  # the last round failed (see `error`): tried again after a backoff

# (owners to compile, or None for all) -> those owners' flows
Compiler = Callable[[frozenset[OwnerKey] | None], dict[OwnerKey, frozenset[Flow]]]


@dataclass(frozen=True)
class FlowDiff:
    deletes: tuple[Flow, ...]
    adds: tuple[Flow, ...]

    def __len__(self) -> int:
        return len(self.deletes) + len(self.adds)


def diff_flows(installed: dict[tuple, Flow], old: list[Flow], new: list[Flow]) -> FlowDiff:
    """What to delete and add (or replace) so the switch holds `new` where it held `old`."""
    wanted = {f.key: f for f in new}
    deletes = tuple(f for f in old if f.key not in wanted and f.key in installed)
    adds = tuple(f for key, f in wanted.items() if installed.get(key) != f)
    return FlowDiff(deletes, adds)


def owners_diff(installed: dict[tuple, Flow], desired: dict[OwnerKey, frozenset[Flow]],
                changed: dict[OwnerKey, frozenset[Flow]]) -> FlowDiff:
    """What makes a switch that holds `installed` (the owners' `desired` flows and maybe more)
    hold the changed owners' new flows, the other owners' left as they are."""
    old = [f for owner in changed for f in desired.get(owner, frozenset())]
    return diff_flows(installed, old, [f for flows in changed.values() for f in flows])


def whole_diff(installed: dict[tuple, Flow], desired: dict[OwnerKey, frozenset[Flow]]) -> FlowDiff:
    """What makes a switch hold exactly the desired flows: everything it holds that nobody
    wants goes, foreign flows too."""
    return diff_flows(installed, list(installed.values()), [f for flows in desired.values() for f in flows])


def take_in(installed: dict[tuple, Flow], diff: FlowDiff) -> None:
    """What a switch holds once it applied the diff (in place)."""
    for rule in diff.deletes:
        installed.pop(rule.key, None)
    installed.update({rule.key: rule for rule in diff.adds})


@dataclass
class SyncStats:
    syncs: int = 0
    flow_mods: int = 0
    failures: int = 0
    last_flow_mods: int = 0
    last_duration_ms: float = 0.0
    connected_at: float | None = None
    # from connection to the first complete table, in milliseconds, and when that was (time.time():
    # bridges converging together are compared by it)
    converge_ms: float | None = None
    converged_at: float | None = None


class SwitchSync:
    """The reconciler of one host's integration bridge, on its own thread.

    One round at a time holds the bridge: the thread's, or a caller's (`sending`).
    Everything the thread and callers share is guarded by `_cond`, stats included.
    """

    def __init__(self, host: str, compile_owners: Compiler, ready: threading.Event,
                 on_synced: Callable[[str, frozenset[OwnerKey]], None]):
        self.host = host
        self._compile = compile_owners
        self._ready = ready
        self._on_synced = on_synced
        self._cond = threading.Condition()
        self._round = threading.Lock()
        self._channel: SwitchChannel | None = None
        self._installed: dict[tuple, Flow] | None = None  # None: unknown, read the switch first
        self._desired: dict[OwnerKey, frozenset[Flow]] | None = None  # None: compile everything
        self._pending: set[OwnerKey] | None = set()  # None: everything
        self._generation = 0  # counts the changes of what the bridge is known to hold (staged rounds check it)
        self._stopped = False
        self._backoff = Backoff(RETRY_FIRST, RETRY_LIMIT)
        self._retry_at = 0.0  # monotonic time before which the thread does not try again
        self.stats = SyncStats()
        self.in_sync = False
        self.error: str | None = None  # why the last round failed, until one succeeds
        threading.Thread(target=self._run, name=f"sync-{host}", daemon=True).start()

    @property
    def channel(self) -> SwitchChannel | None:
        return self._channel

    @property
    def state(self) -> str:
        with self._cond:
            if self._channel is None:
                return DISCONNECTED
            if self.error is not None:
                return RETRYING
            return IN_SYNC if self.in_sync else SYNCING

    def programmed(self) -> frozenset[OwnerKey]:
        """The owners whose flows the bridge holds now, as desired (none while it is not in sync)."""
        with self._cond:
            if self._channel is None or not self.in_sync or self._desired is None:
                return frozenset()
            return frozenset(self._desired)

    def attach(self, channel: SwitchChannel) -> None:
        with self._cond:
            self._channel = channel
            self._installed = None
            self._generation += 1
            self.in_sync = False
            self.error = None
            self._retry_at = 0.0
            self._backoff.succeeded()
            self.stats.connected_at = time.monotonic()
            self.stats.converge_ms = self.stats.converged_at = None
            self._cond.notify()

    def detach(self, channel: SwitchChannel) -> None:
        with self._cond:
            if self._channel is channel:
                self._channel = None
                self._installed = None
                self._generation += 1
                self.in_sync = False
        channel.close()

    def request(self, owners: frozenset[OwnerKey] | None = None) -> None:
        """Desired state changed for these owners (None: all): reconcile soon; requests coalesce.
        A bridge that is retrying after a failure takes them at its next try."""
        with self._cond:
            self._merge(owners)
            self.in_sync = False
            self._cond.notify()

    @contextmanager
    def sending(self, owners: frozenset[OwnerKey] | None, staged: StagedRound | None = None) -> Iterator[Sending]:
        """Reconcile these owners in the caller's thread, now (a switch-over cannot wait for
        a backoff): the difference is sent on entry, and `wait()` waits until the switch has
        it. The bridge's round is held until the block ends, so a caller can send to every
        bridge before waiting for any. A failure is this bridge's, never the caller's: it is
        recorded and retried in the background. A round `staged` for these owners is committed
        instead, if it still holds. The owners are asked for once the round is the caller's: asked
        before, the bridge's thread could take them first and stale the staged round."""
        with self._round:
            self.request(owners)
            round_ = self._attempt(self._staged_round, staged, owners) if staged is not None else _STALE
            sending = Sending(self, self._attempt(self._begin_round) if round_ is _STALE else round_,
                              staged=round_ is not _STALE and round_ is not None)
            try:
                yield sending
            finally:
                sending.abandon()

    def stage(self, changed: dict[OwnerKey, frozenset[Flow]]) -> StagedRound | None:
        """Open on the switch a bundle of what these owners' flows (compiled against a future
        view: a switch-over's) would change, to be committed by `sending`; None when nothing
        would change or the bridge is not in sync to compare with. Raises SwitchError."""
        with self._round:
            with self._cond:
                channel, installed, desired = self._channel, self._installed, self._desired
                generation = self._generation
            if channel is None or installed is None or desired is None:
                return None
            diff = owners_diff(installed, desired, changed)
            if not diff:
                return None
            bundle = channel.stage_flows(list(diff.deletes), list(diff.adds))
            return StagedRound(channel, generation, dict(changed), diff, bundle)

    def _staged_round(self, staged: StagedRound, owners: frozenset[OwnerKey] | None) -> _Round | object:
        """Commit a staged round if the bridge is as it was when it was staged (same connection,
        nothing applied since, the same owners) and its bundle is fresh; else discard it and
        say so (_STALE): the caller makes a round as usual."""
        began = time.monotonic()
        with self._cond:
            holds = (staged.channel is self._channel and staged.generation == self._generation
                     and self._pending is not None and owners == frozenset(staged.changed)
                     and began - staged.bundle.staged_at < STAGED_FRESH and staged.bundle.usable)
            if holds:
                self._pending -= owners
                installed, desired = self._installed, self._desired
        if not holds:
            staged.bundle.discard()
            return _STALE
        commit = staged.bundle.commit()
        return _Round(staged.channel, installed, {**desired, **staged.changed}, staged.diff, began, commit)

    def wake(self) -> None:
        """Look again whether a round is due (the fabric became ready)."""
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _merge(self, owners: frozenset[OwnerKey] | None) -> None:
        if owners is None or self._pending is None:
            self._pending = None
        else:
            self._pending |= owners

    def _attempt(self, step: Callable, *args):
        """Run a step of a round; what it raises fails the round (None), and nothing else."""
        try:
            return step(*args)
        except Exception as error:  # the switch, the compiler or a bug: this bridge retries, and says why
            self._failed(error)
            return None

    def _failed(self, error: Exception) -> None:
        """Forget what the switch holds and what was compiled: the next round starts afresh."""
        why = f"{type(error).__name__}: {error}"
        with self._cond:
            delay = self._backoff.failed()
            self.stats.failures += 1
            self.error = why
            self._retry_at = time.monotonic() + delay
            self._installed = None
            self._generation += 1
            self._desired = None
            self._pending = None
            self.in_sync = False
            self._cond.notify()
        LOG.warning("host %s: sync round failed: %s; trying again in %.1fs", self.host, why, delay,
                    exc_info=not isinstance(error, SwitchError))

    def _forget(self) -> None:
        """A round was sent but not waited for: what the switch holds is unknown."""
        with self._cond:
            self._installed = None
            self._generation += 1
            self._pending = None
            self.in_sync = False
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._due():
                    self._cond.wait(self._until_retry())
                if self._stopped:
                    return
            with self._round:
                self._attempt(self._round_if_pending)

    def _due(self) -> bool:
        return (self._ready.is_set() and self._channel is not None and self._work_pending()
                and time.monotonic() >= self._retry_at)

    def _until_retry(self) -> float | None:
        """How long a pending retry still waits; None: until notified."""
        remaining = self._retry_at - time.monotonic()
        return remaining if remaining > 0 else None

    def _work_pending(self) -> bool:
        """Owners to compile, or a switch to read (it connected, or a round's outcome is unknown)."""
        return self._pending is None or bool(self._pending) or self._installed is None

    def _round_if_pending(self) -> int:
        round_ = self._begin_round()
        return self._end_round(round_) if round_ is not None else 0

    def _begin_round(self) -> _Round | None:
        """Compile what changed, compare, and send the difference (not waiting for it)."""
        with self._cond:
            channel = self._channel
            if channel is None or not self._work_pending() or not self._ready.is_set():
                return None
            owners, self._pending = self._pending, set()
            installed, desired = self._installed, self._desired
        began = time.monotonic()
        read = installed is None
        if read:
            installed = {f.key: f for f in channel.dump_flows()}
        if owners is None or desired is None:
            desired = self._compile(None)
            diff = whole_diff(installed, desired)
        else:
            changed = self._compile(frozenset(owners)) if owners else {}
            merged = {**desired, **changed}
            # A switch just read may hold anything: it is compared whole.
            diff = whole_diff(installed, merged) if read else owners_diff(installed, desired, changed)
            desired = merged
        commit = channel.send_flows(list(diff.deletes), list(diff.adds)) if diff else None
        return _Round(channel, installed, desired, diff, began, commit)

    def _end_round(self, round_: _Round) -> int:
        """Wait for the switch to apply the round, and take note of what it holds now."""
        if round_.commit is not None:
            round_.commit.wait()
        diff, installed = round_.diff, round_.installed
        take_in(installed, diff)  # in place, not copied: only the round's holder reads it
        elapsed = (time.monotonic() - round_.began) * 1000
        with self._cond:
            if self._channel is not round_.channel:
                return len(diff)  # reconnected meanwhile: the next round reads the switch again
            self._installed, self._desired = installed, {o: f for o, f in round_.desired.items() if f}
            self._generation += 1
            self.stats.syncs += 1
            self.stats.flow_mods += len(diff)
            self.stats.last_flow_mods = len(diff)
            self.stats.last_duration_ms = elapsed
            if self.stats.converge_ms is None and self.stats.connected_at is not None:
                self.stats.converge_ms = (time.monotonic() - self.stats.connected_at) * 1000
                self.stats.converged_at = time.time()
            self.in_sync = not self._work_pending()
            self.error = None
            self._retry_at = 0.0
            self._backoff.succeeded()
            programmed = frozenset(self._desired)
        if diff:
            LOG.info("host %s: sent %d flow-mods (%d deletes, %d adds) in %.1f ms",
                     self.host, len(diff), len(diff.deletes), len(diff.adds), elapsed)
        self._on_synced(self.host, programmed)  # must not block: it runs inside the round
        return len(diff)


class Sending:
    """A caller's round on one bridge: sent, and not yet waited for."""

    def __init__(self, sync: SwitchSync, round_: _Round | None, staged: bool = False):
        self._sync = sync
        self._round = round_
        self.staged = staged  # the round committed a staged one
        self.sent: float | None = None  # time.monotonic() when the round's bundle was handed to the connection
        self.committed: float | None = None  # and when the switch confirmed it

    def wait(self) -> int:
        """The flow-mods the round sent, once the switch has them (0 if it could not)."""
        round_, self._round = self._round, None
        if round_ is None:
            return 0
        sent = self._sync._attempt(self._sync._end_round, round_) or 0
        if sent and round_.commit is not None:
            self.sent, self.committed = round_.commit.sent, round_.commit.answered
        return sent

    def abandon(self) -> None:
        if self._round is not None:
            self._round = None
            self._sync._forget()


@dataclass
class StagedRound:
    """A round made ahead against a future desired state, its bundle open on the switch."""

    channel: SwitchChannel
    generation: int  # the bridge's, when it was staged
    changed: dict[OwnerKey, frozenset[Flow]]
    diff: FlowDiff
    bundle: StagedBundle


_STALE = object()  # a staged round that no longer holds


@dataclass
class _Round:
    channel: SwitchChannel
    installed: dict[tuple, Flow]
    desired: dict[OwnerKey, frozenset[Flow]]
    diff: FlowDiff
    began: float
    commit: Commit | None
