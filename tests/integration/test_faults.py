"""One part crashes at a time, under traffic: the controller, or one host's ovs-vswitchd or
ovsdb-server. A crash a user would survive on real hosts must cost the guests nothing, or
be repaired at once, and leave nothing behind twice."""

import time
from pathlib import Path

import pytest

from sdnvirt.lab.northbound_server import northbound_remote
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.names import guest_port

from helpers.guests import FLOW_MOD_MESSAGES, flow_tables, nic, ping, snooping, steady_ping, wait_until
from helpers.labs import build_lab

TOPOLOGY = Path(__file__).parent / "topologies" / "faults.yaml"
INTERVAL = 0.01  # seconds between pings: a crash shows as missing answers, not as noise
RECOVERY_LIMIT_MS = 1000.0  # a restarted ovs-vswitchd forwards again within this


@pytest.fixture(scope="module")
def faults_lab():
    yield from build_lab(TOPOLOGY)


@pytest.fixture
def lab(faults_lab):
    """Every test starts from a fabric in sync, whatever the one before it broke."""
    faults_lab.wait_converged()
    return faults_lab


def address(lab, guest: str) -> str:
    return str(nic(lab, guest).ip)


def northbound_bindings(lab, host: str) -> list[dict]:
    """The host's Binding rows in the northbound database, as the controller wrote them."""
    northbound = Northbound(northbound_remote(lab.paths))
    northbound.connect()
    try:
        return sorted((r for r in northbound.rows("Binding") if r["host"] == host), key=lambda r: r["interface"])
    finally:
        northbound.close()


def test_controller_killed_mid_traffic_loses_nothing_changes_nothing_sends_nothing(lab, record_property):
    """A crash (SIGKILL: no goodbye, stale sockets) must be as invisible as a clean restart."""
    pings = 600
    before = flow_tables(lab)
    with snooping(lab, list(lab.topology.hosts)) as messages, \
            steady_ping(lab, "g1", address(lab, "g3"), pings, INTERVAL) as pinging:  # hv1 -> hv3, across segments
        time.sleep(1.0)  # the ping runs (straddles() proves it) before the crash
        crashed = time.time()
        lab.restart_process("controller", kill=True)
        pinged = pinging.result()
        status = lab.wait_converged(timeout=30)

    record_property("lost", pinged.lost)
    record_property("longest_gap_ms", round(pinged.longest_gap() * 1000, 1))
    print(f"\ncontroller SIGKILL: {pinged.lost}/{pinged.transmitted} lost, "
          f"longest gap {pinged.longest_gap() * 1000:.1f} ms")
    assert (pinged.transmitted, pinged.lost) == (pings, 0), str(pinged)
    assert pinged.straddles(crashed), str(pinged)
    assert flow_tables(lab) == before
    for host, seen in messages.items():
        assert "OFPT_FEATURES_REPLY" in seen, f"{host} never reconnected to the new controller"
        assert not [t for t in FLOW_MOD_MESSAGES if t in seen], seen
        hosts = status["hosts"][host]
        assert hosts["syncs"] >= 1, hosts  # it did compare the switch's flows with its own...
        assert hosts["flow_mods_sent"] == 0, hosts  # ...and found nothing to send


