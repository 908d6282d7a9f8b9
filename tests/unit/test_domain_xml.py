"""The domain XML of a qemu guest: what libvirt is asked for, NIC by NIC."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sdnvirt.compute.domain import DomainFiles, domain_xml, rehome
from sdnvirt.model.loader import load_topology_text

TWO_NICS = """
name: xml
segments: {rack1: {subnet: 100.64.1.0/24}}
hosts: {hv1: {segment: rack1}}
tenants: {blue: {networks: {web: {subnet: 10.0.0.0/24}, db: {subnet: 10.1.0.0/24}}}}
vms:
  vm1: {host: hv1, kind: qemu, memory: 128,
        nics: [{network: blue/web, ip: 10.0.0.11}, {network: blue/db, ip: 10.1.0.11}]}
"""
TOPOLOGY = load_topology_text(TWO_NICS, "xml.yaml")


def files(folder: str) -> DomainFiles:
    root = Path(folder)
    return DomainFiles(root / "vmlinuz", root / "initramfs.gz", root / "console.log", root / "agent.sock")


def interfaces(xml: str) -> list[ET.Element]:
    return ET.fromstring(xml).findall("./devices/interface")


def test_no_nic_offers_its_guest_checksum_offload():
    """Open vSwitch's userspace datapath never completes an offloaded checksum: each virtio NIC
    offers neither checksum offload nor the offloads that need it, so the guest computes them."""
    nics = interfaces(domain_xml(TOPOLOGY, TOPOLOGY.guests["vm1"], files("/hv1")))
    assert len(nics) == 2
    for interface in nics:
        assert interface.find("model").get("type") == "virtio"
        [driver] = interface.findall("driver")
        [host] = driver.findall("host")
        assert host.attrib == {"csum": "off", "tso4": "off", "tso6": "off", "ecn": "off", "ufo": "off"}
        assert driver.findall("guest") == []  # what reaches the guest has its checksums complete


def test_a_migrating_domain_keeps_its_nic_options():
    xml = domain_xml(TOPOLOGY, TOPOLOGY.guests["vm1"], files("/hv1"))
    moved = rehome(xml, files("/hv3"))
    assert [ET.tostring(i) for i in interfaces(moved)] == [ET.tostring(i) for i in interfaces(xml)]
    assert ET.fromstring(moved).find("./os/kernel").text == "/hv3/vmlinuz"
