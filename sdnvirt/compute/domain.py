"""libvirt domain XML for a `qemu` guest, generated from the model.

Each NIC is an `<interface type='bridge'>` on the integration bridge with
`<virtualport type='openvswitch'>`: libvirt then plugs the tap into OVS itself
and writes iface-id (the logical port), attached-mac and vm-id on the
Interface, which is all the controller goes by. The guest learns its
addresses from the kernel command line; it talks to the host through a
virtio-serial channel (the guest agent) that works with its network down.

The virtio NIC offers no checksum offload (`<driver><host csum='off' .../>`).
With it, the guest hands each packet's TCP or UDP checksum to the tap unfinished;
Open vSwitch's userspace datapath reads the frame from the tap as it is and never
completes it, so the receiver drops every segment (ICMP, checksummed by the
guest, passes). Fixing it in the domain is where it belongs: it is the VM's
virtual NIC that offers the offload, like a netns guest's veth (sdnvirt.lab.guest).
csum='off' alone was enough here; TSO, ECN and UFO are turned off with it
because they need it, though QEMU would go on offering them. Nothing on the
guest side: what reaches a VM from the bridge has complete checksums.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from netaddr import IPNetwork

from sdnvirt.compute.agent import PORT_NAME
from sdnvirt.compute.image import kernel_cmdline
from sdnvirt.model.topology import Guest, Topology, guest_uuid
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE

EMULATOR = "/usr/bin/qemu-system-x86_64"
CPU_MODEL = "qemu64"  # TCG: a plain model every QEMU can give
# What the virtio NIC does not offer its guest (why: this module's docstring).
NO_CHECKSUM_OFFLOAD = {"csum": "off", "tso4": "off", "tso6": "off", "ecn": "off", "ufo": "off"}


@dataclass(frozen=True)
class DomainFiles:
    """Where a domain's kernel, console log and agent socket are, on the host it runs on."""

    kernel: Path
    initramfs: Path
    console_log: Path
    agent_socket: Path


def domain_xml(topology: Topology, guest: Guest, files: DomainFiles) -> str:
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = guest.name
    ET.SubElement(domain, "uuid").text = guest_uuid(topology.name, guest.name)
    ET.SubElement(domain, "memory", unit="MiB").text = str(guest.memory)
    ET.SubElement(domain, "vcpu").text = str(guest.vcpus)

    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "kernel").text = str(files.kernel)
    ET.SubElement(os_, "initrd").text = str(files.initramfs)
    nics = [(nic.mac, IPNetwork(f"{nic.ip}/{topology.networks[nic.network].subnet.prefixlen}"))
            for nic in guest.nics]
    ET.SubElement(os_, "cmdline").text = kernel_cmdline(nics)
    features = ET.SubElement(domain, "features")  # ACPI: how a guest powers itself off
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    cpu = ET.SubElement(domain, "cpu", mode="custom", match="exact")
    ET.SubElement(cpu, "model", fallback="allow").text = CPU_MODEL
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    ET.SubElement(domain, "on_reboot").text = "restart"
    ET.SubElement(domain, "on_crash").text = "destroy"

    devices = ET.SubElement(domain, "devices")
    ET.SubElement(devices, "emulator").text = EMULATOR
    for nic in guest.nics:
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "source", bridge=INTEGRATION_BRIDGE)
        port = ET.SubElement(interface, "virtualport", type="openvswitch")
        ET.SubElement(port, "parameters", interfaceid=nic.port_id)
        ET.SubElement(interface, "mac", address=str(nic.mac))
        ET.SubElement(interface, "model", type="virtio")
        ET.SubElement(ET.SubElement(interface, "driver"), "host", NO_CHECKSUM_OFFLOAD)
        ET.SubElement(interface, "rom", enabled="no")  # no iPXE: the kernel is given directly
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=str(files.console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "source", mode="bind", path=str(files.agent_socket))
    ET.SubElement(channel, "target", type="virtio", name=PORT_NAME)
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def rehome(xml: str, files: DomainFiles) -> str:
    """A domain's XML with its files where they are on another host (for a migration);
    everything else, device addresses included, stays as the running domain has it."""
    domain = ET.fromstring(xml)
    for log in domain.findall("./devices/serial/log"):
        log.set("file", str(files.console_log))
    for source in domain.findall("./devices/channel/source"):
        source.set("path", str(files.agent_socket))
    domain.find("./os/kernel").text = str(files.kernel)
    domain.find("./os/initrd").text = str(files.initramfs)
    return ET.tostring(domain, encoding="unicode")
