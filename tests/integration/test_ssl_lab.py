"""A lab up with `--ssl` runs as on real hosts: the controller reaches each host's OVSDB,
and each bridge reaches the controller, over SSL on the management network with
certificates made by ovs-pki; the API is there too, over HTTPS, and wants its token.
A peer whose certificate another authority signed gets nothing; a host's certificate
takes only that host's bridge's place; a peer that never finishes its handshake is
dropped, and keeps no bridge out meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdnvirt.controller.fabric.listener import HANDSHAKE_TIMEOUT, PENDING_PER_PEER
from sdnvirt.lab import naming
from sdnvirt.lab.pki import LabPki
from sdnvirt.lab.underlay import API_PORT, CONTROLLER_MANAGEMENT_ADDRESS
from sdnvirt.linux.netns import entering
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE, OPENFLOW_PORT, OVSDB_PORT, datapath_id

from helpers.guests import FLOW_MOD_MESSAGES, flow_tables, ping, snooping, wait_until
from helpers.labs import build_lab_from_text

TOPOLOGY = """\
name: sec
segments:
  rack1: {subnet: 100.64.1.0/24}
  rack2: {subnet: 100.64.2.0/24}
hosts:
  hv1: {segment: rack1}
  hv2: {segment: rack2}
tenants:
  blue:
    networks:
      web: {subnet: 10.0.0.0/24}
vms:
  a1: {host: hv1, nics: [{network: blue/web, ip: 10.0.0.11}]}
  a2: {host: hv2, nics: [{network: blue/web, ip: 10.0.0.12}]}
"""

# Run inside a lab namespace: an SSL client with the given certificate (or none) that
# says whether the server spoke to it. OpenFlow servers speak first (HELLO); an OVSDB
# server answers a list_dbs.
PEER = """
import json, socket, ssl, sys
host, port, ca, cert, key, protocol = sys.argv[1:7]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        if protocol == "ovsdb":
            tls.sendall(json.dumps({"method": "list_dbs", "params": [], "id": 1}).encode())
        print("answered" if tls.recv(4096) else "closed")
except (ssl.SSLError, OSError) as error:
    print("refused", error)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    yield from build_lab_from_text(TOPOLOGY, tmp_path_factory.mktemp("ssl"), ssl=True)


@pytest.fixture(scope="module")
def intruder(tmp_path_factory):
    """Certificates from an authority of someone else's: well-formed, but not ours."""
    pki = LabPki(tmp_path_factory.mktemp("intruder"))
    pki.create(["hv1"])
    return pki


def speaks_to(lab, namespace: str, address: str, port: int, credentials, protocol: str) -> str:
    pki = LabPki(lab.paths.pki)
    ca = pki.host("hv1").peer_ca if port == OPENFLOW_PORT else pki.controller().peer_ca  # what the server shows
    cert, key = (str(credentials.certificate), str(credentials.private_key)) if credentials else ("-", "-")
    result = subprocess.run([*entering(namespace), sys.executable, "-c", PEER, address, str(port), str(ca), cert, key,
                             protocol], capture_output=True, text=True, timeout=30)
    return result.stdout.split(" ")[0].strip() or result.stderr


def api(lab, token: str | None) -> tuple[int, dict]:
    """GET /status over HTTPS from hv1's namespace, checking the controller's certificate."""
    script = ("import httpx, json, ssl, sys\n"
              "ctx = ssl.create_default_context(cafile=sys.argv[1]); ctx.check_hostname = False\n"
              "headers = {'Authorization': 'Bearer ' + sys.argv[3]} if sys.argv[3] != '-' else {}\n"
              "r = httpx.get(sys.argv[2], headers=headers, verify=ctx)\n"
              "print(json.dumps([r.status_code, r.json()]))\n")
    ca = LabPki(lab.paths.pki).host("hv1").peer_ca
    url = f"https://{CONTROLLER_MANAGEMENT_ADDRESS}:{API_PORT}/status"
    result = subprocess.run([*entering(naming.host_namespace(lab.name, "hv1")), sys.executable, "-c", script, str(ca),
                             url, token or "-"], capture_output=True, text=True, timeout=30, check=True)
    status, body = json.loads(result.stdout)
    return status, body


