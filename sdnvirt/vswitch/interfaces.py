"""Guest interfaces on a host's integration bridge, plugged the way libvirt plugs a VM's tap.

The interface (a veth end, a tap) exists on the host first; plugging adds it to
br-int with the external_ids that bind it to its logical port, in one
transaction, so the controller never sees it half-described.
"""

from __future__ import annotations

from ovsdbapp.schema.open_vswitch import impl_idl

from sdnvirt.vswitch.names import INTEGRATION_BRIDGE


def plug_interface(api: impl_idl.OvsdbIdl, name: str, external_ids: dict[str, str]) -> None:
    with api.transaction(check_error=True) as txn:
        txn.add(api.add_port(INTEGRATION_BRIDGE, name, may_exist=True))
        txn.add(api.db_set("Interface", name, ("external_ids", external_ids)))


def unplug_interface(api: impl_idl.OvsdbIdl, name: str) -> None:
    api.del_port(name, bridge=INTEGRATION_BRIDGE, if_exists=True).execute(check_error=True)
