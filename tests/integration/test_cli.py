"""The sdnvirt command as a user runs it: exit statuses and messages, never a traceback."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.lab.migration_probe import migrate

from helpers.guests import nic, steady_ping
from helpers.migrations import assert_the_flight_recorded_it

TOPOLOGIES = Path(__file__).parent / "topologies"
SDNVIRT = str(Path(sys.executable).parent / "sdnvirt")


def sdnvirt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run([SDNVIRT, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_validate_reports_problems_with_their_place_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nhosts:\n  hv1: {segment: nowhere}\nvms:\n  a: {host: hv9, nics: []}\n")
    result = sdnvirt("topo", "validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f"{bad}:3:18: hosts.hv1.segment: unknown segment 'nowhere'" in lines[0]
    assert any(line.startswith(f"{bad}:5:") and "vms.a." in line for line in lines)


def test_validate_a_good_file():
    result = sdnvirt("topo", "validate", str(TOPOLOGIES / "fabric.yaml"))
    assert result.returncode == 0 and "3 hosts" in result.stdout


def test_missing_file_and_bad_arguments_exit_2(tmp_path):
    assert sdnvirt("topo", "validate", str(tmp_path / "nope.yaml")).returncode == 2
    assert sdnvirt("lab", "frobnicate").returncode == 2
    assert sdnvirt("topo", "show", str(TOPOLOGIES / "fabric.yaml"), "--format", "gif").returncode == 2


def test_show_draws_the_topology(tmp_path):
    svg = tmp_path / "fabric.svg"
    assert sdnvirt("topo", "show", str(TOPOLOGIES / "fabric.yaml"), "--format", "svg", "-o", str(svg)).returncode == 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "hv3" in text and "red/web" in text


def test_status_exec_and_flows_on_a_running_lab(fabric_lab):
    status = json.loads(sdnvirt("lab", "status", fabric_lab.name, "--json").stdout)
    assert status["controller"]["converged"]
    assert all(p["running"] for p in status["processes"].values())
    assert sdnvirt("exec", "--lab", fabric_lab.name, "a1", "--", "true").returncode == 0
    assert sdnvirt("exec", "--lab", fabric_lab.name, "a1", "--", "sh", "-c", "exit 7").returncode == 7
    missing = sdnvirt("exec", "--lab", fabric_lab.name, "zz", "--", "true")
    assert missing.returncode == 255 and "no guest named 'zz'" in missing.stderr
    flows = json.loads(sdnvirt("flows", "--lab", fabric_lab.name, "hv1", "--json").stdout)
    assert {f["table"] for f in flows} == {"classify", "port_security", "arp_responder", "l2_lookup", "flood"}
    assert sdnvirt("lab", "status", "no-such-lab").returncode == 1


def test_top_shows_each_guests_packet_rate(fabric_lab):
    """a1 pings a4 every 10 ms while top samples the counters: a4 receives, and a1 sends, as many
    packets a second as ping's own stamps show (the requests; the replies the other way). Ping's
    interval is a floor, not a rate: on some kernels -i 0.01 sends some 63 a second."""
    with steady_ping(fabric_lab, "a1", str(nic(fabric_lab, "a4").ip), 500, 0.01) as ping:
        shown = sdnvirt("top", "--batch", "--json", "-n", "3", "--delay", "1.2", "--lab", fabric_lab.name)
        answers = ping.result()
    assert shown.returncode == 0, shown.stderr
    first, *_, before, last = [json.loads(line) for line in shown.stdout.splitlines()]
    assert first["vms"]["a4"]["rates"] is None  # one sample is no rate
    pinged = sum(before["at"] < at <= last["at"] for at in answers.answered_at) / (last["at"] - before["at"])
    assert pinged > 30, answers  # the ping ran through the samples
    for guest, rate in (("a4", "received_packets_per_s"), ("a1", "sent_packets_per_s"),
                        ("a1", "received_packets_per_s")):
        assert 0.7 * pinged <= last["vms"][guest]["rates"][rate] <= 1.3 * pinged, (guest, pinged, last["vms"][guest])
    assert last["vms"]["a2"]["rates"]["received_packets_per_s"] < 5  # not in the conversation


def test_pipeline_and_schema_describe_what_the_controller_and_the_loader_use():
    pipeline = sdnvirt("pipeline")
    tables = [line.split()[1:3] for line in pipeline.stdout.splitlines() if line.startswith("table ")]
    assert pipeline.returncode == 0 and tables == [[str(t.id), t.name] for t in load_pipeline().tables]
    schema = sdnvirt("topo", "schema")
    keys = set(yaml.safe_load((TOPOLOGIES / "fabric.yaml").read_text()))
    assert schema.returncode == 0 and keys <= set(json.loads(schema.stdout)["properties"])


def test_a_migrations_flight_recorder_is_listed_served_and_drawn(fabric_lab, tmp_path):
    """`sdnvirt migrations show ID [--json] [--svg FILE]` on a migration made with `sdnvirt migrate`."""
    home = fabric_lab.api().vm("a4")["host"]
    away = next(h for h in sorted(fabric_lab.topology.hosts) if h != home)
    svg = tmp_path / "timeline.svg"
    try:
        moved = json.loads(sdnvirt("migrate", "a4", "--to", away, "--json", "--lab", fabric_lab.name).stdout)
        assert moved["result"] == "completed", moved
        served = assert_the_flight_recorded_it(fabric_lab, moved)
        shown = sdnvirt("migrations", "show", str(moved["id"]), "--svg", str(svg), "--lab", fabric_lab.name)
        as_json = sdnvirt("migrations", "show", str(moved["id"]), "--json", "--lab", fabric_lab.name)
    finally:
        if fabric_lab.api().vm("a4")["host"] != home:
            assert migrate(fabric_lab, "a4", home)["result"] == "completed"
    assert shown.returncode == 0 and json.loads(as_json.stdout) == served
    lines = shown.stdout.splitlines()
    assert lines[0] == f"migration {moved['id']}: a4 {home} -> {away} (netns): completed"
    assert len(lines) == 1 + len(served["timeline"]) + 8 and f"  guest pause: {served['pause_ms']:.1f} ms" in lines
    marks = [e for e in served["timeline"] if e["event"] != "state"]
    drawn = ET.parse(svg).getroot()
    assert len(drawn.findall(".//{http://www.w3.org/2000/svg}circle")) >= len(marks)  # the whole, then magnified
    assert sdnvirt("migrations", "show", "999999", "--lab", fabric_lab.name).returncode == 1
