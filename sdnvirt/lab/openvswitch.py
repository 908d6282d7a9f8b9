"""One lab host's own Open vSwitch: an ovsdb-server and an ovs-vswitchd in its namespace.

Each host gets its own database, run folder, pid files and logs, so several
instances run side by side and the standard tools reach each one with
OVS_RUNDIR set (`sdnvirt lab status` prints how).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdnvirt.lab.paths import HostPaths
from sdnvirt.lab.pki import Credentials
from sdnvirt.lab.process import control_plane, start_detaching
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux.netns import run_in_namespace
from sdnvirt.vswitch.names import OFCTL_PROTOCOL, OVSDB_PORT

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


@dataclass(frozen=True)
class SslListener:
    """Where a host's OVSDB also listens for the controller, and the certificates both
    its OVSDB server and its ovs-vswitchd show and check (a lab up with `--ssl`)."""

    address: str
    credentials: Credentials


class HostOpenvswitch:
    def __init__(self, host: str, namespace: str, paths: HostPaths, ssl: SslListener | None = None):
        self.host = host
        self.namespace = namespace
        self.paths = paths
        self.ssl = ssl

    @property
    def env(self) -> dict[str, str]:
        run = str(self.paths.ovs_run)
        return {"OVS_RUNDIR": run, "OVS_DBDIR": str(self.paths.root), "OVS_LOGDIR": str(self.paths.logs)}

    def start(self, record: LabRecord) -> None:
        self.paths.ovs_run.mkdir(parents=True, exist_ok=True)
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        run_in_namespace(None, ["ovsdb-tool", "create", str(self.paths.ovsdb_file), str(SCHEMA)])
        self.start_ovsdb_server(record)
        self.vsctl("--no-wait", "init")
        if self.ssl is not None:  # what ovs-vswitchd shows the controller, and checks it with
            c = self.ssl.credentials
            self.vsctl("--no-wait", "set-ssl", str(c.private_key), str(c.certificate), str(c.peer_ca))
        self.start_vswitchd(record)

    def start_ovsdb_server(self, record: LabRecord) -> None:
        remotes = [f"--remote=punix:{self.paths.ovsdb_socket}"]
        if self.ssl is not None:
            c = self.ssl.credentials
            remotes += [f"--remote=pssl:{OVSDB_PORT}:{self.ssl.address}", f"--private-key={c.private_key}",
                        f"--certificate={c.certificate}", f"--ca-cert={c.peer_ca}"]
        record.add_process(start_detaching(
            f"{self.host}/ovsdb-server", self.namespace,
            control_plane(["ovsdb-server", str(self.paths.ovsdb_file), *remotes,
                           f"--pidfile={self.paths.ovsdb_pidfile}",
                           f"--log-file={self.paths.logs / 'ovsdb-server.log'}", "--detach", "--no-chdir"]),
            self.paths.ovsdb_pidfile, self.env))

    def start_vswitchd(self, record: LabRecord) -> None:
        record.add_process(start_detaching(
            f"{self.host}/ovs-vswitchd", self.namespace,
            control_plane(["ovs-vswitchd", f"unix:{self.paths.ovsdb_socket}",
                           f"--pidfile={self.paths.vswitchd_pidfile}",
                           f"--log-file={self.paths.logs / 'ovs-vswitchd.log'}", "--detach", "--no-chdir"]),
            self.paths.vswitchd_pidfile, self.env))

    def vsctl(self, *args: str) -> str:
        return run_in_namespace(None, ["ovs-vsctl", f"--db=unix:{self.paths.ovsdb_socket}", "--timeout=10",
                                       *args], self.env).stdout

    def ofctl(self, *args: str) -> str:
        return run_in_namespace(None, ["ovs-ofctl", "-O", OFCTL_PROTOCOL, *args], self.env).stdout

    def appctl(self, *args: str) -> str:
        return run_in_namespace(None, ["ovs-appctl", "-t", "ovs-vswitchd", *args], self.env).stdout
