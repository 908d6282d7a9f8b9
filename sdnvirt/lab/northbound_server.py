"""A lab's northbound database: one standalone ovsdb-server in the lab's folder.

It runs in the controller's namespace and listens on a unix socket only.
`lab up` starts it, fills it with the topology file, and only then starts
the controller, which reads everything it needs from there.
"""

from __future__ import annotations

from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import control_plane, start_detaching
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux.netns import run_in_namespace
from sdnvirt.northbound.cluster import MemberFolder, serve_command
from sdnvirt.resources import NORTHBOUND_SCHEMA

NORTHBOUND = "northbound"


def northbound_remote(paths: LabPaths) -> str:
    return f"unix:{paths.northbound_socket}"


def start_northbound(paths: LabPaths, namespace: str, record: LabRecord, create: bool = True) -> None:
    member = MemberFolder(paths.northbound)
    if create:
        member.path.mkdir(parents=True, exist_ok=True)
        run_in_namespace(None, ["ovsdb-tool", "create", str(member.database), str(NORTHBOUND_SCHEMA)])
    argv = serve_command(member.database, member.path, [f"punix:{paths.northbound_socket}"])
    record.add_process(start_detaching(NORTHBOUND, namespace, control_plane(argv), member.pidfile))
