"""Names of the bridges and ports sdnvirt makes on a host's Open vSwitch."""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15  # longest Linux interface name
INTEGRATION_BRIDGE = "br-int"
UNDERLAY_BRIDGE = "br-phy"


def interface_name(prefix: str, name: str) -> str:
    """`prefix + name`, shortened with a hash suffix when Linux would not take it."""
    full = prefix + name
    if len(full) <= IFNAMSIZ:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    return full[: IFNAMSIZ - 5] + "-" + digest


def tunnel_port(remote_host: str) -> str:
    return interface_name("vx-", remote_host)


def datapath_id(topology: str, host: str) -> int:
    """A stable 48-bit datapath id per host, so the controller knows a bridge on connect."""
    return int.from_bytes(hashlib.sha256(f"{topology}/{host}".encode()).digest()[:6], "big")
