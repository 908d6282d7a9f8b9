"""What the controller learns from a host's OVSDB: bindings and tunnel ports.

A VM interface is recognised by the external_ids that libvirt (and OpenStack,
and OVN) write: iface-id names the logical port, attached-mac its MAC, vm-id
the domain. Interface names mean nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass

IFACE_ID = "iface-id"
ATTACHED_MAC = "attached-mac"
VM_ID = "vm-id"
IFACE_STATUS = "iface-status"
# external_ids keys sdnvirt writes: on the tunnel ports it makes, and on a VM
# interface once the host's bridge holds its flows (what libvirt's hook waits for)
REMOTE_HOST = "sdnvirt-remote-host"
READY = "sdnvirt-ready"
READY_AT = "sdnvirt-ready-at"


@dataclass(frozen=True)
class Binding:
    """A logical port bound to an interface on a host's integration bridge."""

    port_id: str
    host: str
    interface: str
    ofport: int
    mac: str
    vm_id: str
    ready_at: float | None = None  # when the controller had programmed it (epoch seconds)


@dataclass(frozen=True)
class TunnelPort:
    host: str
    remote: str
    interface: str
    ofport: int


@dataclass(frozen=True)
class HostPorts:
    """One host's integration-bridge ports, as its OVSDB shows them now."""

    host: str
    bindings: tuple[Binding, ...] = ()
    tunnels: tuple[TunnelPort, ...] = ()


def host_ports(host: str, interfaces: list[tuple[str, int, dict[str, str]]]) -> HostPorts:
    """Bindings and tunnels among (name, ofport, external_ids) of a bridge's interfaces.

    Interfaces without a valid ofport (not yet attached, or failed) are left
    out: a flow cannot point at them.
    """
    bindings, tunnels = [], []
    for name, ofport, ids in interfaces:
        if ofport <= 0:
            continue
        if IFACE_ID in ids and ids.get(IFACE_STATUS, "active") == "active":
            bindings.append(Binding(ids[IFACE_ID], host, name, ofport, ids.get(ATTACHED_MAC, "").lower(),
                                    ids.get(VM_ID, ""), _seconds(ids.get(READY_AT))))
        elif REMOTE_HOST in ids:
            tunnels.append(TunnelPort(host, ids[REMOTE_HOST], name, ofport))
    return HostPorts(host, tuple(sorted(bindings, key=lambda b: b.port_id)),
                     tuple(sorted(tunnels, key=lambda t: t.remote)))


def _seconds(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
