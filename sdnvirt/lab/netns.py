"""The lab's namespaces: each one is recorded before it is made, so `lab down` finds it."""

from __future__ import annotations

from pathlib import Path

from pyroute2.netns import NETNS_RUN_DIR

from sdnvirt.lab.process import NamespaceId, namespace_id
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns


def create(record: LabRecord, name: str, *, forwarding: bool = False) -> None:
    record.add_namespace(name)
    netns.make(name, forwarding=forwarding)


def identities(names: list[str]) -> dict[str, NamespaceId]:
    """Which namespace each name stands for now, to find what runs inside before it is removed.

    Left out: names not made (or only half: a file that no namespace is bound to yet), and the
    machine's own namespace or this process's, so that a name bound to either can never make
    the lab stop what runs there."""
    machine, own = namespace_id("/proc/1/ns/net"), namespace_id("/proc/self/ns/net")
    found = {name: namespace_id(Path(NETNS_RUN_DIR) / name) for name in names}
    return {name: identity for name, identity in found.items()
            if identity is not None and own is not None and identity[0] == own[0] and identity not in (machine, own)}
