"""Names of the bridges and ports sdnvirt makes on a host's Open vSwitch."""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15  # longest Linux interface name
INTEGRATION_BRIDGE = "br-int"
UNDERLAY_BRIDGE = "br-phy"

# OpenFlow 1.4 for the controller (bundles); 1.3 also answers `ovs-ofctl -O OpenFlow13`.
# Not 1.0: Open vSwitch cannot show write_metadata flows in OpenFlow 1.0.
PROTOCOLS = ["OpenFlow13", "OpenFlow14"]
OFCTL_PROTOCOL = "OpenFlow14"  # what people and tests pass to ovs-ofctl -O
OVSDB_PORT = 6640  # IANA's, for OVSDB over SSL between hosts
OPENFLOW_PORT = 6653  # IANA's, for OpenFlow over SSL


def interface_name(prefix: str, name: str) -> str:
    """`prefix + name`, shortened with a hash suffix when Linux would not take it."""
    full = prefix + name
    if len(full) <= IFNAMSIZ:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    return full[: IFNAMSIZ - 5] + "-" + digest


def guest_port(port_id: str) -> str:
    """The host's end of a netns guest's NIC, named after its logical port (as Neutron names taps)."""
    return "tap" + port_id[:11]


def tunnel_port(remote_host: str) -> str:
    return interface_name("vx-", remote_host)


def datapath_id(topology: str, host: str) -> int:
    """A stable 48-bit datapath id per host, so the controller knows a bridge on connect."""
    return int.from_bytes(hashlib.sha256(f"{topology}/{host}".encode()).digest()[:6], "big")
