"""OVN beside sdnvirt on one lab, as the migration benchmark runs it: Geneve across
segments on br-ovn, the live-migration options, sdnvirt undisturbed, and nothing left after stop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sdnvirt.lab.ovn_baseline import OVN_BRIDGE, OvnError, OvnFabric
from sdnvirt.lab.process import is_running
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import entering

from helpers.guests import listen, nic, on_underlay, ping, wait_until
from helpers.labs import build_lab

TOPOLOGY = Path(__file__).parent / "topologies" / "ovnbase.yaml"
SWITCH = "ls0"
# port: (host, MAC, address); a and b sit in different racks
PROBES = {"pa": ("hv1", "02:00:00:c0:00:0a", "192.168.100.10/24"),
          "pb": ("hv3", "02:00:00:c0:00:0b", "192.168.100.11/24")}


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(TOPOLOGY)


@pytest.fixture
def ovn(lab):
    """OVN beside sdnvirt, started for each test (they move its ports and stop it)."""
    with OvnFabric(lab) as fabric:
        fabric.add_switch(SWITCH)
        for port, (host, mac, address) in PROBES.items():
            fabric.add_port(SWITCH, port, mac, address_of(port))
            fabric.plug_namespace(host, probe_namespace(lab, port), port, mac, address)
        yield fabric


def probe_namespace(lab, port: str, suffix: str = "") -> str:
    return f"{lab.name}-ovn-{port}{suffix}"


def ping_from(namespace: str, address: str, count: int = 3) -> int:
    """Replies to `count` pings from a probe namespace."""
    result = subprocess.run([*entering(namespace), "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1",
                             address], capture_output=True, text=True, timeout=count + 10)
    summary = next(line for line in result.stdout.splitlines() if "received" in line)
    return int(summary.split(",")[1].split()[0])


def sdnvirt_guests_talk(lab) -> bool:
    return ping(lab, "g1", str(nic(lab, "g3").ip)) == 3


def address_of(port: str) -> str:
    return PROBES[port][2].split("/")[0]


def test_sdnvirt_guests_talk_before_ovn_starts(lab):
    assert sdnvirt_guests_talk(lab)


def test_probes_in_two_racks_talk_over_geneve(lab, ovn):
    [geneve] = listen(on_underlay(lab, "hv3", "udp port 6081"))
    assert ping_from(probe_namespace(lab, "pa"), address_of("pb")) == 3
    assert len(geneve.frames()) >= 6  # three requests in, three replies out
    ovs = lab.hosts()["hv1"].openvswitch
    tunnels = ovs.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split()
    remotes = {ovs.vsctl("get", "Interface", t, "options:remote_ip").strip().strip('"') for t in tunnels}
    assert remotes == {str(lab.topology.hosts[h].address) for h in ("hv2", "hv3")}


def test_sdnvirt_is_undisturbed_beside_ovn(lab, ovn):
    assert sdnvirt_guests_talk(lab)
    lab.wait_converged(timeout=10)  # every br-int holds exactly sdnvirt's flows
    for host in lab.hosts().values():
        ovs = host.openvswitch
        assert "geneve" not in ovs.vsctl("--bare", "--columns=type", "list", "Interface",
                                         *ovs.vsctl("list-ifaces", "br-int").split())


def test_a_port_moves_with_the_options_ovn_gives_live_migration(lab, ovn):
    _, mac, address = PROBES["pb"]
    ovn.prepare_migration("pb", "hv3", "hv2")
    assert ovn.port_options("pb") == {"requested-chassis": "hv3,hv2", "activation-strategy": "rarp"}
    ovn.plug_namespace("hv2", probe_namespace(lab, "pb", "-moved"), "pb", mac, address)  # bound on both now
    ovn.wait_bound("pb", "hv3")

    ovn.finish_migration("pb", "hv2")
    assert ovn.port_options("pb") == {"requested-chassis": "hv2"}
    hv2 = ovn.sbctl("--bare", "--columns=_uuid", "find", "Chassis", "name=hv2").strip()
    wait_until(lambda: ovn.sbctl("--bare", "--columns=chassis,additional_chassis", "find", "Port_Binding",
                                 "logical_port=pb").split() == [hv2])
    [moved] = listen((probe_namespace(lab, "pb", "-moved"), "eth0", "icmp"))
    assert ping_from(probe_namespace(lab, "pa"), address_of("pb")) == 3
    assert len(moved.frames()) == 6  # the copy on hv2 answered


def test_a_second_ovn_on_the_same_lab_is_refused_and_the_first_kept(lab, ovn):
    with pytest.raises(OvnError, match="already"):
        OvnFabric(lab).start()
    assert ovn.folder.exists() and netns.exists(ovn.namespace)


def test_stop_leaves_nothing_behind(lab, ovn):
    before = LabRecord.load(lab.paths.record)
    processes = [p for p in before.processes if p.pidfile.startswith(f"{ovn.folder}/")]
    namespaces = [n for n in before.namespaces if n.startswith(f"{lab.name}-ovn")]
    # OVN's databases and northd, one ovn-controller per host; its namespace and one per probe
    assert len(processes) == 3 + len(lab.topology.hosts) and len(namespaces) == 1 + len(PROBES)

    ovn.stop()

    after = LabRecord.load(lab.paths.record)
    assert not any(is_running(p) for p in processes)
    assert not any(netns.exists(n) for n in namespaces)
    assert not set(processes) & set(after.processes) and not set(namespaces) & set(after.namespaces)
    assert not ovn.folder.exists()
    for host in lab.hosts().values():
        assert OVN_BRIDGE not in host.openvswitch.vsctl("list-br").split()
        ids = host.openvswitch.vsctl("get", "Open_vSwitch", ".", "external_ids")
        assert "ovn" not in ids and "system-id" not in ids
    assert sdnvirt_guests_talk(lab)
