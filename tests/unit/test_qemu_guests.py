"""The qemu guest kind against a fake libvirt: what a failed start leaves (nothing), the shutdown's
fallback to ACPI, a busy agent, and what a libvirtd that reconnects shows (a VM that vanished, a
domain the topology no longer has)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import libvirt
import pytest

from sdnvirt.compute.domain import DomainFiles
from sdnvirt.compute.hypervisor import LISTED, DomainEvent, HypervisorError
from sdnvirt.controller.guests import qemu
from sdnvirt.controller.guests.qemu import QemuGuests
from sdnvirt.errors import Conflict, Failed, Insufficient, TimedOut, Unavailable
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.topology import guest_uuid

TOPOLOGY = load_topology_text("""
name: fakes
segments: {rack1: {subnet: 100.64.1.0/24}}
hosts: {hv1: {segment: rack1}, hv2: {segment: rack1}}
tenants: {blue: {networks: {web: {subnet: 10.0.0.0/24}}}}
vms:
  vm1: {host: hv1, kind: qemu, memory: 128, nics: [{network: blue/web, ip: 10.0.0.11}]}
  vm2: {host: hv2, kind: qemu, memory: 128, nics: [{network: blue/web, ip: 10.0.0.12}]}
""", "fakes.yaml")


def libvirt_error(message: str) -> libvirt.libvirtError:
    error = libvirt.libvirtError(message)
    error.err = (libvirt.VIR_ERR_INTERNAL_ERROR, 0, message, 0, "", "", "", 0, 0)
    return error


class FakeDomain:
    def __init__(self, hypervisor: FakeHypervisor, name: str, uuid: str, xml: str = ""):
        self.hypervisor, self._name, self.uuid, self.xml = hypervisor, name, uuid, xml
        self.active = False
        self.calls: list[str] = []
        self.fail_create = False
        self.obeys_acpi = True

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # noqa: N802 (libvirt's name)
        return self.uuid

    def isActive(self) -> bool:  # noqa: N802
        return self.active

    def XMLDesc(self, flags: int = 0) -> str:  # noqa: N802
        return self.xml

    def hasManagedSaveImage(self) -> bool:  # noqa: N802
        return False

    def create(self) -> None:
        self.calls.append("create")
        if self.fail_create:
            raise libvirt_error("QEMU exited at once")
        self.active = True
        self.hypervisor.emit(self, libvirt.VIR_DOMAIN_EVENT_STARTED, "running")

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        if self.obeys_acpi:
            self.active = False
            self.hypervisor.emit(self, libvirt.VIR_DOMAIN_EVENT_STOPPED, "shut-off")

    def destroy(self) -> None:
        self.calls.append("destroy")
        self.active = False

    def undefine(self) -> None:
        self.calls.append("undefine")
        self.hypervisor.domains.pop(self._name, None)

    def undefineFlags(self, flags: int) -> None:  # noqa: N802
        self.undefine()


class FakeConnection:
    def __init__(self, hypervisor: FakeHypervisor):
        self.hypervisor = hypervisor

    def defineXML(self, xml: str) -> FakeDomain:  # noqa: N802
        name = xml.split("<name>")[1].split("</name>")[0]
        domain = FakeDomain(self.hypervisor, name, guest_uuid(TOPOLOGY.name, name), xml)
        self.hypervisor.domains[name] = domain
        return domain


class FakeHypervisor:
    def __init__(self, host: str, free_mib: int = 4096):
        self.host, self.free_mib = host, free_mib
        self.domains: dict[str, FakeDomain] = {}
        self.guests: QemuGuests | None = None
        self.connected = True

    def connection(self) -> FakeConnection:
        if not self.connected:
            raise HypervisorError(f"host {self.host}'s libvirtd is not reachable", "host")
        return FakeConnection(self)

    def domain(self, name: str) -> FakeDomain | None:
        return self.domains.get(name)

    def free_memory_mib(self) -> int:
        return self.free_mib

    def emit(self, domain: FakeDomain, event: int, state: str) -> None:
        """libvirt's lifecycle event, from its own thread as libvirt delivers it."""
        threading.Thread(target=self.guests.domain_event, args=(
            DomainEvent(self.host, domain.name(), domain.uuid, state, event, 0, time.monotonic()),)).start()


