"""Flow cookies that name what a flow belongs to.

The top byte says which kind of owner (the pipeline itself, a tenant
network, a logical port); the rest is a hash of the owner's name.
Every flow of one owner shares one cookie, so the owner's flows can be found,
counted and removed with a cookie mask, and a flow dump can say whose each
flow is.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

from sdnvirt.model.topology import Topology

KIND_SHIFT = 56


class Owner(IntEnum):
    PIPELINE = 1
    NETWORK = 3
    PORT = 4


def cookie(owner: Owner, name: str) -> int:
    digest = int.from_bytes(hashlib.sha256(f"{owner.name}:{name}".encode()).digest()[:7], "big")
    return (int(owner) << KIND_SHIFT) | digest


def owner_names(topology: Topology) -> dict[int, str]:
    """Cookie -> a readable owner, for flow dumps."""
    names = {cookie(Owner.PIPELINE, "defaults"): "pipeline"}
    names.update({cookie(Owner.NETWORK, key): f"network {key}" for key in topology.networks})
    names.update({cookie(Owner.PORT, nic.port_id): f"port {guest.name}/eth{nic.index}"
                  for guest in topology.guests.values() for nic in guest.nics})
    return names
