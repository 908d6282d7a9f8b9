"""No northbound write is lost or reordered when the database server dies under a burst of writes.

The controller's store (in this process, with its real writer and client) takes 200 binding
changes in a burst, with migration reports among them, while a real ovsdb-server (in a
namespace of the test's own) is killed with SIGKILL half-way and started again, or, for a
Raft cluster, while its leader is killed and another takes over. Afterwards the database
holds exactly the store's last state; a second client that watched the Binding table saw
only states the writer was given, in the order it was given them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from sdnvirt.controller.store import NorthboundStore
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.topology import Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.ports import Binding, HostPorts

from helpers.guests import wait_until
from helpers.northbound_servers import Member, agreed_leader, client, member_of, raft_cluster, standalone_server

PREFIX = f"nbw-{os.getpid()}"
CHANGES = 200  # one more port bound at each, on hv1 and hv2 in turn: each is made active where it is bound
CLIENT_TIMEOUT = 2.0  # seconds a write waits for the server before it fails (and is tried again)
WAIT = 60.0


def burst_topology() -> Topology:
    guests = "\n".join(f"  g{n:03}: {{host: {host(n)}, nics: [{{network: blue/web}}]}}" for n in range(CHANGES))
    text = ("name: nbwrites\n"
            "segments: {rack1: {subnet: 100.64.1.0/24}}\n"
            "hosts: {hv1: {segment: rack1}, hv2: {segment: rack1}}\n"
            "tenants: {blue: {networks: {web: {subnet: 10.0.0.0/24}}}}\n"
            f"vms:\n{guests}\n")
    return load_topology_text(text, "nbwrites.yaml")


def host(n: int) -> str:
    return ("hv1", "hv2")[n % 2]


def binding_changes(topology: Topology) -> list[HostPorts]:
    """What the hosts' OVSDBs show, change after change: one more guest's port bound each time.
    Each change writes its host's bindings and, once, where the new port is active: a write
    lost anywhere shows in the end."""
    bound: dict[str, list[Binding]] = {"hv1": [], "hv2": []}
    changes = []
    for n in range(CHANGES):
        nic = topology.guests[f"g{n:03}"].nics[0]
        bound[host(n)].append(Binding(nic.port_id, host(n), f"tap-g{n:03}", 10 + n, str(nic.mac).lower(), f"g{n:03}"))
        changes.append(HostPorts(host(n), tuple(bound[host(n)])))
    return changes


BindingState = frozenset


def rows_state(rows: list[dict]) -> BindingState:
    return frozenset((r["host"], r["interface"], r["port_id"], r["ofport"]) for r in rows)


def states_given(changes: list[HostPorts]) -> list[BindingState]:
    """The Binding table after each write the store gives its writer, from the empty table on."""
    hosts: dict[str, tuple[Binding, ...]] = {}
    states = [frozenset()]
    for ports in changes:
        hosts[ports.host] = ports.bindings
        states.append(frozenset((b.host, b.interface, b.port_id, b.ofport) for bs in hosts.values() for b in bs))
    return states


def is_subsequence(seen: list, sequence: list) -> bool:
    remaining = iter(sequence)
    return all(any(state == given for given in remaining) for state in seen)


class BindingWatcher:
    """A second client's view of the Binding table: every state it saw, in order."""

    def __init__(self, northbound: Northbound):
        self._northbound = northbound
        self.seen: list[BindingState] = []
        northbound.watch(self._changed)
        self._changed("Binding")

    def _changed(self, table: str) -> None:
        if table == "Binding":
            state = rows_state(self._northbound.rows("Binding"))
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)


def report(number: int, change: int, state: str = "completed") -> dict:
    return {"id": number, "vm": f"g{number:03}", "from": "hv1", "to": "hv2", "kind": "live", "state": state,
            "result": state, "at_change": change}


@pytest.fixture
def standalone(tmp_path) -> Iterator[Member]:
    with standalone_server(tmp_path, f"{PREFIX}-s") as server:
        yield server


@pytest.fixture
def cluster(tmp_path) -> Iterator[list[Member]]:
    with raft_cluster(tmp_path, f"{PREFIX}-c", WAIT) as members:
        yield members


def burst(clients: ExitStack, remote: str, crash: Callable[[NorthboundStore], None]) -> None:
    """The 200 changes, `crash(store)` after the first half; then the checks."""
    topology = burst_topology()
    changes = binding_changes(topology)
    northbound = client(clients, remote, CLIENT_TIMEOUT)
    northbound.load_topology(topology, "")
    watcher = BindingWatcher(client(clients, remote, WAIT))
    store = NorthboundStore(northbound, topology)
    clients.callback(store.drain, 0)
    reports: dict[int, dict] = {}

    began = time.monotonic()
    for number, ports in enumerate(changes, start=1):
        store.set_host_ports(ports)
        if number % 10 == 0:  # a migration's report, one of 4, at every tenth change
            reports[number % 4] = report(number % 4, number)
            store.write(lambda r=reports[number % 4]: northbound.save_migration(r["id"], r), f"report {number}")
        if number == 30:  # one the database refuses (a state its schema lacks): dropped, not in the way
            refused = report(7, number, "exploded")
            store.write(lambda r=refused: northbound.save_migration(7, r), "a report of a state the schema lacks")
        if number == CHANGES // 2:
            waiting = store.writer.pending
            assert waiting > 0, "the writer kept up: the crash would hit no write on its way"
            crash(store)
    unwritten = store.drain(WAIT)
    took = time.monotonic() - began
    print(f"\n{CHANGES} changes: {waiting} writes waiting at the crash; all written {took:.2f}s after the "
          f"first, {store.writer.failures} failed attempts, {store.writer.written} writes")

    assert unwritten == [] and store.writer.dropped == 1
    view = store.view()
    given = states_given(changes)
    last = rows_state([{"host": b.host, "interface": b.interface, "port_id": b.port_id, "ofport": b.ofport}
                       for p in view.ports.values() for b in p.bindings])
    assert given[-1] == last
    fresh = client(clients, remote, WAIT)
    assert rows_state(fresh.rows("Binding")) == last
    assert fresh.active() == dict(view.active) and len(view.active) == CHANGES
    assert {r["id"]: r for r in fresh.migrations()} == reports
    wait_until(lambda: watcher.seen[-1] == last, timeout=WAIT)
    assert is_subsequence(watcher.seen, given), "the watcher saw a state the writer was never given, or out of order"
    print(f"the watcher saw {len(watcher.seen)} of the {len(given)} states")


def test_a_burst_of_binding_changes_survives_a_killed_database_server(standalone):
    def crash(store: NorthboundStore) -> None:
        standalone.stop(kill=True)
        failures = store.writer.failures
        wait_until(lambda: store.writer.failures >= failures + 2, timeout=WAIT)  # writes failed meanwhile
        standalone.start()

    with ExitStack() as clients:
        burst(clients, standalone.remote, crash)


def test_a_burst_of_binding_changes_survives_a_raft_leader_change(cluster):
    remote = ",".join(m.remote for m in cluster)

    def crash(store: NorthboundStore) -> None:
        before = agreed_leader(cluster)
        leader = member_of(cluster, before)
        leader.stop(kill=True)
        survivors = [m for m in cluster if m is not leader]
        after = wait_until(lambda: agreed_leader(survivors), timeout=WAIT)
        assert after.server_id != before.server_id and after.term > before.term
        leader.start()  # back as a follower, catching up

    with ExitStack() as clients:
        burst(clients, remote, crash)
