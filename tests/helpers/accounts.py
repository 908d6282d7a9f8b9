"""A guest's accounts as the controller serves them, read once it has read every host."""

from __future__ import annotations

import time

from sdnvirt.lab.lab import Lab

from helpers.guests import wait_until

CONTINUOUS = ("received_packets", "received_bytes", "sent_packets", "sent_bytes", "cpu_time_ns")


def accounted(lab: Lab, vm: str) -> dict:
    """The VM's counters once the controller has read every host after now."""
    now = time.time()
    return wait_until(lambda: (c := lab.api().counters())["at"] is not None and c["at"] > now and c,
                      timeout=10)["vms"][vm]


def assert_counters_went_on(before: dict, after: dict) -> None:
    """Nothing went back (a new tap or QEMU counts from zero: the account must not), and what each
    host counted before is still there."""
    went_back = {c: (before["counters"][c], after["counters"][c]) for c in CONTINUOUS
                 if after["counters"][c] < before["counters"][c]}
    assert not went_back, went_back
    for host, counts in before["by_host"].items():
        assert all(after["by_host"][host][c] >= counts[c] for c in CONTINUOUS), (host, counts, after["by_host"][host])
