"""Migrations a test can act on while they run: libvirt's copy slowed down, and what its job says."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from sdnvirt.compute.live_migration import job_active
from sdnvirt.lab.lab import Lab

from helpers.guests import wait_until

SLOW_COPY = 16  # MiB/s: a 128 MiB guest then copies for about 8 s, time enough to act while it does


@contextmanager
def libvirt_domain(lab: Lab, host: str, vm: str) -> Iterator[libvirt.virDomain]:
    """The VM as the host's own libvirtd sees it (the test's own connection, not the controller's)."""
    connection = libvirt.open(lab.hosts()[host].libvirtd.uri)
    try:
        yield connection.lookupByName(vm)
    finally:
        connection.close()


@contextmanager
def slow_copy(lab: Lab, host: str, vm: str, mib_per_second: int = SLOW_COPY) -> Iterator[None]:
    """libvirt copies the VM's memory from `host` at that speed while the block runs (the speed is
    the domain's: a VM that moved away took it along to a QEMU that no longer exists)."""
    with libvirt_domain(lab, host, vm) as domain:
        before = domain.migrateGetMaxSpeed()
        domain.migrateSetMaxSpeed(mib_per_second)
    try:
        yield
    finally:
        connection = libvirt.open(lab.hosts()[host].libvirtd.uri)
        try:
            if vm in connection.listDefinedDomains() + [d.name() for d in connection.listAllDomains()]:
                connection.lookupByName(vm).migrateSetMaxSpeed(before)
        finally:
            connection.close()


def copying(lab: Lab, host: str, vm: str) -> bool:
    """libvirt runs a migration job for the VM on the host now."""
    with libvirt_domain(lab, host, vm) as domain:
        return job_active(domain)


def wait_for_state(lab: Lab, migration_id: int, state: str, timeout: float = 60) -> dict:
    """The migration's report once it is in `state` (its timeline says it got there)."""
    return wait_until(lambda: (report := lab.api().migration(migration_id))["state"] == state and report,
                      timeout=timeout, interval=0.02)
