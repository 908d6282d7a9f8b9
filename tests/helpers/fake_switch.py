"""A bridge's flow table behind the channel interface the reconciler uses, failing where a
test tells it to: for unit tests of the sync rounds, never for what a real switch does."""

from __future__ import annotations

import threading
import time

from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.fabric.listener import SwitchPeer

# Where a switch can fail a round: reading its flows, taking the bundle, refusing the
# bundle (nothing applied), or applying it and losing the answer.
SWITCH_STEPS = ("dump", "send", "commit", "commit_reply")
# And a staged round: refusing to stage the bundle, or taking no commit for it (gone).
STAGING_STEPS = ("stage", "staged_commit")


class FakeSwitch:
    def __init__(self, dpid: int = 1):
        self.dpid = dpid
        self.peer = SwitchPeer("fake")  # on a unix socket: no certificate
        self.flows: dict[tuple, Flow] = {}
        self.bundles = 0  # bundles applied
        self.sent = 0  # bundles sent whole (open, flow-mods and commit at once)
        self.staged = 0  # bundles staged
        self.commits = 0  # commit messages for staged bundles
        self.discarded = 0  # staged bundles discarded
        self.injected: list[tuple[int, bytes]] = []  # frames run through the pipeline (packet-outs)
        self.closed = False
        self._failing: dict[str, Exception] = {}
        self._lock = threading.Lock()

    def fail(self, step: str, error: Exception) -> None:
        """Raise `error` at `step` from now on, until clear()."""
        assert step in SWITCH_STEPS + STAGING_STEPS, step
        with self._lock:
            self._failing[step] = error

    def clear(self) -> None:
        with self._lock:
            self._failing.clear()

    def _step(self, step: str) -> None:
        with self._lock:
            error = self._failing.get(step)
        if error is not None:
            raise error

    def dump_flows(self, timeout: float = 10.0) -> list[Flow]:
        self._step("dump")
        with self._lock:
            return list(self.flows.values())

    def send_flows(self, deletes: list[Flow], adds: list[Flow]) -> FakeCommit:
        self._step("send")
        self.sent += 1
        return FakeCommit(self, list(deletes), list(adds))

    def stage_flows(self, deletes: list[Flow], adds: list[Flow], timeout: float = 10.0) -> FakeStagedBundle:
        self._step("stage")
        self.staged += 1
        return FakeStagedBundle(self, list(deletes), list(adds))

    def inject(self, in_port: int, frame: bytes) -> None:
        self.injected.append((in_port, frame))

    def close(self) -> None:
        self.closed = True


class FakeStagedBundle:
    def __init__(self, switch: FakeSwitch, deletes: list[Flow], adds: list[Flow]):
        self.switch = switch
        self.deletes = deletes
        self.adds = adds
        self.staged_at = time.monotonic()
        self.expired = False  # the switch forgot it (a test says so)

    @property
    def usable(self) -> bool:
        return not self.switch.closed and not self.expired

    def commit(self) -> FakeCommit:
        self.switch._step("staged_commit")
        self.switch.commits += 1
        return FakeCommit(self.switch, self.deletes, self.adds)

    def discard(self) -> None:
        self.switch.discarded += 1


class FakeCommit:
    def __init__(self, switch: FakeSwitch, deletes: list[Flow], adds: list[Flow]):
        self.switch = switch
        self.deletes = deletes
        self.adds = adds
        self.sent = time.monotonic()
        self.answered: float | None = None

    def wait(self, timeout: float = 10.0) -> None:
        self.switch._step("commit")
        with self.switch._lock:
            for rule in self.deletes:  # a strict delete: by key
                self.switch.flows.pop(rule.key, None)
            self.switch.flows.update((rule.key, rule) for rule in self.adds)
            self.switch.bundles += 1
        self.switch._step("commit_reply")
        self.answered = time.monotonic()