def test_a_restarted_vswitchd_is_reprogrammed_and_forwards_within_a_second(lab, record_property):
    """A crashed ovs-vswitchd comes back with an empty flow table; only the controller can fill it."""
    host, pings = "hv3", 400
    before_flows = flow_tables(lab)
    before = lab.api().status()["hosts"]
    with steady_ping(lab, "g3", address(lab, "g1"), pings, INTERVAL) as pinging:  # from hv3, across segments
        time.sleep(0.5)  # the ping runs (straddles() proves it) before the crash
        lab.stop_process(f"{host}/ovs-vswitchd", kill=True)
        killed = time.time()
        lab.start_process(f"{host}/ovs-vswitchd")
        up = time.time()
        pinged = pinging.result()
    status = lab.wait_converged(timeout=30)

    answered = [t for t in pinged.answered_at if t > killed]
    assert pinged.straddles(killed), f"no answer before the crash or after ovs-vswitchd came back: {pinged}"
    recovery_ms = max(0.0, (answered[0] - up) * 1000)
    after, resent = status["hosts"][host], status["hosts"][host]["flow_mods_sent"] - before[host]["flow_mods_sent"]
    for name, figure in [("recovery_ms", round(recovery_ms, 1)), ("lost", pinged.lost), ("flow_mods_resent", resent),
                         ("syncs", after["syncs"] - before[host]["syncs"]),
                         ("last_sync_flow_mods", after["last_sync_flow_mods"])]:
        record_property(name, figure)
    print(f"\novs-vswitchd SIGKILL on {host}: first answer {recovery_ms:.1f} ms after it was up, "
          f"{pinged.lost}/{pinged.transmitted} lost, {resent} flow-mods resent "
          f"(syncs +{after['syncs'] - before[host]['syncs']}, last sync {after['last_sync_flow_mods']})")
    assert recovery_ms < RECOVERY_LIMIT_MS, str(pinged)
    assert after["syncs"] > before[host]["syncs"]
    # The whole table again, once, in one bundle: no more, no less.
    assert resent == after["last_sync_flow_mods"] == len(before_flows[host]), (resent, after)
    assert flow_tables(lab) == before_flows
    for other in set(lab.topology.hosts) - {host}:  # nothing for the hosts that did not crash
        assert status["hosts"][other]["flow_mods_sent"] == before[other]["flow_mods_sent"], status["hosts"][other]
    assert ping(lab, "g4", address(lab, "g2")) == 3  # the other guest on the host, to the other segment


def test_a_restarted_ovsdb_server_is_learned_again_with_nothing_twice(lab, record_property):
    """The controller reconnects to a restarted OVSDB and finds the same ports: it must not
    bind them twice, make tunnels again, touch the flows, or disturb traffic."""
    host, pings = "hv1", 300
    ovs = lab.hosts()[host].openvswitch
    before_flows = flow_tables(lab)
    before_ports = ovs.vsctl("list-ports", "br-int").split()
    before = lab.api().status()["hosts"]
    before_rows = northbound_bindings(lab, host)
    assert len(before_rows) == before[host]["bindings"] == 1
    with steady_ping(lab, "g1", address(lab, "g3"), pings, INTERVAL) as pinging:  # from hv1, across segments
        time.sleep(0.5)  # the ping runs (straddles() proves it) before the crash
        crashed = time.time()
        lab.restart_process(f"{host}/ovsdb-server", kill=True)
        pinged = pinging.result()
    wait_until(lambda: lab.api().status()["hosts"][host]["ovsdb_connected"], timeout=15)
    status = lab.wait_converged(timeout=30)

    ports = ovs.vsctl("list-ports", "br-int").split()
    record_property("lost", pinged.lost)
    record_property("longest_gap_ms", round(pinged.longest_gap() * 1000, 1))
    print(f"\novsdb-server SIGKILL on {host}: {pinged.lost}/{pinged.transmitted} lost, "
          f"longest gap {pinged.longest_gap() * 1000:.1f} ms, ports {ports}, "
          f"bindings {status['hosts'][host]['bindings']}")
    assert pinged.lost == 0, str(pinged)
    assert pinged.straddles(crashed), str(pinged)
    assert len(ports) == len(set(ports)) and set(ports) == set(before_ports), (before_ports, ports)
    for name in lab.topology.hosts:
        now, then = status["hosts"][name], before[name]
        assert (now["bindings"], now["tunnels"]) == (then["bindings"], then["tunnels"]), (name, now)
        assert now["flow_mods_sent"] == then["flow_mods_sent"], (name, now)
    assert northbound_bindings(lab, host) == before_rows
    assert flow_tables(lab) == before_flows

    # It watches the new server, not a copy of the old one: a port that leaves and comes back is seen.
    interface = guest_port(nic(lab, "g1").port_id)
    ovs.vsctl("set", "Interface", interface, "external_ids:iface-status=inactive")
    wait_until(lambda: lab.api().status()["hosts"][host]["bindings"] == 0, timeout=10)
    assert ping(lab, "g1", address(lab, "g3"), count=1) == 0
    ovs.vsctl("set", "Interface", interface, "external_ids:iface-status=active")
    lab.wait_converged(timeout=30)
    assert ping(lab, "g1", address(lab, "g3")) == 3
    assert flow_tables(lab) == before_flows
    assert len(northbound_bindings(lab, host)) == 1
