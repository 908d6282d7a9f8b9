"""A bridge's sync rounds when a step fails, with the switch's own error or with an exception of
any other kind: the round is released, the bridge's thread lives on, it says why and tries again
after a backoff, and it is in sync once the fault clears. A fake switch and a fake compiler
stand for the real ones, on the reconciler's real threads."""

from __future__ import annotations

import threading
import time

import pytest

from sdnvirt.backoff import Backoff
from sdnvirt.controller.fabric import sync as sync_module
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.channel import SwitchError
from sdnvirt.controller.fabric.flow import Output, flow
from sdnvirt.controller.fabric.sync import IN_SYNC, RETRYING, SwitchSync
from sdnvirt.controller.state import PIPELINE_OWNER, MemoryStore
from sdnvirt.vswitch.names import datapath_id

from helpers.fabric_views import PIPELINE, TOPOLOGY, flows_of, view
from helpers.fake_switch import STAGING_STEPS, SWITCH_STEPS, FakeSwitch
from helpers.guests import wait_until

PORT = ("port", "p1")
DEFAULTS = flow(0, 0, actions=[], cookie=1)
PLACES = [flow(30, 100, {"eth_dst": "02:00:00:00:00:01"}, actions=[Output(n)], cookie=2) for n in range(1, 5)]
ELSEWHERE = flow(30, 100, {"eth_dst": "02:00:00:00:00:02"}, actions=[Output(9)], cookie=3)  # another port's
STEPS = (*SWITCH_STEPS[:1], "compile", *SWITCH_STEPS[1:], "on_synced")
# A bundle the switch applied is not sent again, so a lost answer fails one round only.
LASTING = tuple(s for s in STEPS if s != "commit_reply")
ERRORS = [SwitchError("switch 0x1 did not answer a bundle within 10s"), KeyError("p1"),
          TypeError("unsupported operand"), RecursionError("maximum recursion depth exceeded")]
