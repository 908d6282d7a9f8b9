"""Northbound database servers of a test's own: one standalone ovsdb-server, or a three-member
Raft cluster, each server in a namespace the test makes and removes again, also when a step
fails. Cluster members are cabled to a Linux bridge in a fourth namespace and speak Raft over
tcp; every server serves clients on a unix socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from netaddr import IPNetwork

from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.process import start_detaching, stop
from sdnvirt.lab.record import LabRecord, ProcessRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import NetworkNamespace, run_in_namespace
from sdnvirt.northbound.cluster import (
    ClusterError,
    ClusterStatus,
    MemberFolder,
    cluster_status,
    create_cluster,
    join_cluster,
    serve_command,
)
from sdnvirt.northbound.database import Northbound
from sdnvirt.resources import NORTHBOUND_SCHEMA

from helpers.guests import wait_until

SUBNET = IPNetwork("198.18.200.0/24")
RAFT_PORT = 6643
MEMBERS = 3


@dataclass
class Member:
    """One ovsdb-server of the northbound database: standalone, or a cluster member."""

    name: str
    folder: MemberFolder
    address: str | None  # its Raft address; None for a standalone server
    prefix: str
    process: ProcessRecord | None = None

    @property
    def namespace(self) -> str:
        return f"{self.prefix}-{self.name}"

    @property
    def socket(self) -> Path:
        return self.folder.path / "nb.sock"

    @property
    def remote(self) -> str:
        return f"unix:{self.socket}"

    def start(self) -> None:
        argv = serve_command(self.folder.database, self.folder.path, [f"punix:{self.socket}"])
        self.process = start_detaching(f"nb-{self.name}", self.namespace, argv, self.folder.pidfile)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM, or with `kill` SIGKILL: a crash, no goodbye."""
        if self.process is not None:
            stop(self.process, kill=kill)
            self.process = None

    def status(self) -> ClusterStatus:
        return cluster_status(self.folder.control_socket)


@contextmanager
def standalone_server(root: Path, prefix: str) -> Iterator[Member]:
    """One standalone server with an empty database, running."""
    record = LabRecord(prefix, root / "namespaces.json")
    server = Member("standalone", MemberFolder(root / "standalone"), None, prefix)
    with ExitStack() as cleanup:
        cleanup.callback(remove_namespaces, record)
        lab_netns.create(record, server.namespace)
        server.folder.path.mkdir(parents=True)
        run_in_namespace(None, ["ovsdb-tool", "create", str(server.folder.database), str(NORTHBOUND_SCHEMA)])
        cleanup.callback(server.stop)
        server.start()
        yield server


@contextmanager
def raft_cluster(root: Path, prefix: str, timeout: float) -> Iterator[list[Member]]:
    """Three members that agree on a leader."""
    record = LabRecord(prefix, root / "namespaces.json")
    members = [Member(f"s{i}", MemberFolder(root / f"s{i}"), f"tcp:{SUBNET[i]}:{RAFT_PORT}", prefix)
               for i in range(1, MEMBERS + 1)]
    with ExitStack() as cleanup:
        cleanup.callback(remove_namespaces, record)
        cable(record, prefix, members)
        create_cluster(members[0].folder.path, members[0].address)
        for index, member in enumerate(members[1:], start=1):
            join_cluster(member.folder.path, member.address, [m.address for m in members[:index]])
        for member in members:
            cleanup.callback(member.stop)
            member.start()
        began = time.monotonic()
        wait_until(lambda: agreed_leader(members), timeout=timeout)
        print(f"cluster formed {time.monotonic() - began:.2f}s after its servers started")
        yield members


def cable(record: LabRecord, prefix: str, members: list[Member]) -> None:
    """One namespace per member, each with one NIC on a bridge in the switch namespace."""
    switch = f"{prefix}-sw"
    lab_netns.create(record, switch)
    with NetworkNamespace(switch) as ns:
        ns.add_bridge("br0")
        ns.bring_up("br0")
    for index, member in enumerate(members, start=1):
        lab_netns.create(record, member.namespace)
        with NetworkNamespace(switch) as ns:
            ns.add_veth(f"p{index}", member.namespace, "eth0")
            ns.set_master(f"p{index}", "br0")
            ns.bring_up(f"p{index}")
        with NetworkNamespace(member.namespace) as ns:
            ns.bring_up("eth0")
            ns.add_address("eth0", str(SUBNET[index]), SUBNET.prefixlen)


def remove_namespaces(record: LabRecord) -> None:
    for name in reversed(record.namespaces):
        netns.remove(name)


def agreed_leader(members: list[Member]) -> ClusterStatus | None:
    """The leader's status once every one of `members` is a member of the cluster and names
    the same leader, one of them; None until then."""
    try:
        statuses = [m.status() for m in members]
    except ClusterError:  # a server still starting has no control socket yet
        return None
    leaders = {s.leader for s in statuses}
    ours = {s.server_id: s for s in statuses}
    if all(s.is_member for s in statuses) and len(leaders) == 1 and leaders <= ours.keys():
        return ours[leaders.pop()]
    return None


def member_of(members: list[Member], status: ClusterStatus) -> Member:
    return next(m for m in members if m.address == status.address)


def client(clients: ExitStack, remote: str, timeout: float, *, any_member: bool = False) -> Northbound:
    """A connected Northbound client, closed with `clients`; `any_member` reads a follower."""
    northbound = Northbound(remote, timeout=timeout, leader_only=not any_member)
    northbound.connect()
    clients.callback(northbound.close)
    return northbound
