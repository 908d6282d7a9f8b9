"""Allocation: values the file leaves out are derived, and stay put when the file grows."""

import pytest
from netaddr import EUI, IPAddress

from sdnvirt.model.allocation import VNI_POOL, allocate_vnis, mac_for, vni_for
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError
from sdnvirt.model.topology import logical_port_id

BASE = """\
name: t
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24, gateway: 100.64.2.254}
hosts:
  hv1: {segment: rack1}
  hv2: {segment: rack1, address: 100.64.1.2}
  hv3: {segment: rack1}
  hv4: {segment: rack2}
tenants:
  blue:
    networks:
      web: {subnet: 10.0.0.0/24}
      db: {subnet: 10.0.1.0/24, vni: 5001}
vms:
  web1: {host: hv1, nics: [{network: blue/web}, {network: blue/db}]}
  web2: {host: hv1, nics: [{network: blue/web}]}
  web3: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.3, mac: "02:00:00:00:00:01"}]}
"""


def load(text: str = BASE):
    return load_topology_text(text, "t.yaml")


def test_segment_gateway_defaults_to_first_usable_address():
    assert load().segments["rack1"].gateway == IPAddress("100.64.1.1")


def test_host_gets_lowest_free_address_after_gateway_in_file_order():
    hosts = load().hosts

    assert [hosts[name].address for name in ("hv1", "hv2", "hv3")] == [
        IPAddress("100.64.1.3"),  # .1 is the gateway, .2 is given to hv2 further down
        IPAddress("100.64.1.2"),
        IPAddress("100.64.1.4"),
    ]
    assert hosts["hv4"].address == IPAddress("100.64.2.1")  # the gateway of rack2 is .254


def test_nic_gets_lowest_free_address_after_reserved_gateway_in_file_order():
    guests = load().guests

    assert guests["web1"].nics[0].ip == IPAddress("10.0.0.2")
    assert guests["web2"].nics[0].ip == IPAddress("10.0.0.4")  # 10.0.0.3 is given to web3
    assert guests["web1"].nics[1].ip == IPAddress("10.0.1.2")


def test_exhausted_network_is_a_problem_at_the_nic():
    text = BASE.replace("web: {subnet: 10.0.0.0/24}", "web: {subnet: 10.0.0.0/30}").replace(", ip: 10.0.0.3", "")

    with pytest.raises(InputError) as raised:
        load(text)

    assert [(p.line, p.column, p.path, p.message) for p in raised.value.problems] == [
        (17, 28, "vms.web2.nics[0].ip", "no free address in 10.0.0.0/30"),  # .1 is the gateway, .2 went to web1
        (18, 28, "vms.web3.nics[0].ip", "no free address in 10.0.0.0/30"),
    ]


def test_exhausted_segment_is_a_problem_at_the_host():
    text = BASE.replace("rack1: {subnet: 100.64.1.0/24}", "rack1: {subnet: 100.64.1.0/30}")

    with pytest.raises(InputError) as raised:
        load(text)

    assert [(p.line, p.column, p.path, p.message) for p in raised.value.problems] == [
        (6, 3, "hosts.hv1.address", "no free address in 100.64.1.0/30"),
        (8, 3, "hosts.hv3.address", "no free address in 100.64.1.0/30"),
    ]


def test_vni_is_given_or_derived_into_the_pool():
    networks = load().networks

    assert networks["blue/db"].vni == 5001
    assert networks["blue/web"].vni == vni_for("blue/web", {5001})
    assert networks["blue/web"].vni in VNI_POOL


def test_vni_probes_past_taken_ones():
    first = vni_for("blue/web", set())

    assert vni_for("blue/web", {first}) == (first + 1 if first + 1 in VNI_POOL else VNI_POOL.start)


def test_vnis_avoid_given_and_each_other():
    own = vni_for("blue/a", set())

    vnis = allocate_vnis({"blue/a": None, "blue/b": own, "blue/c": None})

    assert vnis["blue/b"] == own
    assert len(set(vnis.values())) == 3


def test_adding_a_network_keeps_every_existing_vni():
    before = load().networks
    grown = BASE.replace("      db:", "      app: {subnet: 10.0.2.0/24}\n      db:")

    after = load(grown).networks

    assert set(after) == set(before) | {"blue/app"}
    assert all(after[key].vni == network.vni for key, network in before.items())


def test_adding_a_guest_at_the_end_keeps_every_earlier_address_and_mac():
    before = load().guests
    grown = BASE + "  web4: {host: hv1, nics: [{network: blue/web}, {network: blue/db}]}\n"

    after = load(grown).guests

    assert all(after[name] == guest for name, guest in before.items())
    assert after["web4"].nics[0].ip == IPAddress("10.0.0.5")


def test_derived_mac_is_locally_administered_unicast_and_stable():
    mac = mac_for("t", "web1", 0, set())

    assert mac.words[0] == 0x02  # locally administered bit set, multicast bit clear
    assert mac == mac_for("t", "web1", 0, set())
    assert mac != mac_for("t", "web1", 1, set())
    assert mac != mac_for("u", "web1", 0, set())


def test_derived_mac_is_rehashed_on_collision():
    mac = mac_for("t", "web1", 0, set())

    other = mac_for("t", "web1", 0, {mac})

    assert other != mac
    assert other.words[0] == 0x02


def test_nics_get_file_macs_or_derived_ones_and_port_ids():
    guests = load().guests

    assert guests["web3"].nics[0].mac == EUI("02:00:00:00:00:01")
    assert guests["web1"].nics[0].mac == mac_for("t", "web1", 0, {EUI("02:00:00:00:00:01")})
    assert str(guests["web1"].nics[0].mac) == str(guests["web1"].nics[0].mac).lower()
    assert ":" in str(guests["web1"].nics[0].mac)
    assert guests["web1"].nics[1].port_id == logical_port_id("t", "web1", 1)


def test_loading_twice_gives_the_same_topology():
    assert load() == load()