WAIT = 5.0  # seconds; every wait here ends long before


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(sync_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(sync_module, "RETRY_LIMIT", 0.04)


class Bridge:
    """One SwitchSync with its fake switch, compiler and on_synced, each able to fail."""

    def __init__(self):
        self.switch = FakeSwitch()
        self.owners = {PIPELINE_OWNER: frozenset({DEFAULTS}), PORT: frozenset({PLACES[0]})}
        self.failing: dict[str, Exception] = {}
        self.synced: list[frozenset] = []
        self.compiled: list[frozenset | None] = []  # what each compile was asked for (None: everything)
        ready = threading.Event()
        ready.set()
        self.sync = SwitchSync("hv1", self._compile, ready, self._on_synced)
        self.sync.attach(self.switch)

    def _compile(self, owners):
        if "compile" in self.failing:
            raise self.failing["compile"]
        self.compiled.append(owners)
        return {o: self.owners.get(o, frozenset()) for o in (self.owners if owners is None else owners)}

    def _on_synced(self, host, programmed) -> None:
        if "on_synced" in self.failing:
            raise self.failing["on_synced"]
        self.synced.append(programmed)

    def fail(self, step: str, error: Exception) -> None:
        if step in SWITCH_STEPS + STAGING_STEPS:
            self.switch.fail(step, error)
        else:
            self.failing[step] = error

    def clear(self) -> None:
        self.switch.clear()
        self.failing.clear()

    def move(self, place: int) -> None:
        """Desired state changed: the port's flow now outputs elsewhere."""
        self.owners[PORT] = frozenset({PLACES[place]})

    def change(self, place: int, step: str) -> None:
        """Move the port and have the bridge follow; a switch is read only when it
        (re)connects, so that is how a round that fails at "dump" begins."""
        self.move(place)
        if step == "dump":
            self.sync.attach(self.switch)
        else:
            self.sync.request(frozenset({PORT}))

    def converged(self) -> bool:
        wanted = {f.key: f for flows in self.owners.values() for f in flows}
        return self.sync.in_sync and self.switch.flows == wanted

    def caller_round(self) -> int:
        with self.sync.sending(frozenset({PORT})) as sending:
            return sending.wait()


@pytest.fixture
def bridge():
    bridge = Bridge()
    try:
        wait_until(bridge.converged, timeout=WAIT, interval=0.005)
        yield bridge
    finally:
        bridge.sync.stop()


def ends_within(action, timeout: float = WAIT) -> bool:
    """Whether `action` returns within `timeout` (a held round would block it for ever)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def name(error: Exception) -> str:
    return type(error).__name__


@pytest.mark.parametrize("error", ERRORS, ids=name)
@pytest.mark.parametrize("step", STEPS)
def test_a_round_failed_at_any_step_is_retried_until_the_switch_holds_the_desired_flows(bridge, step, error):
    bridge.fail(step, error)
    bridge.change(1, step)
    wait_until(lambda: bridge.sync.stats.failures >= 1, timeout=WAIT, interval=0.005)
    bridge.clear()
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)  # tried again on its own: nothing asked it to
    # The thread lives on: the next change reaches the switch too.
    bridge.move(2)
    bridge.sync.request(frozenset({PORT}))
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)
    assert bridge.synced[-1] == {PIPELINE_OWNER, PORT}


@pytest.mark.parametrize("error", ERRORS, ids=name)
@pytest.mark.parametrize("step", LASTING)
def test_a_failing_bridge_says_why_holds_no_round_and_recovers(bridge, step, error):
    bridge.fail(step, error)
    bridge.change(1, step)
    wait_until(lambda: bridge.sync.state == RETRYING, timeout=WAIT, interval=0.005)
    assert bridge.sync.error == f"{name(error)}: {error}"
    assert not bridge.sync.in_sync
    assert ends_within(bridge.caller_round)  # a switch-over is not blocked by the failing round
    failures = bridge.sync.stats.failures
    wait_until(lambda: bridge.sync.stats.failures > failures, timeout=WAIT, interval=0.005)  # still retrying
    bridge.clear()
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)
    assert (bridge.sync.state, bridge.sync.error) == (IN_SYNC, None)


@pytest.mark.parametrize("error", ERRORS, ids=name)
@pytest.mark.parametrize("step", STEPS)
def test_a_switch_over_round_that_fails_is_the_bridges_failure_not_the_callers(bridge, step, error):
    bridge.fail(step, error)
    bridge.move(1)
    if step == "dump":
        bridge.sync.attach(bridge.switch)  # only a (re)connected switch is read
    sent = bridge.caller_round()  # raises nothing
    assert bridge.sync.stats.failures >= 1
    if step in LASTING:
        assert bridge.sync.error == f"{name(error)}: {error}"
    if step in ("dump", "compile", "send", "commit"):
        assert sent == 0 and bridge.switch.flows[PLACES[1].key] != PLACES[1]
    assert ends_within(bridge.caller_round)  # the round was released
    bridge.clear()
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)  # the background thread retried
    assert bridge.sync.state == IN_SYNC


def test_a_round_sent_but_never_waited_for_makes_the_bridge_read_the_switch_again(bridge):
    bridge.move(1)
    with bridge.sync.sending(frozenset({PORT})):
        pass  # the caller gave up before waiting for the switch's answer
    bridge.switch.flows.pop(DEFAULTS.key)  # whatever happened meanwhile is read back
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)


def test_retries_wait_for_the_backoff_but_a_switch_over_does_not(monkeypatch):
    monkeypatch.setattr(sync_module, "RETRY_FIRST", 60.0)
    monkeypatch.setattr(sync_module, "RETRY_LIMIT", 60.0)
    bridge = Bridge()
    try:
        wait_until(bridge.converged, timeout=WAIT, interval=0.005)
        bridge.fail("compile", KeyError("p1"))
        bridge.move(1)
        bridge.sync.request(frozenset({PORT}))
        wait_until(lambda: bridge.sync.stats.failures == 1, timeout=WAIT, interval=0.005)
        bridge.clear()
        bridge.move(2)
        bridge.sync.request(frozenset({PORT}))  # a new change does not hammer a failing bridge...
        assert not holds_within(bridge.converged, 0.3)
        assert bridge.sync.stats.failures == 1 and bridge.sync.state == RETRYING
        assert bridge.caller_round() == 1  # ...but a switch-over tries at once (the port's flow replaced)
        assert bridge.converged() and bridge.sync.state == IN_SYNC
    finally:
        bridge.sync.stop()


def holds_within(predicate, timeout: float) -> bool:
    try:
        wait_until(predicate, timeout=timeout, interval=0.005)
    except AssertionError:
        return False
    return True


def test_the_backoff_doubles_up_to_its_limit_and_starts_over_after_a_success():
    backoff = Backoff(0.5, 10.0)
    assert [backoff.failed() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.succeeded()
    assert backoff.failed() == 0.5


# -- every bridge of a fabric, with the real compiler ---------------------------------------------

def test_a_switch_over_that_fails_on_one_bridge_programs_the_others_and_holds_no_round():
    store = MemoryStore(TOPOLOGY)
    for ports in view(bound=("a2", "b1", "b3")).ports.values():
        store.set_host_ports(ports)
    fabric = Fabric(store, PIPELINE, lambda host, owners: None, lambda host: None)
    switches = {h: FakeSwitch(datapath_id(TOPOLOGY.name, h)) for h in TOPOLOGY.hosts}
    try:
        for switch in switches.values():
            assert fabric.switch_connected(switch)
        fabric.ports_known()
        wait_until(lambda: all(s.in_sync for s in fabric.syncs.values()), timeout=WAIT, interval=0.005)

        switches["hv2"].fail("send", TypeError("a bug"))
        change = store.set_host_ports(view().ports["hv1"])  # a1 comes up on hv1
        applied = fabric.apply(change, wait=True)  # raises nothing

        assert applied.flow_mods["hv2"] == 0 and applied.flow_mods["hv1"] > 0
        for host in ("hv1", "hv3"):
            assert set(switches[host].flows.values()) == flows_of(host, store.view())
        assert fabric.syncs["hv2"].state == RETRYING and fabric.syncs["hv2"].error == "TypeError: a bug"
        assert ends_within(lambda: fabric.apply(change, wait=True))  # no bridge's round is held
        switches["hv2"].clear()
        wait_until(lambda: set(switches["hv2"].flows.values()) == flows_of("hv2", store.view()),
                   timeout=WAIT, interval=0.005)
        wait_until(lambda: fabric.syncs["hv2"].state == IN_SYNC, timeout=WAIT, interval=0.005)
    finally:
        fabric.stop()


def test_a_fabric_stopped_before_every_hosts_ports_are_known_ends_its_bridges_threads():
    """A controller that stops while it still waits for a host's OVSDB leaves no thread behind."""
    before = set(threading.enumerate())
    fabric = Fabric(MemoryStore(TOPOLOGY), PIPELINE, lambda host, owners: None, lambda host: None)
    threads = [t for t in threading.enumerate() if t not in before and t.name.startswith("sync-")]
    assert len(threads) == len(TOPOLOGY.hosts)
    assert fabric.switch_connected(FakeSwitch(datapath_id(TOPOLOGY.name, "hv1")))
    fabric.stop()
    for thread in threads:
        thread.join(WAIT)
    assert [t.name for t in threads if t.is_alive()] == []


# -- a round staged ahead (a switch-over's), committed later -------------------------------------

def stage(bridge: Bridge, place: int):
    """Stage the port's move to `place`, not making it (the desired state moves when committed)."""
    return bridge.sync.stage({PORT: frozenset({PLACES[place]})})


def commit_staged(bridge: Bridge, staged) -> int:
    bridge.move(1)  # the desired state the staged round was made for
    with bridge.sync.sending(frozenset({PORT}), staged) as sending:
        return sending.wait()


def test_a_staged_round_is_committed_with_one_message_and_the_bridge_knows_what_it_holds(bridge):
    staged = stage(bridge, 1)
    assert bridge.switch.flows[PLACES[0].key] == PLACES[0]  # staged: nothing applied yet
    sent = bridge.switch.sent
    assert commit_staged(bridge, staged) == 1  # the port's flow replaced
    assert (bridge.switch.commits, bridge.switch.sent, bridge.switch.discarded) == (1, sent, 0)
    assert bridge.converged() and bridge.synced[-1] == {PIPELINE_OWNER, PORT}
    bridge.move(2)  # what it holds is known: the next round sends only the difference
    assert bridge.caller_round() == 1 and bridge.converged()


def test_nothing_is_staged_where_nothing_would_change(bridge):
    assert stage(bridge, 0) is None and bridge.switch.staged == 0


def test_staging_that_the_switch_refuses_leaves_the_bridge_as_it_was(bridge):
    bridge.fail("stage", SwitchError("switch 0x1 refused a staged bundle"))
    with pytest.raises(SwitchError):
        stage(bridge, 1)
    assert bridge.sync.state == IN_SYNC and bridge.sync.stats.failures == 0


def test_a_staged_round_after_another_round_on_the_bridge_is_discarded_and_made_afresh(bridge):
    staged = stage(bridge, 1)
    bridge.owners[PIPELINE_OWNER] = frozenset({DEFAULTS, ELSEWHERE})  # another change, applied meanwhile
    bridge.sync.request(frozenset({PIPELINE_OWNER}))
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)
    assert commit_staged(bridge, staged) == 1
    assert (bridge.switch.commits, bridge.switch.discarded) == (0, 1)
    assert bridge.converged()


