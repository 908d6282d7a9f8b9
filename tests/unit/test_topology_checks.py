"""Semantic checks: each rule on a file that breaks only it, placed at the field at fault."""

import pytest

from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError, Problem

# A valid file; each case below changes one line of it.
BASE = """\
name: t
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24, gateway: 100.64.2.254}
hosts:
  hv1: {segment: rack1, address: 100.64.1.10}
  hv2: {segment: rack2}
tenants:
  blue:
    networks:
      web: {subnet: 10.0.0.0/24, vni: 5001}
      db: {subnet: 10.0.1.0/24}
  red:
    networks:
      web: {subnet: 10.0.0.0/24, vni: 6001}
vms:
  web1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.11, mac: "02:00:00:00:00:01"}]}
  web2: {host: hv2, nics: [{network: blue/web}, {network: blue/db}]}
  db1: {host: hv2, nics: [{network: red/web}]}
"""


def problems_after(old: str, new: str) -> list[Problem]:
    assert old in BASE
    with pytest.raises(InputError) as raised:
        load_topology_text(BASE.replace(old, new), "t.yaml")
    return raised.value.problems


def test_base_is_valid():
    load_topology_text(BASE, "t.yaml")


def test_tenants_may_reuse_subnets_and_addresses():
    text = BASE.replace("[{network: red/web}]", "[{network: red/web, ip: 10.0.0.11}]")

    topology = load_topology_text(text, "t.yaml")

    assert topology.guests["db1"].nics[0].ip == topology.guests["web1"].nics[0].ip
    assert topology.networks["red/web"].subnet == topology.networks["blue/web"].subnet


