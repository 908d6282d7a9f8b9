"""What a live migration costs the network: sdnvirt next to two baselines, same hosts, same run.

One lab: rack1 holds hv1, hv2 and hvp (where the probes run), rack2 holds hv3,
behind the router. A 256 MiB TCG guest migrates back and forth while a guest
on hvp pings it every 5 ms; each migration yields the probes lost, duplicated
replies, the longest gap between two answered probes, and the hypervisor's
own downtime (libvirt's job statistics).

Scenarios, each --runs migrations:
  sdnvirt_across_segments   hv1 <-> hv3, through the router, sdnvirt's fabric
  sdnvirt_within_segment    hv1 <-> hv2
  sdnvirt_netns_across_segments  a netns guest, hv1 <-> hv3: its "downtime" is the swap of its
                            links (from the switch-over's start until its new links are up)
  learning_switch           hv1 <-> hv2, the VM bridged onto the segment by OVS
                            NORMAL (br-phy, no controller): QEMU's announcement
                            is all that tells the switches
  ovn_across_segments       hv1 <-> hv3, OVN from Debian on its own bridge, the
                            port set for live migration as OVN recommends
                            (requested-chassis both hosts, activation-strategy=rarp)

The same libvirt call migrates every VM. sdnvirt's migrations run with captures on the VM's
ports, so that their flight recorder decomposes the gap (the pause, QEMU's and on the wire; the
switch-over after the pause; frames lost in the source's tap; the network-added gap). Prints one
JSON object.

    .venv/bin/python bench/migrate.py [--runs 10] [--without-ovn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import libvirt
from netaddr import EUI, IPNetwork, mac_unix_expanded
from ruamel.yaml import YAML

from sdnvirt.compute.agent import AgentError, GuestAgent
from sdnvirt.compute.domain import DomainFiles, domain_xml
from sdnvirt.compute.image import build_image
from sdnvirt.compute.live_migration import completed_job, migrate_live
from sdnvirt.controller.migration import flight
from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.lab import Lab, running_labs
from sdnvirt.lab.migration_probe import MigrationProbe, migrate
from sdnvirt.lab.ovn_baseline import OvnFabric
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import NetworkNamespace
from sdnvirt.model.loader import load_topology
from sdnvirt.model.topology import Guest, GuestKind, Network, Nic, Topology

LAB = "migbench"
MEMORY_MIB = 256
PROBE_TAIL = 1.0  # seconds the probe goes on after a migration
BOOT_TIMEOUT = 120.0
BASELINE_SUBNET = IPNetwork("10.9.0.0/24")


def topology_file(folder: Path) -> Path:
    data = {
        "name": LAB,
        "segments": {"rack1": {"subnet": "100.64.1.0/24"}, "rack2": {"subnet": "100.64.2.0/24"}},
        "hosts": {"hv1": {"segment": "rack1"}, "hv2": {"segment": "rack1"}, "hvp": {"segment": "rack1"},
                  "hv3": {"segment": "rack2"}},
        "tenants": {"blue": {"networks": {"web": {"subnet": "10.0.0.0/24"}}}},
        "vms": {"vm": {"host": "hv1", "kind": "qemu", "memory": MEMORY_MIB,
                       "nics": [{"network": "blue/web", "ip": "10.0.0.11"}]},
                "mover": {"host": "hv1", "nics": [{"network": "blue/web", "ip": "10.0.0.21"}]},
                "probe": {"host": "hvp", "nics": [{"network": "blue/web", "ip": "10.0.0.2"}]}},
    }
    path = folder / "migbench.yaml"
    with path.open("w") as out:
        YAML().dump(data, out)
    return path


# -- the baselines' VMs and probes: outside sdnvirt's model, made and removed here -----------------

class BaselineVm:
    """A VM like sdnvirt's, run straight through libvirt on another bridge."""

    def __init__(self, lab: Lab, name: str, bridge: str, interface_id: str, mac: str, address: IPNetwork):
        self.lab, self.name, self.mac, self.address = lab, name, mac, address
        self.host = "hv1"
        network = Network("baseline", "net", address.cidr, 1)
        nic = Nic(0, network.key, address.ip, EUI(mac, dialect=mac_unix_expanded), interface_id)
        self._topology = Topology(LAB, None, networks={network.key: network})
        self._guest = Guest(name, self.host, GuestKind.QEMU, MEMORY_MIB, 1, (nic,))
        self._bridge = bridge

    def files(self, host: str) -> DomainFiles:
        image = build_image()
        vms = self.lab.paths.host(host).vms
        return DomainFiles(image.kernel, image.initramfs, vms / f"{self.name}.console.log",
                           vms / f"{self.name}.agent.sock")

    def _connection(self, host: str) -> libvirt.virConnect:
        return libvirt.open(self.lab.hosts()[host].libvirtd.uri)

    def start(self) -> None:
        domain = ET.fromstring(domain_xml(self._topology, self._guest, self.files(self.host)))
        domain.find("./uuid").text = str(uuid.uuid4())
        domain.find("./devices/interface/source").set("bridge", self._bridge)
        self._connection(self.host).defineXML(ET.tostring(domain, encoding="unicode")).create()
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with GuestAgent(self.files(self.host).agent_socket) as agent:
                    agent.ping(timeout=2)
                return
            except (AgentError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not boot")

    def migrate(self, destination: str) -> dict:
        began = time.monotonic()
        migrate_live(self._connection(self.host).lookupByName(self.name),
                     self.lab.hosts()[destination].management, self.files(destination))
        total = (time.monotonic() - began) * 1000
        self.host = destination
        stats = completed_job(self._connection(destination).lookupByName(self.name))
        return {"hypervisor_downtime_ms": stats.get("downtime"), "total_ms": stats.get("time_elapsed", total)}

    def remove(self) -> None:
        for host in self.lab.topology.hosts:
            try:
                domain = self._connection(host).lookupByName(self.name)
            except libvirt.libvirtError:
                continue
            if domain.isActive():
                domain.destroy()
            domain.undefine()


@contextmanager
def learning_switch_probe(lab: Lab, mac: str, address: IPNetwork):
    """A probe namespace on hvp, its veth a plain port of br-phy (the segment's learning switch)."""
    namespace = f"{LAB}-normal-probe"
    host = lab.hosts()["hvp"]
    record = LabRecord.load(lab.paths.record)  # lab down removes it too, should this run crash
    lab_netns.create(record, namespace)
    try:
        with NetworkNamespace(host.namespace) as host_ns:
            host_ns.add_veth("nprobe", namespace, "eth0")
            host_ns.bring_up("nprobe")
        with NetworkNamespace(namespace) as ns:
            ns.bring_up("eth0", mac=mac)
            ns.add_address("eth0", str(address.ip), address.prefixlen)
        host.openvswitch.vsctl("add-port", "br-phy", "nprobe")
        yield namespace
    finally:
        host.openvswitch.vsctl("--if-exists", "del-port", "br-phy", "nprobe")
        netns.remove(namespace)


def probed(namespace: str, target: str, move: Callable[[], dict]) -> dict:
    """Run one move under a probe; the move's figures with the probe's."""
    probe = MigrationProbe(namespace, target)
    try:
        figures = move()
    finally:
        time.sleep(PROBE_TAIL)
        seen = probe.stop()
    return {**figures, "probe_sent": seen["sent"], "probe_lost": seen["lost"],
            "probe_duplicates": seen["duplicates"], "probe_max_gap_ms": seen["max_gap_ms"]}


# -- scenarios ---------------------------------------------------------------------------------------

def sdnvirt_runs(lab: Lab, hosts: tuple[str, str], runs: int, vm: str = "vm") -> list[dict]:
    reports = []
    for run in range(runs):
        report = migrate(lab, vm, hosts[(run + 1) % 2], probe="probe", capture=True)
        if report["result"] != "completed":
            raise RuntimeError(f"sdnvirt migration failed: {report}")
        reports.append(report)
    if lab.api().vm(vm)["host"] != hosts[0]:
        migrate(lab, vm, hosts[0])
    return reports


def baseline_runs(vm: BaselineVm, probe: str, hosts: tuple[str, str], runs: int,
                  before: Callable[[str, str], object] = lambda source, destination: None,
                  after: Callable[[str], object] = lambda destination: None) -> list[dict]:
    results = []
    for run in range(runs):
        source, destination = hosts[run % 2], hosts[(run + 1) % 2]

        def move(source=source, destination=destination) -> dict:
            before(source, destination)
            figures = vm.migrate(destination)
            after(destination)
            return figures

        results.append(probed(probe, str(vm.address.ip), move))
    return results


def learning_switch(lab: Lab, runs: int) -> list[dict]:
    vm = BaselineVm(lab, "vm-normal", "br-phy", str(uuid.uuid4()), "02:00:00:09:00:11",
                    IPNetwork(f"{BASELINE_SUBNET[11]}/{BASELINE_SUBNET.prefixlen}"))
    with learning_switch_probe(lab, "02:00:00:09:00:02", IPNetwork(f"{BASELINE_SUBNET[2]}/24")) as probe:
        try:
            vm.start()
            return baseline_runs(vm, probe, ("hv1", "hv2"), runs)
        finally:
            vm.remove()


def ovn(lab: Lab, runs: int) -> list[dict]:
    with OvnFabric(lab) as fabric:
        fabric.add_switch("bench")
        vm_mac, probe_mac = "02:00:00:0a:00:11", "02:00:00:0a:00:02"
        vm_port = str(uuid.uuid5(uuid.NAMESPACE_URL, "sdnvirt/bench/vm-ovn"))  # libvirt wants a UUID for an iface-id
        fabric.add_port("bench", vm_port, vm_mac, str(BASELINE_SUBNET[11]))
        fabric.add_port("bench", "probe-ovn", probe_mac, str(BASELINE_SUBNET[2]))
        probe = f"{LAB}-ovn-probe"
        fabric.plug_namespace("hvp", probe, "probe-ovn", probe_mac, f"{BASELINE_SUBNET[2]}/24")
        vm = BaselineVm(lab, "vm-ovn", "br-ovn", vm_port, vm_mac,
                        IPNetwork(f"{BASELINE_SUBNET[11]}/{BASELINE_SUBNET.prefixlen}"))
        try:
            vm.start()
            fabric.wait_bound(vm_port, "hv1")

            # as OVN recommends: both chassis and RARP activation during the move, then the destination
            return baseline_runs(vm, probe, ("hv1", "hv3"), runs,
                                 before=lambda source, destination: fabric.prepare_migration(vm_port, source,
                                                                                             destination),
                                 after=lambda destination: fabric.finish_migration(vm_port, destination))
        finally:
            vm.remove()


# -- figures -------------------------------------------------------------------------------------------

def spread(values: list[float | None]) -> dict | None:
    known = [v for v in values if v is not None]
    return {"median": round(statistics.median(known), 1), "max": round(max(known), 1)} if known else None


def summary(runs: list[dict]) -> dict:
    figures = {key: spread([r.get(key) for r in runs])
               for key in ("probe_lost", "probe_duplicates", "probe_max_gap_ms", "hypervisor_downtime_ms",
                           "switchover_ms", "switchover_after_resume_ms", "total_ms", *flight.FIGURES)}
    figures["gap_over_downtime_ms"] = spread([r["probe_max_gap_ms"] - r["hypervisor_downtime_ms"] for r in runs
                                              if r["probe_max_gap_ms"] is not None
                                              and r["hypervisor_downtime_ms"] is not None])
    figures["migrations"] = len(runs)
    figures["probe_sent"] = spread([r["probe_sent"] for r in runs])
    return {k: v for k, v in figures.items() if v is not None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--without-ovn", action="store_true", help="skip the OVN baseline")
    args = parser.parse_args()
    if LAB in running_labs():
        print(f"lab {LAB} is up already; `sdnvirt lab down {LAB}` first", file=sys.stderr)
        return 2
    scenarios: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = topology_file(Path(tmp))
        lab = Lab(load_topology(path), LabPaths.of(LAB))
        lab.up(path)
        try:
            scenarios["sdnvirt_across_segments"] = sdnvirt_runs(lab, ("hv1", "hv3"), args.runs)
            scenarios["sdnvirt_within_segment"] = sdnvirt_runs(lab, ("hv1", "hv2"), args.runs)
            scenarios["sdnvirt_netns_across_segments"] = sdnvirt_runs(lab, ("hv1", "hv3"), args.runs, "mover")
            scenarios["learning_switch_within_segment"] = learning_switch(lab, args.runs)
            if not args.without_ovn:
                scenarios["ovn_across_segments"] = ovn(lab, args.runs)
        finally:
            lab.down()
    summaries = {name: summary(runs) for name, runs in scenarios.items()}
    ours = summaries["sdnvirt_across_segments"]
    baselines = [s for name, s in summaries.items() if not name.startswith("sdnvirt")]
    print(json.dumps({
        "benchmark": "migrate",
        "guest_memory_mib": MEMORY_MIB,
        "probe_interval_ms": 5,
        "scenarios": summaries,
        "targets": {
            "across_segments_gap_over_downtime_ms": ours["gap_over_downtime_ms"],
            "across_segments_duplicates_max": ours["probe_duplicates"]["max"],
            "switchover_ms_median": ours["switchover_ms"]["median"],
            "switchover_after_resume_ms_median": ours["switchover_after_resume_ms"]["median"],
            "probe_lost_median": ours["probe_lost"]["median"],
            "baselines_probe_lost_median": {name: s["probe_lost"]["median"] for name, s in summaries.items()
                                            if not name.startswith("sdnvirt")},
            "lost_ratio_to_best_baseline": round(ours["probe_lost"]["median"]
                                                 / max(min(b["probe_lost"]["median"] for b in baselines), 1), 2),
        },
        "runs": {name: runs for name, runs in scenarios.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
