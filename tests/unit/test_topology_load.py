"""Loading topology files: the good file resolves, every kind of bad input is placed exactly."""

from pathlib import Path

import pytest
from netaddr import EUI, IPAddress, IPNetwork

from sdnvirt.model.loader import load_topology, load_topology_text
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.schema import topology_json_schema
from sdnvirt.model.topology import GuestKind, logical_port_id

TOPOLOGIES = Path(__file__).parent / "topologies"


def problems_in(text: str) -> list[Problem]:
    with pytest.raises(InputError) as raised:
        load_topology_text(text, "t.yaml")
    return raised.value.problems


def test_good_file_resolves_given_and_default_values():
    topology = load_topology(TOPOLOGIES / "two-racks.yaml")

    assert topology.name == "two-racks"
    assert topology.source == TOPOLOGIES / "two-racks.yaml"
    assert topology.segments["rack1"].gateway == IPAddress("100.64.1.1")
    assert topology.segments["rack2"].gateway == IPAddress("100.64.2.254")
    assert topology.hosts["hv2"].address == IPAddress("100.64.1.20")
    assert topology.hosts["hv3"].segment == "rack2"
    assert topology.networks["blue/web"].vni == 5001
    assert topology.networks["red/web"].subnet == IPNetwork("10.0.0.0/24")
    assert topology.tenants == ["blue", "red"]
    web1 = topology.guests["web1"]
    assert (web1.host, web1.kind, web1.memory, web1.vcpus) == ("hv1", GuestKind.NETNS, 256, 2)
    assert web1.nics[0].ip == IPAddress("10.0.0.11")
    assert web1.nics[0].mac == EUI("02:00:00:00:00:01")
    assert web1.nics[0].port_id == logical_port_id("two-racks", "web1", 0)
    assert [n.network for n in web1.nics] == ["blue/web", "blue/db"]
    db1 = topology.guests["db1"]
    assert (db1.memory, db1.vcpus, db1.nics[0].ip) == (128, 1, IPAddress("10.0.0.11"))


def test_empty_topology_is_allowed():
    topology = load_topology_text("name: empty\n", "t.yaml")

    assert (topology.segments, topology.hosts, topology.networks, topology.guests) == ({}, {}, {}, {})


def test_missing_file_is_one_problem(tmp_path):
    with pytest.raises(InputError) as raised:
        load_topology(tmp_path / "absent.yaml")

    [problem] = raised.value.problems
    assert str(problem) == f"{tmp_path / 'absent.yaml'}: cannot read the topology file: No such file or directory"


def test_problem_reads_file_line_column_path_message():
    [problem] = problems_in("name: t\nvms:\n  web1: {host: hv1, memory: lots, nics: [{network: blue/web}]}\n")

    assert str(problem) == "t.yaml:3:29: vms.web1.memory: expected an integer"


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("name: t\nhosts: [hv1\n", 3, 1, "expected ',' or ']'"),
        ("name: t\nname: u\n", 2, 1, 'found duplicate key "name"'),
        ("name: t\n\tsegments: {}\n", 2, 1, "found character '\\t'"),
        ("name: t\nvms: {web1: {memory: !!int lots}}\n", 2, 22, "tag:yaml.org,2002:int 'lots' cannot be read"),
        ("name: t\nvms:\n  ? {web1: 1}\n  : {}\n", 3, 5, "found unhashable key"),
        ("name: t\nvms: {web1: !python/object:os.system x}\n", 2, 13, "could not determine a constructor"),
        # what YAML does not print, and line separators, which parsers and editors count apart
        ("name: t\nhosts: {hv1: {segment: ra\x00ck1}}\n", 2, 26, "unacceptable character U+0000"),
        ("name: t\nhosts: {hv1: {segment: \ud800}}\n", 2, 24, "unacceptable character U+D800"),
        ("name: t\n# a comment\x85hosts: {}\n", 2, 12, "unacceptable character U+0085"),
        ("name: t\r\nsegments: {}\r\nhosts: {hv1: {segment: \u2028}}\r\n", 3, 24, "unacceptable character U+2028"),
    ],
)
def test_yaml_errors_are_placed(text, line, column, message):
    [problem] = problems_in(text)

    assert (problem.line, problem.column, problem.path) == (line, column, "")
    assert message in problem.message


