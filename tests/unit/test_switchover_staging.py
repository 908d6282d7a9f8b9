"""A switch-over staged while its VM's memory is copied: every bridge it alters holds an open
bundle of its flow-mods, and making it is one commit per bridge; staged against a view that
changed meanwhile, it is discarded and made as usual. Fake switches behind the fabric's real
reconcilers and threads."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.migration import staging as staging_module
from sdnvirt.controller.migration.staging import SwitchOverStaging
from sdnvirt.controller.migration.switchover import SwitchOver
from sdnvirt.controller.state import MemoryStore, activation
from sdnvirt.vswitch.names import datapath_id
from sdnvirt.vswitch.ports import Binding

from helpers.fabric_views import PIPELINE, TOPOLOGY, flows_of, port_id, view
from helpers.fake_switch import FakeSwitch
from helpers.guests import wait_until

WAIT = 5.0  # seconds; every wait here ends long before
MOVING = Binding(port_id("a1"), "hv3", "tap-moving", 41, str(TOPOLOGY.guests["a1"].nics[0].mac), "a1")


class Fabrics:
    """A store with a1 bound on hv1 (active) and on hv3 (copying there), a fabric in sync."""

    def __init__(self):
        self.store = MemoryStore(TOPOLOGY)
        for ports in view(extra=(MOVING,)).ports.values():
            self.store.set_host_ports(ports)
        self.fabric = Fabric(self.store, PIPELINE, lambda host, owners: None, lambda host: None)
        self.switches = {h: FakeSwitch(datapath_id(TOPOLOGY.name, h)) for h in TOPOLOGY.hosts}
        for host, switch in self.switches.items():
            self.fabric.syncs[host].attach(switch)
        self.fabric.ports_known()
        wait_until(self.in_sync, timeout=WAIT, interval=0.005)

    def in_sync(self) -> bool:
        return all(self.fabric.syncs[h].in_sync and switch.flows == {f.key: f for f in flows_of(h, self.store.view())}
                   for h, switch in self.switches.items())

    def counts(self, what: str) -> dict[str, int]:
        return {h: getattr(switch, what) for h, switch in self.switches.items()}


@pytest.fixture
def fabrics():
    fabrics = Fabrics()
    try:
        yield fabrics
    finally:
        fabrics.fabric.stop()


def test_a_staged_switch_over_is_one_commit_per_bridge_it_alters(fabrics):
    before, sent = {h: dict(s.flows) for h, s in fabrics.switches.items()}, fabrics.counts("sent")
    staged = fabrics.fabric.stage(activation(fabrics.store.view(), [port_id("a1")], "hv3"))
    assert set(staged.rounds) == set(TOPOLOGY.hosts)  # a1's network reaches every host
    assert fabrics.counts("staged") == dict.fromkeys(TOPOLOGY.hosts, 1)
    assert {h: s.flows for h, s in fabrics.switches.items()} == before  # staged: nothing applied
    applied = fabrics.fabric.apply(fabrics.store.activate([port_id("a1")], "hv3"), wait=True, staged=staged)
    assert fabrics.counts("commits") == dict.fromkeys(TOPOLOGY.hosts, 1)
    assert fabrics.counts("sent") == sent and fabrics.counts("discarded") == dict.fromkeys(TOPOLOGY.hosts, 0)
    assert applied.flow_mods == {h: len(r.diff) for h, r in staged.rounds.items()}
    assert set(applied.committed) == applied.staged == set(TOPOLOGY.hosts)
    assert fabrics.in_sync() and fabrics.store.view().active[port_id("a1")] == "hv3"


def test_a_switch_over_staged_before_the_view_changed_is_discarded_and_made_afresh(fabrics):
    staged = fabrics.fabric.stage(activation(fabrics.store.view(), [port_id("a1")], "hv3"))
    # meanwhile b3 is bound on hv2 too (its own migration): the staged flows may be wrong now
    copying = Binding(port_id("b3"), "hv2", "tap-b3", 42, str(TOPOLOGY.guests["b3"].nics[0].mac), "b3")
    fabrics.fabric.apply(fabrics.store.set_host_ports(view(extra=(MOVING, copying)).ports["hv2"]), wait=True)
    applied = fabrics.fabric.apply(fabrics.store.activate([port_id("a1")], "hv3"), wait=True, staged=staged)
    assert applied.staged == frozenset() and sum(applied.flow_mods.values()) > 0
    assert fabrics.counts("commits") == dict.fromkeys(TOPOLOGY.hosts, 0)
    assert fabrics.counts("discarded") == dict.fromkeys(TOPOLOGY.hosts, 1)
    assert fabrics.in_sync() and fabrics.store.view().active[port_id("a1")] == "hv3"


def test_nothing_is_staged_for_a_vm_not_bound_where_it_would_go():
    store = MemoryStore(TOPOLOGY)
    for ports in view().ports.values():
        store.set_host_ports(ports)
    fabric = Fabric(store, PIPELINE, lambda host, owners: None, lambda host: None)
    try:
        assert fabric.stage(activation(store.view(), [port_id("a1")], "hv3")) is None
    finally:
        fabric.stop()


def test_the_switch_over_commits_what_a_migration_staged_and_drops_what_it_no_longer_needs(fabrics):
    marks: list[dict] = []
    switch_over = SwitchOver(fabrics.store, fabrics.fabric, lambda event: None, lambda vm, mark: marks.append(mark))
    switch_over.prepare("a1", "hv3")  # staged on a thread of its own
    wait_until(lambda: fabrics.counts("staged") == dict.fromkeys(TOPOLOGY.hosts, 1), timeout=WAIT, interval=0.005)
    switch_over.now("a1", "hv3", "test").result(timeout=WAIT)
    assert fabrics.counts("commits") == dict.fromkeys(TOPOLOGY.hosts, 1) and fabrics.in_sync()
    # the flight recorder says which bridges only committed
    assert sorted(m["host"] for m in marks if m["event"] == "sent" and m["detail"].endswith(", staged")) == sorted(
        TOPOLOGY.hosts)
    switch_over.prepare("a1", "hv1")  # on its way back; the migration fails before switching
    wait_until(lambda: fabrics.counts("staged") == dict.fromkeys(TOPOLOGY.hosts, 2), timeout=WAIT, interval=0.005)
    switch_over.forget("a1")
    wait_until(lambda: fabrics.counts("discarded") == dict.fromkeys(TOPOLOGY.hosts, 1), timeout=WAIT, interval=0.005)
    assert fabrics.store.view().active[port_id("a1")] == "hv3" and fabrics.in_sync()


class SlowFabric:
    """Stages when told to (`release`), or fails; remembers what it discarded."""

    def __init__(self):
        self.release = threading.Event()
        self.failing = False
        self.calls = 0
        self.staged: list[object] = []
        self.discarded: list[object] = []

    def stage(self, change):
        assert self.release.wait(WAIT)
        failing = self.failing  # decided before the call is counted: a test changes it once counted
        self.calls += 1
        if failing:
            raise RuntimeError("a bug")
        staged = SimpleNamespace(change=change, rounds={})
        self.staged.append(staged)
        return staged

    def discard(self, staged) -> None:
        self.discarded.append(staged)


@pytest.fixture
def staging():
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(MOVING,)).ports.values():
        store.set_host_ports(ports)
    fabric = SlowFabric()
    yield SwitchOverStaging(fabric, store.view), fabric
    fabric.release.set()


def staged_count(fabric: SlowFabric, n: int) -> None:
    wait_until(lambda: len(fabric.staged) == n, timeout=WAIT, interval=0.005)


def test_a_staged_switch_over_is_taken_once_and_only_for_its_destination(staging):
    stager, fabric = staging
    fabric.release.set()
    stager.prepare("a1", "hv3")
    staged_count(fabric, 1)
    wait_until(lambda: stager.take("a1", "hv3") is fabric.staged[0], timeout=WAIT, interval=0.005)
    assert stager.take("a1", "hv3") is None
    stager.prepare("a1", "hv3")
    staged_count(fabric, 2)
    wait_until(lambda: stager._staged, timeout=WAIT, interval=0.005)
    assert stager.take("a1", "hv1") is None and fabric.discarded == [fabric.staged[1]]  # staged for elsewhere


@pytest.mark.parametrize("meanwhile", ["taken", "forgotten", "asked again"])
def test_a_staging_that_ends_after_it_was_no_longer_wanted_is_dropped(staging, meanwhile):
    stager, fabric = staging
    stager.prepare("a1", "hv3")
    if meanwhile == "taken":  # the pause came before the staging was done
        assert stager.take("a1", "hv3") is None
    elif meanwhile == "forgotten":
        stager.forget("a1")
    else:
        stager.prepare("a1", "hv3")
    fabric.release.set()
    wait_until(lambda: fabric.discarded, timeout=WAIT, interval=0.005)
    assert fabric.discarded == [fabric.staged[0]]
    if meanwhile == "asked again":  # the newest request is staged and kept
        staged_count(fabric, 2)
        wait_until(lambda: stager.take("a1", "hv3") is fabric.staged[1], timeout=WAIT, interval=0.005)


def test_a_staging_that_fails_costs_that_switch_over_its_head_start_only(staging):
    stager, fabric = staging
    fabric.failing = True
    fabric.release.set()
    stager.prepare("a1", "hv3")
    stager.prepare("a1", "hv3")
    wait_until(lambda: fabric.calls == 2, timeout=WAIT, interval=0.005)
    fabric.failing = False
    stager.prepare("a1", "hv3")  # the thread lives on
    staged_count(fabric, 1)
    wait_until(lambda: stager.take("a1", "hv3") is fabric.staged[0], timeout=WAIT, interval=0.005)


@pytest.fixture
def quick_restaging(monkeypatch):
    """Staged switch-overs staged again every 50 ms, not every few seconds."""
    monkeypatch.setattr(staging_module, "RESTAGE_AFTER", 0.05)


def test_a_staged_switch_over_is_staged_again_while_the_memory_is_copied(quick_restaging, staging):
    """Open vSwitch drops a bundle left idle for 10 s, and a copy may take longer."""
    stager, fabric = staging
    fabric.release.set()
    stager.prepare("a1", "hv3")
    wait_until(lambda: len(fabric.staged) >= 3, timeout=WAIT, interval=0.005)
    taken = stager.take("a1", "hv3")
    assert taken is not None and taken is not fabric.staged[0]
    # every other staging is dropped, one that was under way when the switch-over took its own too
    wait_until(lambda: len(fabric.discarded) == len(fabric.staged) - 1, timeout=WAIT, interval=0.005)
    assert all(d is not taken for d in fabric.discarded) and not stager._staged
    staged = len(fabric.staged)
    time.sleep(staging_module.RESTAGE_AFTER * 4)  # four times what a staging waits to be staged again
    assert len(fabric.staged) == staged and not stager._asked  # nothing staged again once taken


def test_a_switch_over_staged_again_and_again_commits_once_per_bridge(quick_restaging, fabrics):
    switch_over = SwitchOver(fabrics.store, fabrics.fabric, lambda event: None, lambda vm, mark: None)
    switch_over.prepare("a1", "hv3")
    wait_until(lambda: min(fabrics.counts("staged").values()) >= 3, timeout=WAIT, interval=0.005)
    switch_over.now("a1", "hv3", "test").result(timeout=WAIT)
    assert fabrics.counts("commits") == dict.fromkeys(TOPOLOGY.hosts, 1) and fabrics.in_sync()
    staged = fabrics.counts("staged")
    wait_until(lambda: fabrics.counts("discarded") == {h: n - 1 for h, n in staged.items()}, timeout=WAIT,
               interval=0.005)
