"""The northbound database as a Raft cluster of ovsdb-servers, made with Open vSwitch's own tools.

One standalone server is one machine's worth of desired state; three servers
that replicate it through Raft keep answering when any one of them goes. One
member creates the cluster (`ovsdb-tool create-cluster`), the others join it
(`ovsdb-tool join-cluster`); each then runs its own ovsdb-server, and the
members find each other at their Raft addresses (tcp: or ssl:). Clients reach
a member through its own client remotes (unix sockets or tcp), and a client
given all members' remotes, comma-separated, follows the leader.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sdnvirt.northbound.database import DATABASE
from sdnvirt.resources import NORTHBOUND_SCHEMA

TOOL_TIMEOUT = 10.0
STATUS_TIMEOUT = 5  # seconds ovs-appctl waits for the server's answer
RAFT_SCHEMES = ("tcp", "ssl")
LISTEN_SCHEMES = ("ptcp", "pssl")


class ClusterError(RuntimeError):
    """A cluster could not be made or asked; the message says why."""


@dataclass(frozen=True)
class MemberFolder:
    """Everything one member keeps on disk, in one folder, so one folder is one member."""

    path: Path

    @property
    def database(self) -> Path:
        return self.path / "sdnvirt.db"

    @property
    def pidfile(self) -> Path:
        return self.path / "ovsdb-server.pid"

    @property
    def control_socket(self) -> Path:
        return self.path / "ovsdb-server.ctl"

    @property
    def log(self) -> Path:
        return self.path / "ovsdb-server.log"


@dataclass(frozen=True)
class Tls:
    """The files a member needs when its Raft or client addresses are ssl:/pssl:."""

    private_key: Path
    certificate: Path
    ca_certificate: Path


@dataclass(frozen=True)
class ClusterServer:
    id: str  # the short (4 hex digits) server id that cluster/status prints
    address: str
    is_self: bool
    last_message_ms: int | None  # since this member last heard from it; None for itself or never


@dataclass(frozen=True)
class ClusterStatus:
    """One member's view of the cluster, from `ovs-appctl cluster/status`."""

    database: str
    server_id: str
    cluster_id: str | None  # None while joining: the cluster's id is not known yet
    address: str
    status: str  # "cluster member", "joining cluster", "leaving cluster", "left cluster", ...
    role: str  # "leader", "follower" or "candidate"
    term: int
    leader: str | None  # the leader's server id (its own when it leads); None while unknown
    election_timer_ms: int | None
    log: tuple[int, int] | None  # first and last index of this member's log
    uncommitted: int
    unapplied: int
    servers: tuple[ClusterServer, ...]

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"

    @property
    def is_member(self) -> bool:
        return self.status == "cluster member"


# -- addresses --------------------------------------------------------------------------------------


def check_raft_address(address: str) -> str:
    """`tcp:IP:PORT` or `ssl:IP:PORT` (IPv6 in brackets): where members reach each other."""
    scheme, _, rest = address.partition(":")
    host, _, port = rest.rpartition(":")
    if scheme not in RAFT_SCHEMES or not _is_ip(host) or not _is_port(port):
        raise ClusterError(f"{address!r} is no Raft address; expected tcp:IP:PORT or ssl:IP:PORT "
                           "(an IPv6 address in brackets)")
    return address


def check_client_remote(remote: str) -> str:
    """`punix:PATH`, `ptcp:PORT[:IP]` or `pssl:PORT[:IP]`: where a member listens for clients."""
    scheme, _, rest = remote.partition(":")
    port, _, host = rest.partition(":")
    if scheme == "punix" and rest:
        return remote
    if scheme in LISTEN_SCHEMES and _is_port(port) and (not host or _is_ip(host)):
        return remote
    raise ClusterError(f"{remote!r} is no client remote; expected punix:PATH, ptcp:PORT[:IP] or pssl:PORT[:IP]")