@pytest.mark.parametrize(
    ("text", "line", "column", "path", "message"),
    [
        ("- name: t\n",
         1, 1, "", "expected a mapping"),
        ("segments: {}\n",
         1, 1, "name", "field required"),
        ("name: Demo\n",
         1, 7, "name", "expected a name matching ^[a-z][a-z0-9-]{0,11}$"),
        ("name: thirteen-char\n",
         1, 7, "name", "expected a name matching"),
        ("name: t\ncolour: red\n",
         2, 1, "colour", "unknown field 'colour'"),
        ("name: t\nsegments: [rack1]\n",
         2, 1, "segments", "expected a mapping"),
        ("name: t\nsegments:\nhosts: {}\n",  # left empty: placed at its key, not at the next line
         2, 1, "segments", "expected a mapping"),
        ("name: t\nsegments:\n  Rack1: {subnet: 100.64.1.0/24}\n",
         3, 3, "segments.Rack1", "expected a name matching"),
        ("name: t\nsegments:\n  rack1: {gateway: 100.64.1.1}\n",
         3, 3, "segments.rack1.subnet", "field required"),
        ("name: t\nsegments:\n  rack1: {subnet: 100.64.1.5/24}\n",
         3, 19, "segments.rack1.subnet", "did you mean 100.64.1.0/24"),
        ("name: t\nsegments:\n  rack1: {subnet: 100.64.1.0/31}\n",
         3, 19, "segments.rack1.subnet", "/31 leaves no room"),
        ("name: t\nsegments:\n  rack1: {subnet: 'fd00::/64'}\n",
         3, 19, "segments.rack1.subnet", "expected an IPv4 subnet"),
        ("name: t\nsegments:\n  rack1: {subnet: 100.64.1.0/24, gateway: 1.2.3}\n",
         3, 43, "segments.rack1.gateway", "expected an IPv4 address"),
        ("name: t\nhosts:\n  hv1: {segment: rack1, address: 100.64.1.300}\n",
         3, 34, "hosts.hv1.address", "expected an IPv4 address"),
        ("name: t\nhosts:\n  hv1: {segment: rack1, ram: 5}\n",
         3, 25, "hosts.hv1.ram", "unknown field 'ram'"),
        ("name: t\nhosts:\n  hv1: {segment: 7}\n",
         3, 18, "hosts.hv1.segment", "expected a string"),
        ("name: t\ntenants:\n  blue: {nets: {}}\n",
         3, 10, "tenants.blue.nets", "unknown field 'nets'"),
        ("name: t\ntenants:\n  blue:\n    networks:\n      web: {subnet: 10.0.0.0/24, vni: 0}\n",
         5, 39, "tenants.blue.networks.web.vni", "expected at least 1"),
        ("name: t\ntenants:\n  blue:\n    networks:\n      web: {subnet: 10.0.0.0/24, vni: 16777216}\n",
         5, 39, "tenants.blue.networks.web.vni", "expected at most 16777215"),
        ("name: t\ntenants:\n  blue:\n    networks:\n      web: {subnet: 10.0.0.0/24, vni: '7'}\n",
         5, 39, "tenants.blue.networks.web.vni", "expected an integer"),
        ("name: t\nvms:\n  web1: {host: hv1, memory: lots, nics: [{network: blue/web}]}\n",
         3, 29, "vms.web1.memory", "expected an integer"),
        ("name: t\nvms:\n  web1: {host: hv1, memory: 128.0, nics: [{network: blue/web}]}\n",
         3, 29, "vms.web1.memory", "expected an integer"),
        ("name: t\nvms:\n  web1: {host: hv1, memory: 16, nics: [{network: blue/web}]}\n",
         3, 29, "vms.web1.memory", "expected at least 32"),
        ("name: t\nvms:\n  web1: {host: hv1, memory: 65537, nics: [{network: blue/web}]}\n",
         3, 29, "vms.web1.memory", "expected at most 65536"),
        ("name: t\nvms:\n  web1: {host: hv1, vcpus: 0, nics: [{network: blue/web}]}\n",
         3, 28, "vms.web1.vcpus", "expected at least 1"),
        ("name: t\nvms:\n  web1: {host: hv1, vcpus: 65, nics: [{network: blue/web}]}\n",
         3, 28, "vms.web1.vcpus", "expected at most 64"),
        ("name: t\nvms:\n  web1: {host: hv1, kind: lxc, nics: [{network: blue/web}]}\n",
         3, 27, "vms.web1.kind", "expected 'netns' or 'qemu'"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: 5}\n",
         3, 27, "vms.web1.nics", "expected a list"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: []}\n",
         3, 21, "vms.web1.nics", "expected at least 1 item"),
        ("name: t\nvms:\n  web1: {nics: [{network: blue/web}]}\n",
         3, 3, "vms.web1.host", "field required"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{ip: 10.0.0.5}]}\n",
         3, 28, "vms.web1.nics[0].network", "field required"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{network: blue}]}\n",
         3, 38, "vms.web1.nics[0].network", "expected 'tenant/network'"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0}]}\n",
         3, 52, "vms.web1.nics[0].ip", "expected an IPv4 address"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{network: blue/web, mac: '02:00:00'}]}\n",
         3, 53, "vms.web1.nics[0].mac", "expected a MAC address"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{network: blue/web, mac: '01:00:5e:00:00:01'}]}\n",
         3, 53, "vms.web1.nics[0].mac", "multicast"),
        ("name: t\nvms:\n  web1: {host: hv1, nics: [{network: blue/web, mac: '00:00:00:00:00:00'}]}\n",
         3, 53, "vms.web1.nics[0].mac", "all-zero"),
        ("name: t\nvms:\n  web1:\n    host: hv1\n    nics:\n      - network: blue/web\n        speed: 10\n",
         7, 9, "vms.web1.nics[0].speed", "unknown field 'speed'"),
    ],
)
def test_structure_problems_are_placed(text, line, column, path, message):
    [problem] = problems_in(text)

    assert (problem.line, problem.column, problem.path) == (line, column, path)
    assert message in problem.message