def test_a_staged_round_of_a_switch_that_reconnected_is_discarded_and_made_afresh(bridge):
    staged = stage(bridge, 1)
    bridge.sync.attach(bridge.switch)  # the same bridge, connected again: the bundle went with the connection
    assert commit_staged(bridge, staged) >= 1
    assert (bridge.switch.commits, bridge.switch.discarded) == (0, 1)
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)


def test_a_staged_round_for_other_owners_is_discarded(bridge):
    staged = bridge.sync.stage({PORT: frozenset({PLACES[1]}), ("port", "p2"): frozenset({ELSEWHERE})})
    assert commit_staged(bridge, staged) == 1
    assert (bridge.switch.commits, bridge.switch.discarded) == (0, 1)
    assert bridge.converged()


@pytest.mark.parametrize("why", ["expired", "stale"])
def test_a_staged_bundle_the_switch_may_have_forgotten_is_discarded(bridge, monkeypatch, why):
    staged = stage(bridge, 1)
    if why == "expired":
        staged.bundle.expired = True  # the switch said so
    else:
        monkeypatch.setattr(sync_module, "STAGED_FRESH", 0.0)  # older than a bundle is kept
    assert commit_staged(bridge, staged) == 1
    assert (bridge.switch.commits, bridge.switch.discarded) == (0, 1)
    assert bridge.converged()