def _is_ip(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False


def _is_port(port: str) -> bool:
    return port.isdigit() and 0 < int(port) < 65536


# -- making members ---------------------------------------------------------------------------------


def create_cluster(folder: Path, local: str) -> Path:
    """The first member's database file: a one-server cluster the others then join."""
    check_raft_address(local)
    member = _new_member(folder)
    _tool(["ovsdb-tool", "create-cluster", str(member.database), str(NORTHBOUND_SCHEMA), local])
    return member.database


def join_cluster(folder: Path, local: str, remotes: Sequence[str]) -> Path:
    """A further member's database file. It becomes a member when its ovsdb-server first reaches
    one of `remotes` (any member will do) and the leader adds it."""
    for address in (local, *remotes):
        check_raft_address(address)
    if not remotes:
        raise ClusterError("joining a cluster needs the Raft address of at least one member")
    if local in remotes:
        raise ClusterError(f"{local} is this member's own address; the remotes are the other members'")
    member = _new_member(folder)
    _tool(["ovsdb-tool", "join-cluster", str(member.database), DATABASE, local, *remotes])
    return member.database


def _new_member(folder: Path) -> MemberFolder:
    member = MemberFolder(folder)
    if member.database.exists():
        raise ClusterError(f"{member.database} exists already; a folder holds one member")
    folder.mkdir(parents=True, exist_ok=True)
    return member


def serve_command(database: Path, folder: Path, client_remotes: Sequence[str], tls: Tls | None = None) -> list[str]:
    """The ovsdb-server command line of one member, with its pid file, control socket and log in
    `folder`. It detaches once running, so callers start it with `start_detaching` in the
    namespace that holds the member's Raft address. A member whose Raft address is ssl: needs `tls`."""
    if not client_remotes:
        raise ClusterError("a member needs at least one client remote (punix:PATH or ptcp:PORT:IP)")
    if tls is None and any(r.startswith("pssl:") for r in client_remotes):
        raise ClusterError("pssl: client remotes need a private key, certificate and CA certificate")
    member = MemberFolder(folder)
    argv = ["ovsdb-server", str(database), *(f"--remote={check_client_remote(r)}" for r in client_remotes)]
    if tls is not None:
        argv += [f"--private-key={tls.private_key}", f"--certificate={tls.certificate}",
                 f"--ca-cert={tls.ca_certificate}"]
    return argv + [f"--pidfile={member.pidfile}", f"--unixctl={member.control_socket}",
                   f"--log-file={member.log}", "--detach", "--no-chdir"]


# -- asking a member --------------------------------------------------------------------------------


def cluster_status(control_socket: Path) -> ClusterStatus:
    """What the member behind `control_socket` (its --unixctl) knows of the cluster."""
    output = _tool(["ovs-appctl", f"--timeout={STATUS_TIMEOUT}", "-t", str(control_socket), "cluster/status",
                    DATABASE])
    return parse_cluster_status(output)


SERVER_LINE = re.compile(r"^\s+(?P<id>[0-9a-f]+) \((?P=id) at (?P<address>[^)]+)\)(?P<rest>.*)$")
LAST_MESSAGE = re.compile(r"last msg (\d+) ms ago")
LOG_RANGE = re.compile(r"\[(\d+), (\d+)\]")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+\|")  # a tool's own log lines, beside its message


def parse_cluster_status(text: str) -> ClusterStatus:
    """The fields of `cluster/status` output (OVS 2.9 and later print it this way)."""
    fields: dict[str, str] = {}
    servers: list[ClusterServer] = []
    for line in text.splitlines():
        server = SERVER_LINE.match(line)
        if server:
            last = LAST_MESSAGE.search(server["rest"])
            servers.append(ClusterServer(server["id"], server["address"], "(self)" in server["rest"],
                                         int(last[1]) if last else None))
        elif ": " in line and not line.startswith(" "):
            key, _, value = line.partition(": ")
            fields[key] = value.strip()
    try:
        server_id = fields["Server ID"].split()[0]
        log = LOG_RANGE.fullmatch(fields.get("Log", ""))
        return ClusterStatus(
            database=fields["Name"],
            server_id=server_id,
            cluster_id=None if fields["Cluster ID"] == "not yet known" else fields["Cluster ID"].split()[0],
            address=fields["Address"],
            status=fields["Status"],
            role=fields["Role"],
            term=int(fields["Term"]),
            leader={"self": server_id, "unknown": None}.get(fields["Leader"], fields["Leader"]),
            election_timer_ms=int(fields["Election timer"]) if "Election timer" in fields else None,
            log=(int(log[1]), int(log[2])) if log else None,
            uncommitted=int(fields.get("Entries not yet committed", 0)),
            unapplied=int(fields.get("Entries not yet applied", 0)),
            servers=tuple(servers),
        )
    except (KeyError, ValueError) as error:
        raise ClusterError(f"unexpected cluster/status output (no {error}):\n{text}") from None


def _tool(argv: list[str]) -> str:
    """Run one of Open vSwitch's tools; its own message is the error when it fails."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except FileNotFoundError:
        raise ClusterError(f"{argv[0]} is not installed (Debian: openvswitch-common)") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{' '.join(argv)} did not finish within {TOOL_TIMEOUT:.0f}s") from None
    if result.returncode != 0:
        said = [line for line in (result.stdout + result.stderr).splitlines() if line and not LOG_LINE.match(line)]
        raise ClusterError("; ".join(said) or f"{argv[0]} exited with status {result.returncode}")
    return result.stdout
