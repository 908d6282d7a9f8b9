"""`sdnvirt nb cluster-create|cluster-join|cluster-status`: the northbound database as a Raft cluster."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from sdnvirt.northbound.cluster import (
    ClusterError,
    ClusterStatus,
    check_raft_address,
    cluster_status,
    create_cluster,
    join_cluster,
)


def register(verbs) -> None:
    nb = verbs.add_parser("nb", help="the northbound database: make and inspect a Raft cluster of it")
    sub = nb.add_subparsers(dest="nb_verb", required=True, metavar="ACTION")

    create = _member_parser(sub, "cluster-create", "write the first member's database file of a new cluster")
    create.set_defaults(run=_create)

    join = _member_parser(sub, "cluster-join", "write the database file of a member that joins a cluster")
    join.add_argument("--remote", type=_raft_address, action="append", required=True, metavar="tcp:IP:PORT",
                      help="a member's Raft address; repeat for each member")
    join.set_defaults(run=_join)

    status = sub.add_parser("cluster-status", help="what one member knows of its cluster")
    status.add_argument("--ctl", type=Path, required=True, metavar="SOCKET",
                        help="the member's control socket (ovsdb-server --unixctl)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_status)


def _member_parser(sub, name: str, summary: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=summary)
    parser.add_argument("--folder", type=Path, required=True, help="the member's folder (made if missing)")
    parser.add_argument("--local", type=_raft_address, required=True, metavar="tcp:IP:PORT",
                        help="where the other members reach this one (tcp: or ssl:)")
    return parser


def _raft_address(text: str) -> str:
    try:
        return check_raft_address(text)
    except ClusterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _create(args) -> int:
    database = create_cluster(args.folder, args.local)
    print(f"{database}: a new cluster with one member at {args.local}; serve it with ovsdb-server")
    return 0


def _join(args) -> int:
    database = join_cluster(args.folder, args.local, args.remote)
    print(f"{database}: joins the cluster of {', '.join(args.remote)} as {args.local} once ovsdb-server serves it")
    return 0


def _status(args) -> int:
    status = cluster_status(args.ctl)
    print(json.dumps(asdict(status), indent=2) if args.json else _describe(status))
    return 0


def _describe(status: ClusterStatus) -> str:
    """A few lines for a person: who leads, and whom this member has heard from lately."""
    leader = "self" if status.is_leader else (status.leader or "unknown")
    lines = [f"{status.database}: server {status.server_id} at {status.address}, cluster {status.cluster_id or '?'}",
             f"status: {status.status}; role {status.role}, term {status.term}, leader {leader}"]
    if status.log:
        lines.append(f"log: [{status.log[0]}, {status.log[1]}], {status.uncommitted} not committed, "
                     f"{status.unapplied} not applied")
    lines.append("servers:")
    for server in status.servers:
        notes = ["self"] if server.is_self else []
        if server.id == status.leader:
            notes.append("leader")
        if server.last_message_ms is not None:
            notes.append(f"last message {server.last_message_ms} ms ago")
        lines.append(f"  {server.id}  {server.address}" + (f"  ({', '.join(notes)})" if notes else ""))
    return "\n".join(lines)
