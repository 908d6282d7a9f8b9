"""The northbound database as a three-member Raft cluster: it replicates, survives losing
its leader, and a member that comes back catches up.

Each member is an ovsdb-server in a namespace of the test's own, cabled to a Linux
bridge in a fourth; members speak Raft over tcp on 198.18.200.0/24 and serve clients
on unix sockets. Everything is made here and removed again, also when a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from sdnvirt.cli import nb as nb_cli
from sdnvirt.model.loader import load_topology
from sdnvirt.northbound.cluster import ClusterError, ClusterServer, ClusterStatus

from helpers.guests import wait_until
from helpers.northbound_servers import Member, agreed_leader, member_of, raft_cluster
from helpers.northbound_servers import client as connected_client

PREFIX = f"nbclu-{os.getpid()}"
WAIT = 30.0  # seconds, for every wait and every client transaction
TOPOLOGY = Path(__file__).parents[1] / "integration" / "topologies" / "fabric.yaml"


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> Iterator[list[Member]]:
    with raft_cluster(tmp_path_factory.mktemp("nbcluster"), PREFIX, WAIT) as members:
        yield members


def client(clients: ExitStack, remote: str, *, any_member: bool = False):
    return connected_client(clients, remote, WAIT, any_member=any_member)


def test_cluster_status_through_the_cli(members: list[Member], capsys) -> None:
    parser = argparse.ArgumentParser(prog="sdnvirt")
    nb_cli.register(parser.add_subparsers(dest="verb", required=True))
    member = members[1]

    args = parser.parse_args(["nb", "cluster-status", "--ctl", str(member.folder.control_socket), "--json"])
    assert args.run(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "cluster member" and shown["address"] == member.address
    assert sorted(s["address"] for s in shown["servers"]) == sorted(m.address for m in members)

    args = parser.parse_args(["nb", "cluster-status", "--ctl", str(member.folder.control_socket)])
    assert args.run(args) == 0
    assert f"server {shown['server_id']} at {member.address}" in capsys.readouterr().out

    with pytest.raises(SystemExit) as refused:
        parser.parse_args(["nb", "cluster-create", "--folder", str(member.folder.path), "--local", "tcp:nowhere"])
    assert refused.value.code == 2
    args = parser.parse_args(["nb", "cluster-create", "--folder", str(member.folder.path), "--local", member.address])
    with pytest.raises(ClusterError, match="exists already"):
        args.run(args)


def test_replicates_fails_over_and_catches_up(members: list[Member]) -> None:
    topology = load_topology(TOPOLOGY)
    source = TOPOLOGY.read_text()
    stored = replace(topology, source=None)  # the database holds the file's text, not its path
    port = next(nic.port_id for guest in topology.guests.values() for nic in guest.nics)

    with ExitStack() as clients:
        writer = client(clients, ",".join(m.remote for m in members))
        writer.load_topology(topology, source)
        assert writer.topology() == stored

        before = agreed_leader(members)
        assert before is not None
        leader = member_of(members, before)
        reader = client(clients, next(m for m in members if m is not leader).remote, any_member=True)
        wait_until(lambda: reader.topology() == stored and reader.topology_source() == source, timeout=WAIT)

        leader.stop()
        began = time.monotonic()
        writer.set_active({port: "hv2"})
        print(f"a write {time.monotonic() - began:.2f}s after the leader stopped")
        assert writer.active()[port] == "hv2"
        wait_until(lambda: reader.active().get(port) == "hv2", timeout=WAIT)

        survivors = [m for m in members if m is not leader]
        after = wait_until(lambda: agreed_leader(survivors), timeout=WAIT)
        assert after.server_id != before.server_id and after.term > before.term
        # The stopped server is still a member (so it may come back), but unheard of.
        assert {s.id for s in after.servers} == {s.id for s in before.servers}
        wait_until(lambda: hears_only_survivors(member_of(survivors, after).status(), before.server_id),
                   timeout=WAIT)

        leader.start()
        began = time.monotonic()
        wait_until(lambda: agreed_leader(members), timeout=WAIT)
        back = client(clients, leader.remote, any_member=True)
        wait_until(lambda: back.active().get(port) == "hv2" and back.topology() == stored, timeout=WAIT)
        print(f"the restarted server caught up in {time.monotonic() - began:.2f}s")
        writer.set_active({port: "hv3"})
        wait_until(lambda: back.active().get(port) == "hv3" and reader.active().get(port) == "hv3", timeout=WAIT)


def hears_only_survivors(leader: ClusterStatus, stopped: str) -> bool:
    """Whether the leader heard from every other server within an election timeout, but the stopped one."""
    def recent(server: ClusterServer) -> bool:
        return server.last_message_ms is not None and server.last_message_ms < leader.election_timer_ms

    return all(recent(s) != (s.id == stopped) for s in leader.servers if not s.is_self)