def test_messages_are_short_and_human():
    text = "name: t\nvms:\n  web1: {host: hv1, memory: lots, vcpus: true, kind: 3, nics: 5, x: 1}\n"

    for problem in problems_in(text):
        assert "pydantic" not in problem.message
        assert "Input should" not in problem.message
        assert "http" not in problem.message


def test_one_bad_field_hides_no_other_problem_and_invents_none():
    problems = problems_in((TOPOLOGIES / "many-problems.yaml").read_text())

    assert [(p.line, p.column, p.path) for p in problems] == [
        (1, 7, "name"),
        (2, 1, "colour"),
        (4, 43, "segments.rack1.gateway"),
        (5, 19, "segments.rack2.subnet"),
        (6, 3, "segments.Rack3"),
        (8, 34, "hosts.hv1.address"),
        (9, 18, "hosts.hv2.segment"),
        (11, 34, "hosts.hv4.address"),
        (12, 25, "hosts.hv5.memory"),
        (17, 20, "tenants.blue.networks.db.subnet"),
        (17, 38, "tenants.blue.networks.db.vni"),
        (18, 39, "tenants.blue.networks.big.vni"),
        (20, 19, "tenants.red.networks"),
        (22, 27, "vms.web1.kind"),
        (22, 41, "vms.web1.memory"),
        (22, 53, "vms.web1.nics"),
        (23, 28, "vms.web2.vcpus"),
        (23, 65, "vms.web2.nics[0].mac"),
        (24, 38, "vms.web3.nics[0].network"),
        (24, 77, "vms.web3.nics[2].network"),
        (25, 52, "vms.web4.nics[0].ip"),
        (25, 128, "vms.web4.nics[1].mac"),
        (26, 52, "vms.web5.nics[0].ip"),
        (27, 52, "vms.web6.nics[0].ip"),
        (27, 85, "vms.web6.nics[2].ip"),
    ]


def test_json_schema_describes_the_file():
    schema = topology_json_schema()

    assert schema["title"] == "sdnvirt topology"
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"name", "segments", "hosts", "tenants", "vms"}
    vm = schema["$defs"]["VmSpec"]["properties"]
    assert vm["kind"]["enum"] == ["netns", "qemu"]
    assert vm["memory"]["minimum"] == 32
    assert vm["memory"]["description"]


def test_yaml_1_2_that_libyaml_refuses_is_read_and_placed():
    """libyaml, which parses first, is a YAML 1.1 parser: a MAC address unquoted in a flow mapping
    is a syntax error to it, and valid YAML 1.2, which ruamel's own parser then reads."""
    text = ("name: t\nsegments: {rack1: {subnet: 100.64.1.0/24}}\nhosts: {hv1: {segment: rack1}}\n"
            "tenants: {blue: {networks: {web: {subnet: 10.0.0.0/24}}}}\n"
            "vms:\n  web1: {host: hv1, nics: [{network: blue/web, mac: 02:00:00:00:00:07}]}\n")
    assert load_topology_text(text, "t.yaml").guests["web1"].nics[0].mac == EUI("02:00:00:00:00:07")
    [problem] = problems_in(text.replace("host: hv1", "host: hv9"))
    assert (problem.line, problem.column, problem.path) == (6, 16, "vms.web1.host")