def test_bridges_and_ovsdb_talk_to_the_controller_over_ssl_only(lab):
    for name, host in lab.hosts().items():
        target = host.openvswitch.vsctl("get-controller", "br-int").strip()
        assert target == f"ssl:{CONTROLLER_MANAGEMENT_ADDRESS}:{OPENFLOW_PORT}"
        # ovs-vswitchd writes a connection's state to its database every few seconds
        wait_until(lambda h=host: h.openvswitch.vsctl("get", "Controller", "br-int", "is_connected").strip() == "true",
                   timeout=15)
        sessions = subprocess.run([*entering(host.namespace), "ss", "-Htn", "state", "established",
                                   f"( sport = :{OVSDB_PORT} )"], capture_output=True, text=True, check=True).stdout
        assert f"{CONTROLLER_MANAGEMENT_ADDRESS}:" in sessions, (name, sessions)  # the controller's OVSDB session
    status = lab.api().status()
    assert status["converged"] and all(h["ovsdb_connected"] and h["openflow_connected"]
                                       for h in status["hosts"].values()), status["hosts"]
    assert ping(lab, "a1", "10.0.0.12") == 3  # across segments, programmed over SSL


def test_a_peer_with_a_foreign_certificate_gets_nothing(lab, intruder):
    hv1, ctl = lab.hosts()["hv1"], naming.controller_namespace(lab.name)
    ours, theirs = LabPki(lab.paths.pki), intruder.host("hv1")
    # a switch at the controller: ours is spoken to, a stranger's and a bare one are not
    controller = (hv1.namespace, CONTROLLER_MANAGEMENT_ADDRESS, OPENFLOW_PORT)
    assert speaks_to(lab, *controller, ours.host("hv1"), "openflow") == "answered"
    assert speaks_to(lab, *controller, theirs, "openflow") in ("refused", "closed")
    assert speaks_to(lab, *controller, None, "openflow") in ("refused", "closed")
    # a client at a host's OVSDB: only the controller's certificate opens it
    ovsdb = (ctl, hv1.management, OVSDB_PORT)
    assert speaks_to(lab, *ovsdb, ours.controller(), "ovsdb") == "answered"
    assert speaks_to(lab, *ovsdb, intruder.controller(), "ovsdb") in ("refused", "closed")
    assert speaks_to(lab, *ovsdb, None, "ovsdb") in ("refused", "closed")
    assert lab.api().status()["unknown_switches"] == 0


def test_the_api_on_tcp_refuses_requests_without_the_token(lab):
    token = lab.paths.api_token.read_text().strip()
    refused = {"detail": {"field": "Authorization", "message": "a valid bearer token is required"}}
    assert api(lab, None) == (401, refused)
    assert api(lab, token[::-1])[0] == 401
    status, body = api(lab, token)
    assert status == 200 and body["topology"] == "sec" and body["converged"], body


def test_a_restarted_controller_comes_back_over_ssl_and_sends_nothing(lab):
    before = flow_tables(lab)
    with snooping(lab, list(lab.topology.hosts)) as messages:
        lab.restart_process("controller")
        lab.wait_converged(timeout=30)
    assert flow_tables(lab) == before
    for host, seen in messages.items():
        assert "OFPT_FEATURES_REPLY" in seen, f"{host} never reconnected"
        assert not [t for t in FLOW_MOD_MESSAGES if t in seen], seen
    assert ping(lab, "a1", "10.0.0.12") == 3
    assert api(lab, lab.paths.api_token.read_text().strip())[0] == 200


OPENFLOW_PEERS = Path(__file__).parents[1] / "helpers" / "openflow_peers.py"