@pytest.fixture
def kind(tmp_path):
    hypervisors = {"hv1": FakeHypervisor("hv1"), "hv2": FakeHypervisor("hv2")}
    published: list[dict] = []

    def files(host: str, vm: str) -> DomainFiles:
        return DomainFiles(Path("/k"), Path("/i"), tmp_path / f"{host}-{vm}.log", tmp_path / f"{host}-{vm}.sock")

    guests = QemuGuests(TOPOLOGY, hypervisors, files, lambda: {}, published.append)
    for hypervisor in hypervisors.values():
        hypervisor.guests = guests
    guests.published = published
    return guests


def test_a_start_that_fails_leaves_nothing_defined(kind):
    hv1 = kind.hypervisors["hv1"]
    original = FakeConnection.defineXML

    def define_failing(self, xml):
        domain = original(self, xml)
        domain.fail_create = True
        return domain

    FakeConnection.defineXML = define_failing
    try:
        with pytest.raises(Failed, match="did not start on hv1: QEMU exited at once"):
            kind.start("vm1")
    finally:
        FakeConnection.defineXML = original
    assert hv1.domains == {} and kind.state("vm1").state == "absent"


def test_a_host_without_the_memory_is_refused_before_anything_is_defined(kind):
    kind.hypervisors["hv1"].free_mib = 100
    with pytest.raises(Insufficient, match="cannot give vm vm1 128 MiB"):
        kind.start("vm1")
    assert kind.hypervisors["hv1"].domains == {}


def test_an_unreachable_libvirtd_is_unavailable(kind):
    kind.hypervisors["hv1"].connected = False
    with pytest.raises(Unavailable, match="not reachable"):
        kind.start("vm1")


def test_shutdown_falls_back_to_acpi_when_the_agent_does_not_answer(kind):
    running = kind.start("vm1")
    assert (running.host, running.state) == ("hv1", "running")
    with pytest.raises(Conflict, match="already running"):
        kind.start("vm1")
    off = kind.shutdown("vm1")  # no agent socket: ACPI
    assert off.state == "shut-off" and kind.hypervisors["hv1"].domains["vm1"].calls == ["create", "shutdown"]


def test_a_guest_that_ignores_acpi_too_times_out_and_says_how_to_stop_it(kind, monkeypatch):
    kind.start("vm1")
    kind.hypervisors["hv1"].domains["vm1"].obeys_acpi = False
    with pytest.raises(TimedOut, match="sdnvirt vm destroy vm1"):
        kind.shutdown("vm1", timeout=0.3)
    assert kind.state("vm1").state == "running"


def test_a_busy_agent_is_unavailable_not_a_hang(kind, monkeypatch):
    kind.start("vm1")
    monkeypatch.setattr(qemu, "AGENT_QUEUE_WAIT", 0.1)
    with kind._agent_locks["vm1"]:  # another request holds the VM's one channel
        began = time.monotonic()
        with pytest.raises(Unavailable, match="agent is busy"):
            kind.exec("vm1", ["true"], timeout=0.1)
    assert time.monotonic() - began < 2


def test_a_reconnected_libvirtd_shows_what_vanished_and_removes_what_the_topology_no_longer_has(kind):
    kind.start("vm2")
    hv1, hv2 = kind.hypervisors["hv1"], kind.hypervisors["hv2"]
    # while hv2's connection was down: vm2 vanished; a VM removed from the topology (ours by its
    # uuid) still runs on hv1; and a domain that is not ours runs there too
    hv2.domains.clear()
    stale = FakeDomain(hv1, "old", guest_uuid(TOPOLOGY.name, "old"))
    stale.active = True
    foreign = FakeDomain(hv1, "someone", "00000000-0000-0000-0000-000000000001")
    foreign.active = True
    hv1.domains.update(old=stale, someone=foreign)

    kind.host_connected("hv2", [])
    assert kind.state("vm2").state == "absent"
    assert kind.published == [{"vm": "vm2", "host": "hv2", "event": "vanished", "state": "absent"}]
    listing = [DomainEvent("hv1", d.name(), d.uuid, "running", LISTED, 0, time.monotonic()) for d in (stale, foreign)]
    kind.host_connected("hv1", listing)
    assert "old" not in hv1.domains and stale.calls == ["destroy", "undefine"]
    assert hv1.domains["someone"] is foreign and foreign.calls == []


def test_the_console_is_read_from_the_end_of_its_log(kind, tmp_path, monkeypatch):
    log = tmp_path / "hv1-vm1.log"
    log.write_text("".join(f"line {n}\n" for n in range(100_000)))
    monkeypatch.setattr(qemu, "CONSOLE_TAIL_BYTES", 4096)
    assert kind.console("vm1", 3) == "line 99997\nline 99998\nline 99999"
    assert len(kind.console("vm1", 10_000).splitlines()) < 4096 // 10  # never more than the tail read
