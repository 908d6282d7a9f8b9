"""What an edited topology file changes, and what it may not change in place."""

import pytest
from test_topology_checks import BASE

from sdnvirt.model.changes import changes_to
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError

OLD = load_topology_text(BASE, "t.yaml")


def changes(new_text: str) -> list[str]:
    return [str(c) for c in changes_to(OLD, new_text, "t.yaml")[1]]


def test_the_same_file_changes_nothing():
    assert changes(BASE) == []


def test_guests_networks_and_hosts_come_and_go():
    edited = (BASE.replace("  db1: {host: hv2, nics: [{network: red/web}]}\n", "")
              .replace("      db: {subnet: 10.0.1.0/24}\n",
                       "      db: {subnet: 10.0.1.0/24}\n      api: {subnet: 10.0.2.0/24}\n")
              .replace("  hv2: {segment: rack2}\n", "  hv2: {segment: rack2}\n  hv3: {segment: rack1}\n")
              + "  app1: {host: hv3, nics: [{network: blue/api}]}\n")
    listed = changes(edited)
    assert listed[0].startswith("- guest db1")
    assert [c.split(":")[0] for c in listed[1:]] == ["+ host hv3", "+ network blue/api", "+ guest app1"]


def test_a_nic_changed_is_removed_and_added():
    edited = BASE.replace("web1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.11,",
                          "web1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.21,")
    assert changes(edited) == [c for c in changes(edited) if "nic web1/eth0" in c]
    assert [c[0] for c in changes(edited)] == ["-", "+"]


def test_what_cannot_change_in_place_is_placed_in_the_file():
    edited = BASE.replace("rack2: {subnet: 100.64.2.0/24, gateway: 100.64.2.254}",
                          "rack2: {subnet: 100.64.9.0/24, gateway: 100.64.9.254}").replace(
        "web: {subnet: 10.0.0.0/24, vni: 5001}", "web: {subnet: 10.0.0.0/24, vni: 5009}")
    with pytest.raises(InputError) as refused:
        changes_to(OLD, edited, "t.yaml")
    problems = {(p.line, p.path) for p in refused.value.problems}
    assert (4, "segments.rack2.subnet") in problems
    assert (11, "tenants.blue.networks.web.vni") in problems


def test_another_lab_is_refused():
    with pytest.raises(InputError, match="name: is 'other'"):
        changes_to(OLD, BASE.replace("name: t", "name: other"), "t.yaml")