def fake_switch(lab, host: str, credentials, dpid: int) -> dict:
    """A switch that is no bridge, from `host`'s namespace: `credentials`' certificate and the
    OpenFlow handshake as datapath `dpid`; what the controller made of it."""
    result = subprocess.run([*entering(naming.host_namespace(lab.name, host)), sys.executable, str(OPENFLOW_PEERS),
                             "switch", CONTROLLER_MANAGEMENT_ADDRESS, str(OPENFLOW_PORT), str(credentials.peer_ca),
                             str(credentials.certificate), str(credentials.private_key), str(dpid)],
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def reconnect(lab, host: str) -> None:
    """The host's real bridge drops its controller connection and dials again; until the
    controller has it back in sync."""
    syncs = lab.api().status()["hosts"][host]["syncs"]
    lab.hosts()[host].openvswitch.appctl("bridge/reconnect", INTEGRATION_BRIDGE)
    wait_until(lambda: (h := lab.api().status()["hosts"][host])["syncs"] > syncs and h["openflow_connected"]
               and h["in_sync"], timeout=HANDSHAKE_TIMEOUT / 2)


def test_a_certificate_of_hv2_cannot_take_the_channel_of_hv1(lab):
    before, flows = lab.api().status(), flow_tables(lab)
    with snooping(lab, ["hv1"]) as messages:
        seen = fake_switch(lab, "hv2", LabPki(lab.paths.pki).host("hv2"), datapath_id(lab.name, "hv1"))
    # the handshake went through (so the datapath id was heard), then the controller hung up
    assert seen == {"asked": ["OFPT_FEATURES_REQUEST", "OFPMP_PORT_DESC"], "end": "closed"}
    status = lab.api().status()
    assert status["wrong_certificate_switches"] == before["wrong_certificate_switches"] + 1
    assert (f"refusing switch {datapath_id(lab.name, 'hv1'):#x} from " in lab.paths.controller_log.read_text()
            and "host hv1's bridge must show a certificate named 'hv1', it showed a certificate named 'hv2'"
            in lab.paths.controller_log.read_text())
    # hv1's own bridge never noticed: the same connection, nothing resent, its flows read through it
    assert status["hosts"]["hv1"]["syncs"] == before["hosts"]["hv1"]["syncs"]
    assert status["hosts"]["hv1"]["openflow_connected"] and status["hosts"]["hv1"]["in_sync"]
    assert "OFPT_FEATURES_REPLY" not in messages["hv1"]
    assert not [t for t in FLOW_MOD_MESSAGES if t in messages["hv1"]], messages["hv1"]
    assert len(lab.api().flows("hv1")) == len(flows["hv1"])
    assert flow_tables(lab) == flows
    assert ping(lab, "a1", "10.0.0.12") == 3


def test_the_same_switch_with_the_certificate_of_hv1_is_taken_for_the_bridge_of_hv1(lab):
    """The fake switch above is good enough to be taken: its certificate alone kept it out."""
    try:
        seen = fake_switch(lab, "hv1", LabPki(lab.paths.pki).host("hv1"), datapath_id(lab.name, "hv1"))
        assert seen["asked"][:2] == ["OFPT_FEATURES_REQUEST", "OFPMP_PORT_DESC"] and seen["end"] == "accepted", seen
    finally:
        reconnect(lab, "hv1")  # the real bridge takes its place back
    assert ping(lab, "a1", "10.0.0.12") == 3


def test_a_bridge_dropped_again_and_again_comes_back_as_soon_each_time(lab):
    """Open vSwitch doubles its wait between dials (1, 2, 4, 8 s) when connections end in quick
    succession, unless the controller caps it: a bridge must not come back later each time.
    Capped, one wait is a second on its whole-second clock (up to 2 s), plus the handshake."""
    took = []
    for _ in range(4):
        began = time.monotonic()
        reconnect(lab, "hv2")
        took.append(round(time.monotonic() - began, 2))
    assert max(took) < 3.0, took


def test_a_peer_that_says_nothing_is_dropped_and_keeps_no_bridge_out(lab):
    """Of the silent connections from one address, PENDING_PER_PEER are held until the
    handshake timeout and the others closed at once, while another host's bridge reconnects."""
    hv1 = naming.host_namespace(lab.name, "hv1")
    count = PENDING_PER_PEER + 2
    peers = subprocess.Popen([*entering(hv1), sys.executable, str(OPENFLOW_PEERS), "silent",
                              CONTROLLER_MANAGEMENT_ADDRESS, str(OPENFLOW_PORT), str(count),
                              str(HANDSHAKE_TIMEOUT * 2)], stdout=subprocess.PIPE, text=True)
    try:
        assert peers.stdout.readline().strip() == "ready"
        opened = time.monotonic()
        reconnect(lab, "hv2")
        reconnected = time.monotonic() - opened
        closed = json.loads(peers.communicate(timeout=HANDSHAKE_TIMEOUT * 3)[0])
    finally:
        if peers.poll() is None:
            peers.kill()
            peers.wait()
    assert reconnected < HANDSHAKE_TIMEOUT
    assert None not in closed, closed
    refused, held = sorted(closed)[:-PENDING_PER_PEER], sorted(closed)[-PENDING_PER_PEER:]
    assert all(HANDSHAKE_TIMEOUT <= t < HANDSHAKE_TIMEOUT + 1 for t in held), closed
    assert all(0 <= t < 1 for t in refused), closed
    assert "no SSL handshake with" in lab.paths.controller_log.read_text()
    status = lab.api().status()
    assert all(h["openflow_connected"] and h["in_sync"] for h in status["hosts"].values())
