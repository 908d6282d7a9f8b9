"""Names of the namespaces and links a lab makes.

Every namespace name starts with the lab's name, so two labs built from two
files never collide and `ip netns` shows whose is whose. Links are created
directly inside lab namespaces (never in the root namespace), so their names
only need to be unique within their namespace and short enough for Linux.
"""

from __future__ import annotations

from sdnvirt.vswitch.names import interface_name


def host_namespace(lab: str, host: str) -> str:
    return f"{lab}-host-{host}"


def guest_namespace(lab: str, guest: str) -> str:
    return f"{lab}-vm-{guest}"


def fabric_namespace(lab: str) -> str:
    """The namespace holding every segment's L2 domain and the router between them."""
    return f"{lab}-fabric"


def controller_namespace(lab: str) -> str:
    """The controller's own namespace: its only doors are unix sockets."""
    return f"{lab}-ctl"


def segment_bridge(segment: str) -> str:
    return interface_name("s-", segment)


def segment_uplink(host: str) -> str:
    """The fabric-side end of a host's underlay link."""
    return interface_name("h-", host)


def management_uplink(host: str) -> str:
    """The fabric-side end of a host's management NIC."""
    return interface_name("m-", host)


CONTROLLER_UPLINK = "c-mgmt"  # the fabric-side end of the controller's management NIC (`--ssl`)


UNDERLAY_NIC = "eth0"  # a host's physical NIC, inside br-phy
