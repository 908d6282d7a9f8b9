"""What the hypervisors hold follows the desired state and is read again, whatever happened while
the controller or its libvirt connection was away: a VM the topology no longer has is undefined by
a controller that died before it could do it, and a VM that vanished while a host's libvirtd was
down is reported as gone once it is back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import libvirt
import pytest

from sdnvirt.lab.northbound_server import northbound_remote
from sdnvirt.lab.process import start_time
from sdnvirt.model.loader import load_topology_text
from sdnvirt.northbound.database import Northbound

from helpers.guests import kept_events, nic, ping, vm_ping, wait_until
from helpers.labs import build_lab

TOPOLOGY = """\
name: hvs
segments:
  rack1: {subnet: 100.64.1.0/24}
hosts:
  hv1: {segment: rack1}
tenants:
  blue: {networks: {web: {subnet: 10.0.0.0/24}}}
vms:
  vm1: {host: hv1, kind: qemu, memory: 128, nics: [{network: blue/web, ip: 10.0.0.11}]}
  vm2: {host: hv1, kind: qemu, memory: 128, nics: [{network: blue/web, ip: 10.0.0.12}]}
  n1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.2}]}
"""


@pytest.fixture
def lab(tmp_path):
    """A lab of its own for each test: each one leaves its hypervisor changed."""
    path = tmp_path / "hvs.yaml"
    path.write_text(TOPOLOGY)
    yield from build_lab(path)


def domains(lab, host: str) -> dict[str, bool]:
    """The host's domains as its libvirtd says (name -> active), on a connection of the test's own."""
    connection = libvirt.open(lab.hosts()[host].libvirtd.uri)
    try:
        held = {}
        for domain in connection.listAllDomains():
            try:
                held[domain.name()] = bool(domain.isActive())
            except libvirt.libvirtError as error:  # undefined between the listing and the question
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return held
    finally:
        connection.close()


def test_a_vm_removed_while_the_controller_was_down_is_undefined_when_it_is_back(lab):
    assert domains(lab, "hv1") == {"vm1": True, "vm2": True}
    lab.stop_process("controller", kill=True)  # as if it died right after writing the change
    northbound = Northbound(northbound_remote(lab.paths))
    northbound.connect()
    try:
        text = TOPOLOGY.replace("  vm2: {host: hv1, kind: qemu, memory: 128, nics: [{network: blue/web, "
                                "ip: 10.0.0.12}]}\n", "")
        northbound.load_topology(load_topology_text(text, "hvs.yaml"), text)
    finally:
        northbound.close()
    lab.start_process("controller")
    wait_until(lambda: domains(lab, "hv1") == {"vm1": True}, timeout=30)
    assert "vm2" not in {vm["name"] for vm in lab.api().vms()}
    assert ping(lab, "n1", str(nic(lab, "vm1").ip)) == 3  # the other VM was left alone
    assert vm_ping(lab, "vm1", str(nic(lab, "n1").ip)) == 3


def test_a_vm_that_vanished_while_its_libvirtd_was_down_is_reported_gone(lab):
    libvirt_folder = lab.hosts()["hv1"].paths.libvirt
    qemu_pid = int((libvirt_folder / "run" / "qemu" / "vm2.pid").read_text())
    began = start_time(qemu_pid)
    lab.stop_process("hv1/libvirtd", kill=True)
    wait_until(lambda: not lab.api().status()["hosts"]["hv1"]["libvirt_connected"], timeout=30)
    # meanwhile the host lost vm2: its QEMU and its definition are gone
    if start_time(qemu_pid) == began:  # still the QEMU this lab started
        os.kill(qemu_pid, signal.SIGKILL)
    wait_until(lambda: start_time(qemu_pid) != began, timeout=10)
    for leftover in (libvirt_folder / "etc" / "qemu" / "vm2.xml", libvirt_folder / "run" / "qemu" / "vm2.xml"):
        Path(leftover).unlink(missing_ok=True)
    lab.start_process("hv1/libvirtd")

    gone = kept_events(lab, lambda seen: any(e["kind"] == "vm" and e["data"].get("event") == "vanished"
                                             for e in seen), timeout=30)
    vanished = [e["data"] for e in gone if e["kind"] == "vm" and e["data"].get("event") == "vanished"]
    assert vanished == [{"at": vanished[0]["at"], "vm": "vm2", "host": "hv1", "event": "vanished",
                         "state": "absent"}]
    assert lab.api().vm("vm2")["state"] == "absent"
    vm1 = lab.api().vm("vm1")
    assert (vm1["host"], vm1["state"]) == ("hv1", "running")  # read again: QEMU outlived its libvirtd
    assert vm_ping(lab, "vm1", str(nic(lab, "n1").ip)) == 3
    assert lab.api().vm_action("vm2", "start")["state"] == "running"  # defined anew
