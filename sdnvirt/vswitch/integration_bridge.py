"""The integration bridge and its tunnels, as the controller wants them on a host.

The controller owns br-int: it creates it with the userspace datapath, makes
itself the only controller in fail-mode secure (so a bridge without its
controller forwards nothing and keeps its flows), and keeps one VXLAN port per
other host. Tunnel ports carry an external id naming the remote host, which is
how they are found again; their names are only for people.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsdbapp.schema.open_vswitch import impl_idl

from sdnvirt.vswitch.names import INTEGRATION_BRIDGE, PROTOCOLS, tunnel_port
from sdnvirt.vswitch.ports import REMOTE_HOST

VXLAN_PORT = 4789
# A bridge that lost its controller dials again after at most this long. Open vSwitch's own
# default doubles the wait up to 8 s when connections end in quick succession (a restarted
# controller, a reconnect), so how soon a bridge came back depended on what came before.
CONTROLLER_MAX_BACKOFF_MS = 1000  # the least Open vSwitch accepts


@dataclass(frozen=True)
class BridgeSettings:
    datapath_id: int
    controller: str  # OVS target, e.g. unix:/run/sdnvirt/demo/hosts/hv1/ovs/controller.sock
    datapath_type: str = "netdev"


def ensure_integration_bridge(api: impl_idl.OvsdbIdl, settings: BridgeSettings) -> None:
    """Create or correct br-int in one transaction; an unchanged bridge is not touched."""
    with api.transaction(check_error=True) as txn:
        txn.add(api.add_br(INTEGRATION_BRIDGE, may_exist=True, datapath_type=settings.datapath_type))
        txn.add(api.db_set(
            "Bridge", INTEGRATION_BRIDGE,
            ("fail_mode", "secure"),
            ("protocols", PROTOCOLS),
            ("other_config", {"datapath-id": f"{settings.datapath_id:016x}", "disable-in-band": "true"}),
        ))
    if api.get_controller(INTEGRATION_BRIDGE).execute(check_error=True) != [settings.controller]:
        api.set_controller(INTEGRATION_BRIDGE, [settings.controller]).execute(check_error=True)
    for row in api.db_find_rows("Controller", ("target", "=", settings.controller)).execute(check_error=True):
        if list(row.max_backoff) != [CONTROLLER_MAX_BACKOFF_MS]:
            api.db_set("Controller", row.uuid, ("max_backoff", CONTROLLER_MAX_BACKOFF_MS)).execute(check_error=True)


def ensure_tunnels(api: impl_idl.OvsdbIdl, remotes: dict[str, str]) -> None:
    """One VXLAN port per remote host (name -> underlay address); others of ours removed."""
    rows = api.db_find_rows("Interface", ("external_ids", "!=", {})).execute(check_error=True)
    ours = {row.external_ids[REMOTE_HOST]: row for row in rows if REMOTE_HOST in row.external_ids}
    with api.transaction(check_error=True) as txn:
        for remote, row in ours.items():
            if remote not in remotes:
                txn.add(api.del_port(row.name, bridge=INTEGRATION_BRIDGE, if_exists=True))
        for remote, address in sorted(remotes.items()):
            options = {"remote_ip": address, "key": "flow", "dst_port": str(VXLAN_PORT)}
            row = ours.get(remote)
            if row is not None and row.type == "vxlan" and dict(row.options) == options:
                continue
            name = row.name if row is not None else tunnel_port(remote)
            txn.add(api.add_port(INTEGRATION_BRIDGE, name, may_exist=True))
            txn.add(api.db_set("Interface", name, ("type", "vxlan"), ("options", options),
                               ("external_ids", {REMOTE_HOST: remote})))