@pytest.mark.parametrize("error", ERRORS, ids=name)
@pytest.mark.parametrize("step", ["staged_commit", "commit", "commit_reply", "on_synced"])
def test_a_staged_round_that_fails_is_the_bridges_failure_and_is_retried(bridge, step, error):
    staged = stage(bridge, 1)
    bridge.fail(step, error)
    sent = commit_staged(bridge, staged)  # raises nothing
    assert bridge.sync.stats.failures >= 1
    if step in ("staged_commit", "commit"):
        assert sent == 0
    if step == "commit":  # refused: nothing applied (nor by the retries, refused too until it clears)
        assert bridge.switch.flows[PLACES[0].key] == PLACES[0]
    assert ends_within(bridge.caller_round)  # the round was released
    bridge.clear()
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)
    assert bridge.sync.state == IN_SYNC


def test_the_bridges_own_thread_never_takes_a_staged_rounds_owners_first(bridge, monkeypatch):
    """Asking for the owners wakes the bridge's thread: were they asked for before the caller held
    the round, that thread could make the round itself while the caller is preempted, and stale
    the staged one. Here every caller is preempted right after asking."""
    ask = SwitchSync.request

    def preempted(sync, owners=None):
        ask(sync, owners)
        time.sleep(0.05)

    monkeypatch.setattr(SwitchSync, "request", preempted)
    for attempt in range(1, 4):
        place = attempt % 2
        staged = bridge.sync.stage({PORT: frozenset({PLACES[place]})})
        bridge.move(place)
        with bridge.sync.sending(frozenset({PORT}), staged) as sending:
            assert sending.wait() == 1 and sending.staged
        assert (bridge.switch.commits, bridge.switch.discarded) == (attempt, 0)
    assert bridge.converged()


def test_a_bridge_says_when_its_tables_were_complete_after_it_connected(bridge):
    """What bench/converge.py compares bridges converging together by."""
    first = bridge.sync.stats.converged_at
    assert first is not None and first <= time.time() and bridge.sync.stats.converge_ms >= 0
    bridge.sync.attach(bridge.switch)  # the bridge reconnected
    wait_until(lambda: bridge.sync.stats.converged_at not in (None, first), timeout=WAIT, interval=0.005)
    assert bridge.converged()


def test_a_bridge_that_reconnects_is_read_and_mended_but_compiled_only_for_what_changed_meanwhile(bridge):
    """A reconnect compares the switch with what it was compiled to: ten bridges coming back
    at once must not compile the whole fabric again. What changed while it was away is
    compiled, and whatever the switch lost or gained is put right."""
    assert bridge.compiled == [None]  # the first round compiles everything
    bridge.sync.detach(bridge.switch)
    bridge.move(2)
    bridge.sync.request(frozenset({PORT}))  # the change, while the bridge is away
    bridge.switch.flows.pop(DEFAULTS.key)  # and the switch lost a flow, and gained one nobody wants
    bridge.switch.flows[ELSEWHERE.key] = ELSEWHERE
    bridge.sync.attach(bridge.switch)
    wait_until(bridge.converged, timeout=WAIT, interval=0.005)
    assert bridge.compiled == [None, frozenset({PORT})]
    bridge.sync.attach(bridge.switch)  # back again, nothing changed
    first = bridge.sync.stats.syncs
    wait_until(lambda: bridge.sync.stats.syncs > first, timeout=WAIT, interval=0.005)
    assert bridge.converged() and bridge.compiled == [None, frozenset({PORT})]
    assert bridge.sync.stats.last_flow_mods == 0
