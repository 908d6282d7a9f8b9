"""What one host's libvirtd connection passes on: a guest's reboot once, however many resets
QEMU reports for it, and nothing from a connection already given up."""

from __future__ import annotations

import libvirt
import pytest

from sdnvirt.compute import hypervisor as hypervisor_module
from sdnvirt.compute.hypervisor import REBOOT_ECHO, DomainEvent, Hypervisor, QemuEvent


class Domain:
    def __init__(self, name: str, uuid: str):
        self._name, self._uuid = name, uuid

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # noqa: N802 (libvirt's name)
        return self._uuid

    def state(self) -> list[int]:
        return [libvirt.VIR_DOMAIN_RUNNING, 0]


@pytest.fixture
def host(monkeypatch):
    """A Hypervisor on a connection of its own (never opened), its events (libvirt's and QEMU's) collected,
    its clock ours."""
    clock = [100.0]
    monkeypatch.setattr(hypervisor_module.time, "monotonic", lambda: clock[0])
    events: list[DomainEvent] = []
    qemu_events: list[QemuEvent] = []
    hypervisor = Hypervisor("hv1", "test:///default", events.append, lambda host, domains: None, qemu_events.append)
    connection = object()
    hypervisor._conn = connection
    return hypervisor, connection, events, clock, qemu_events


def test_a_reboot_is_reported_once_whatever_resets_echo_it(host):
    hypervisor, connection, events, clock, _ = host
    vm1, vm2 = Domain("vm1", "u1"), Domain("vm2", "u2")
    hypervisor._reboot(connection, vm1, None)
    clock[0] += 0.078  # SeaBIOS's reset of the same reboot
    hypervisor._reboot(connection, vm1, None)
    hypervisor._reboot(connection, vm2, None)  # another guest's reboot is its own
    clock[0] += REBOOT_ECHO
    hypervisor._reboot(connection, vm1, None)  # a reboot after the guest had time to boot again
    assert [(e.domain, e.name, e.state, e.rebooted) for e in events] == [
        ("vm1", "rebooted", "running", True), ("vm2", "rebooted", "running", True),
        ("vm1", "rebooted", "running", True)]


def test_a_guest_that_keeps_resetting_is_reported_once_per_echo_time_not_never(host):
    hypervisor, connection, events, clock, _ = host
    vm1 = Domain("vm1", "u1")
    for _ in range(12):  # a reset every second for 12 s
        hypervisor._reboot(connection, vm1, None)
        clock[0] += 1.0
    assert len(events) == 3  # at 0, 5 and 10 s


def test_nothing_comes_from_a_connection_already_given_up(host):
    hypervisor, _, events, _, _ = host
    hypervisor._reboot(object(), Domain("vm1", "u1"), None)
    hypervisor._lifecycle(object(), Domain("vm1", "u1"), libvirt.VIR_DOMAIN_EVENT_STOPPED, 0, None)
    assert events == []


def test_qemus_own_events_carry_qemus_time_and_details(host):
    hypervisor, connection, _, _, qemu_events = host
    vm1 = Domain("vm1", "u1")
    hypervisor._qemu(connection, vm1, "STOP", 1_800_000_000, 250_000, None, None)
    hypervisor._qemu(connection, vm1, "MIGRATION", 1_800_000_001, 0, '{"status": "completed"}', None)
    hypervisor._qemu(connection, vm1, "MIGRATION_PASS", 1_800_000_002, 0, "not json", None)
    hypervisor._qemu(object(), vm1, "RESUME", 1_800_000_003, 0, None, None)  # a connection given up
    assert qemu_events == [QemuEvent("hv1", "vm1", "STOP", 1_800_000_000.25, {}, 100.0),
                           QemuEvent("hv1", "vm1", "MIGRATION", 1_800_000_001.0, {"status": "completed"}, 100.0),
                           QemuEvent("hv1", "vm1", "MIGRATION_PASS", 1_800_000_002.0, {}, 100.0)]


def test_a_libvirtd_that_refuses_qemus_events_still_connects_with_its_lifecycle_events(monkeypatch):
    """libvirt's test driver has no QEMU monitor: as a libvirtd whose access policy refuses them.
    (Nor has it keepalives, which a local connection does without.)"""
    monkeypatch.setattr(libvirt.virConnect, "setKeepAlive", lambda conn, interval, count: 0)
    listed: list[list[DomainEvent]] = []
    hypervisor = Hypervisor("hv1", "test:///default", lambda event: None, lambda host, domains: listed.append(domains),
                            lambda event: None)
    try:
        hypervisor._open()
        assert hypervisor.connected
        assert [event.domain for event in listed[0]] == ["test"]  # the test driver's one domain
        assert len(hypervisor._callbacks) == 2 and hypervisor._qemu_callbacks == []
    finally:
        hypervisor.stop()
