"""Moving a netns guest to another host the way libvirt moves a VM.

1. Prepare: a new NIC for the guest is plugged into the destination's bridge
   with the same iface-id (as libvirt plugs the destination QEMU's tap), and
   we wait until the controller has programmed it (as libvirt's hook does).
2. Switch: the new link comes up inside the guest (with the guest's MAC, no
   address yet); the controller is told to repoint the fabric at the
   destination (as the source's pause tells it for a VM); then the old link
   goes away (the source tap with it) and the new one takes its name and
   addresses: that gap is the guest's downtime. Then the guest announces
   itself with RARP frames, at the times QEMU does.
3. Clean up: the source's OVS port goes (as libvirt unplugs the source).

The switch runs inside the guest's namespace as one small program, so the
downtime is measured where it happens, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from pyroute2 import IPRoute

from sdnvirt.lab import naming
from sdnvirt.lab.host import LabHost
from sdnvirt.linux.netns import NetworkNamespace, checksum_in_software, entering
from sdnvirt.model.topology import Guest, Topology, guest_uuid
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE
from sdnvirt.vswitch.ports import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, READY, VM_ID

ANNOUNCE_AT = (0.0, 0.05, 0.2, 0.45, 0.8)  # seconds after resuming, as QEMU announces
READY_TIMEOUT = 10
SWITCH_TIMEOUT = 30


def staged_name(index: int) -> str:
    return f"mig{index}"


def rarp(mac: bytes) -> bytes:
    """QEMU's self-announcement: a reverse ARP request from and about the guest's MAC."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, mac, b"\0" * 4, mac, b"\0" * 4)
    return (b"\xff" * 6 + mac + struct.pack("!H", 0x8035) + body).ljust(60, b"\0")


def move(topology: Topology, guest: Guest, source: LabHost, destination: LabHost,
         switch: Callable[[], object]) -> dict:
    """Move the guest, calling `switch` to repoint the fabric at the last moment;
    returns its downtime and the whole move's time, in milliseconds."""
    began = time.monotonic()
    namespace = naming.guest_namespace(topology.name, guest.name)
    for nic in guest.nics:
        vif = naming.vif_name(nic.port_id)
        with NetworkNamespace(destination.namespace) as host_ns:
            host_ns.add_veth(vif, namespace, staged_name(nic.index))
            host_ns.bring_up(vif)
        checksum_in_software(namespace, staged_name(nic.index))  # as sdnvirt.lab.guest plugs a NIC
        ids = {IFACE_ID: nic.port_id, ATTACHED_MAC: str(nic.mac), IFACE_STATUS: "active",
               VM_ID: guest_uuid(topology.name, guest.name)}
        destination.openvswitch.vsctl("add-port", INTEGRATION_BRIDGE, vif, "--", "set", "Interface", vif,
                                      *(f'external_ids:{key}="{value}"' for key, value in ids.items()))
    for nic in guest.nics:
        destination.openvswitch.vsctl(f"--timeout={READY_TIMEOUT}", "wait-until", "Interface",
                                      naming.vif_name(nic.port_id), f"external_ids:{READY}=true")
    nics = [f"{nic.index},{nic.mac},{nic.ip}/{topology.networks[nic.network].subnet.prefixlen}"
            for nic in guest.nics]
    inside = subprocess.Popen([*entering(namespace), sys.executable, "-m", "sdnvirt.lab.netns_migration", *nics],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if inside.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{guest.name} could not stage its new links: {inside.stderr.read().strip()}")
        switch()
        out, err = inside.communicate("go\n", timeout=SWITCH_TIMEOUT)
    finally:
        if inside.poll() is None:
            inside.kill()
    if inside.returncode != 0:
        raise RuntimeError(f"{guest.name} could not switch its links: {err.strip()}")
    switched = json.loads(out)
    for nic in guest.nics:
        source.openvswitch.vsctl("--if-exists", "del-port", INTEGRATION_BRIDGE, naming.vif_name(nic.port_id))
    return {"downtime_ms": switched["downtime_ms"], "total_ms": round((time.monotonic() - began) * 1000, 1)}


def switch_links(nics: list[tuple[int, str, str]]) -> float:
    """Inside the guest: stage the new links, and on "go" put them in the old ones' place
    (index, MAC, IP/prefix); the downtime in ms."""
    with IPRoute() as ip:
        for index, mac, _ in nics:
            ip.link("set", index=ip.link_lookup(ifname=staged_name(index))[0], address=mac, state="up")
        print("ready", flush=True)
        sys.stdin.readline()
        began = time.monotonic()
        leaving = []
        for index, _, address in nics:
            name = naming.guest_nic_name(index)
            old = ip.link_lookup(ifname=name)
            if old:  # out of the way now, deleted later: a veth takes a while to delete
                ip.link("set", index=old[0], state="down")
                ip.link("set", index=old[0], ifname=f"old{index}")
                leaving.append(old[0])
            new = ip.link_lookup(ifname=staged_name(index))[0]
            ip.link("set", index=new, state="down")  # a link takes a new name only while down
            ip.link("set", index=new, ifname=name)
            ip.addr("add", index=new, address=address.split("/")[0], prefixlen=int(address.split("/")[1]))
            ip.link("set", index=new, state="up")
        downtime = (time.monotonic() - began) * 1000
        for index in leaving:
            ip.link("del", index=index)
    sockets = []
    for index, mac, _ in nics:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sock.bind((naming.guest_nic_name(index), 0))
        sockets.append((sock, rarp(bytes.fromhex(mac.replace(":", "")))))
    resumed = time.monotonic()
    for at in ANNOUNCE_AT:
        time.sleep(max(0.0, resumed + at - time.monotonic()))
        for sock, frame in sockets:
            sock.send(frame)
    return downtime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.lab.netns_migration")
    parser.add_argument("nics", nargs="+", help="INDEX,MAC,IP/PREFIX")
    nics = [(int(i), mac, address) for i, mac, address in (n.split(",") for n in parser.parse_args().nics)]
    print(json.dumps({"downtime_ms": round(switch_links(nics), 3)}))


if __name__ == "__main__":
    main()
