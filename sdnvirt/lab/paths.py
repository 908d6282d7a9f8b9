"""Where a lab keeps its sockets, pid files, logs and record.

Everything a lab makes on disk lives under one folder per lab, so `lab down`
can remove it whole. Unix socket paths must stay under 108 bytes, which is why
the default root is short.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/run/sdnvirt")
SUN_PATH_MAX = 107  # usable bytes of sockaddr_un.sun_path


def labs_root() -> Path:
    return Path(os.environ.get("SDNVIRT_LAB_ROOT", DEFAULT_ROOT))


@dataclass(frozen=True)
class HostPaths:
    """One host's folders: its OVS run folder doubles as /var/run/openvswitch."""

    root: Path

    @property
    def ovs_run(self) -> Path:
        return self.root / "ovs"

    @property
    def ovsdb_socket(self) -> Path:
        return self.ovs_run / "db.sock"

    @property
    def ovsdb_file(self) -> Path:
        return self.root / "conf.db"

    @property
    def ovsdb_pidfile(self) -> Path:
        return self.ovs_run / "ovsdb-server.pid"

    @property
    def vswitchd_pidfile(self) -> Path:
        return self.ovs_run / "ovs-vswitchd.pid"

    @property
    def controller_socket(self) -> Path:
        """ovs-vswitchd only connects to unix controllers inside its run folder."""
        return self.ovs_run / "controller.sock"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    def bridge_mgmt(self, bridge: str) -> Path:
        return self.ovs_run / f"{bridge}.mgmt"

    @property
    def libvirt(self) -> Path:
        """What libvirtd sees as /run/libvirt, /var/lib/libvirt, /etc/libvirt, ..."""
        return self.root / "libvirt"

    @property
    def libvirt_socket(self) -> Path:
        return self.libvirt / "sock" / "libvirt-sock"

    @property
    def libvirtd_pidfile(self) -> Path:
        return self.libvirt / "libvirtd.pid"

    @property
    def vms(self) -> Path:
        """Consoles and guest-agent sockets of the VMs running here."""
        return self.root / "vms"


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @classmethod
    def of(cls, lab: str) -> LabPaths:
        return cls(labs_root() / lab)

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def topology(self) -> Path:
        """The copy of the topology file the lab was built from."""
        return self.root / "topology.yaml"

    @property
    def openflow_socket(self) -> Path:
        return self.root / "openflow.sock"

    @property
    def api_socket(self) -> Path:
        return self.root / "api.sock"

    @property
    def northbound(self) -> Path:
        """The northbound database server's folder: its file, socket, pid file and log."""
        return self.root / "nb"

    @property
    def northbound_socket(self) -> Path:
        return self.northbound / "nb.sock"

    @property
    def inventory(self) -> Path:
        """Where the controller finds each host (controller/inventory.py)."""
        return self.root / "hosts.yaml"

    @property
    def pki(self) -> Path:
        """Certificates of a lab brought up with `--ssl` (see pki.py)."""
        return self.root / "pki"

    @property
    def api_token(self) -> Path:
        """The token the controller's TCP API asks for (a lab brought up with `--ssl`)."""
        return self.root / "api-token"

    @property
    def controller_pidfile(self) -> Path:
        return self.root / "controller.pid"

    @property
    def controller_log(self) -> Path:
        return self.root / "controller.log"

    def host(self, name: str) -> HostPaths:
        return HostPaths(self.root / "hosts" / name)

    def longest_socket(self, hosts: list[str], guests: list[str]) -> Path:
        """The longest unix socket path the lab will make (a guest may move to any host)."""
        candidates = [self.openflow_socket, self.api_socket, self.northbound_socket]
        for h in hosts:
            paths = self.host(h)
            candidates += [paths.controller_socket, paths.bridge_mgmt("br-int"), paths.libvirt_socket]
            candidates += [paths.vms / f"{g}.agent.sock" for g in guests]
        return max(candidates, key=lambda p: len(str(p)))