WEB2 = "  web2: {host: hv2, nics: [{network: blue/web}, {network: blue/db}]}"


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "path", "message"),
    [
        # dangling references
        ("hv2: {segment: rack2}", "hv2: {segment: rack3}",
         7, 18, "hosts.hv2.segment", "unknown segment 'rack3' (known: rack1, rack2)"),
        ("web2: {host: hv2,", "web2: {host: hv3,",
         18, 16, "vms.web2.host", "unknown host 'hv3' (known: hv1, hv2)"),
        ("{network: blue/db}", "{network: blue/app}",
         18, 59, "vms.web2.nics[1].network", "unknown network 'blue/app' (known: blue/db, blue/web, red/web)"),
        ("{network: blue/db}", "{network: green/db}",
         18, 59, "vms.web2.nics[1].network", "unknown network 'green/db'"),
        # segments
        ("gateway: 100.64.2.254}", "gateway: 100.64.3.1}",
         4, 43, "segments.rack2.gateway", "100.64.3.1 is outside 100.64.2.0/24"),
        ("gateway: 100.64.2.254}", "gateway: 100.64.2.0}",
         4, 43, "segments.rack2.gateway", "network address of 100.64.2.0/24"),
        ("gateway: 100.64.2.254}", "gateway: 100.64.2.255}",
         4, 43, "segments.rack2.gateway", "broadcast address of 100.64.2.0/24"),
        ("rack2: {subnet: 100.64.2.0/24,", "rack2: {subnet: 100.64.0.0/16,",
         4, 19, "segments.rack2.subnet", "100.64.0.0/16 overlaps 100.64.1.0/24 of segments.rack1"),
        # hosts
        ("address: 100.64.1.10}", "address: 100.64.2.10}",
         6, 34, "hosts.hv1.address", "100.64.2.10 is outside 100.64.1.0/24"),
        ("address: 100.64.1.10}", "address: 100.64.1.0}",
         6, 34, "hosts.hv1.address", "network address of 100.64.1.0/24"),
        ("address: 100.64.1.10}", "address: 100.64.1.255}",
         6, 34, "hosts.hv1.address", "broadcast address of 100.64.1.0/24"),
        ("address: 100.64.1.10}", "address: 100.64.1.1}",
         6, 34, "hosts.hv1.address", "100.64.1.1 is the gateway of segment 'rack1'"),
        ("hv2: {segment: rack2}", "hv2: {segment: rack2, address: 100.64.2.254}",
         7, 34, "hosts.hv2.address", "100.64.2.254 is the gateway of segment 'rack2'"),
        ("hv2: {segment: rack2}", "hv2: {segment: rack1, address: 100.64.1.10}",
         7, 34, "hosts.hv2.address", "100.64.1.10 is already used by hosts.hv1.address (line 6)"),
        # tenant networks
        ("db: {subnet: 10.0.1.0/24}", "db: {subnet: 10.0.0.128/25}",
         12, 20, "tenants.blue.networks.db.subnet", "10.0.0.128/25 overlaps 10.0.0.0/24 of tenants.blue.networks.web"),
        ("db: {subnet: 10.0.1.0/24}", "db: {subnet: 10.0.1.0/24, vni: 5001}",
         12, 38, "tenants.blue.networks.db.vni", "VNI 5001 is already used by tenants.blue.networks.web.vni (line 11)"),
        ("vni: 6001}", "vni: 5001}",
         15, 39, "tenants.red.networks.web.vni", "VNI 5001 is already used by tenants.blue.networks.web.vni (line 11)"),
        # NIC addresses
        ("ip: 10.0.0.11,", "ip: 10.0.1.11,",
         17, 52, "vms.web1.nics[0].ip", "10.0.1.11 is outside 10.0.0.0/24"),
        ("ip: 10.0.0.11,", "ip: 10.0.0.0,",
         17, 52, "vms.web1.nics[0].ip", "network address of 10.0.0.0/24"),
        ("ip: 10.0.0.11,", "ip: 10.0.0.255,",
         17, 52, "vms.web1.nics[0].ip", "broadcast address of 10.0.0.0/24"),
        ("ip: 10.0.0.11,", "ip: 10.0.0.1,",
         17, 52, "vms.web1.nics[0].ip", "10.0.0.1 is reserved for the tenant's router"),
        (WEB2, WEB2.replace("{network: blue/db}", "{network: blue/web, ip: 10.0.0.11}"),
         18, 73, "vms.web2.nics[1].ip", "10.0.0.11 in blue/web is already used by vms.web1.nics[0].ip (line 17)"),
        # MACs, within a network and across the topology
        (WEB2, WEB2.replace("{network: blue/web}", '{network: blue/web, mac: "02:00:00:00:00:01"}'),
         18, 53, "vms.web2.nics[0].mac", "02:00:00:00:00:01 is already used by vms.web1.nics[0].mac (line 17)"),
        ("[{network: red/web}]", '[{network: red/web, mac: "02:00:00:00:00:01"}]',
         19, 51, "vms.db1.nics[0].mac", "02:00:00:00:00:01 is already used by vms.web1.nics[0].mac (line 17)"),
    ],
)
def test_rule_is_reported_at_its_field(old, new, line, column, path, message):
    [problem] = problems_after(old, new)

    assert (problem.line, problem.column, problem.path) == (line, column, path)
    assert message in problem.message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("hv2: {segment: rack2}", "hv2: {segment: rack2, ram: 5}", "hosts.hv2.ram"),
        ("rack2: {subnet: 100.64.2.0/24,", "rack2: {subnet: 100.64.2.0/33,", "segments.rack2.subnet"),
        ("db: {subnet: 10.0.1.0/24}", "db: {subnet: 10.0.1.0/24, vni: -1}", "tenants.blue.networks.db.vni"),
        ("  red:\n    networks:\n      web: {subnet: 10.0.0.0/24, vni: 6001}\n", "  red: {networks: [web]}\n",
         "tenants.red.networks"),
    ],
)
def test_item_that_fails_its_model_still_counts_as_declared(old, new, path):
    problems = problems_after(old, new)

    assert [p.path for p in problems] == [path]


def test_only_qemu_guests_can_wait_for_vm_start():
    [problem] = problems_after("db1: {host: hv2, nics:", "db1: {host: hv2, autostart: false, nics:")
    assert (problem.line, problem.path) == (19, "vms.db1.autostart")
    assert problem.message == "netns guests always start with the lab"
    qemu = BASE.replace("db1: {host: hv2, nics:", "db1: {host: hv2, kind: qemu, autostart: false, nics:")
    spare = load_topology_text(qemu, "t.yaml").guests["db1"]
    assert not spare.autostart
