"""The lab's namespaces: each one is recorded before it is made, so `lab down` finds it."""

from __future__ import annotations

from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns


def create(record: LabRecord, name: str, *, forwarding: bool = False) -> None:
    record.add_namespace(name)
    netns.make(name, forwarding=forwarding)
