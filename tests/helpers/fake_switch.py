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


class FakeSwitch:
    def __init__(self, dpid: int = 1):
        self.dpid = dpid
        self.peer = SwitchPeer("fake")  # on a unix socket: no certificate
        self.flows: dict[tuple, Flow] = {}
        self.bundles = 0  # bundles applied
        self.closed = False
        self._failing: dict[str, Exception] = {}
        self._lock = threading.Lock()

    def fail(self, step: str, error: Exception) -> None:
        """Raise `error` at `step` from now on, until clear()."""
        assert step in SWITCH_STEPS, step
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
        return FakeCommit(self, list(deletes), list(adds))

    def close(self) -> None:
        self.closed = True


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
