"""Flow cookies that name what a flow belongs to.

The top byte says which kind of owner (the pipeline itself, a tenant network,
a logical port); the rest is a hash of the owner's name. Every flow of one
owner shares one cookie, so the owner's flows can be found, counted and
removed with a cookie mask, and a flow dump can say whose each flow is.
"""

from __future__ import annotations

import hashlib
from functools import cache

from sdnvirt.controller.state import PIPELINE_OWNER, OwnerKey
from sdnvirt.model.topology import Topology

KIND_SHIFT = 56
KINDS = {"pipeline": 1, "network": 3, "port": 4}


@cache
def owner_cookie(owner: OwnerKey) -> int:
    kind, name = owner
    digest = int.from_bytes(hashlib.sha256(f"{kind}:{name}".encode()).digest()[:7], "big")
    return (KINDS[kind] << KIND_SHIFT) | digest


def owner_names(topology: Topology) -> dict[int, str]:
    """Cookie -> a readable owner, for flow dumps."""
    names = {owner_cookie(PIPELINE_OWNER): "pipeline"}
    names.update({owner_cookie(("network", key)): f"network {key}" for key in topology.networks})
    names.update({owner_cookie(("port", nic.port_id)): f"port {guest.name}/eth{nic.index}"
                  for guest in topology.guests.values() for nic in guest.nics})
    return names
