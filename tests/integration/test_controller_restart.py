"""Restarting the controller loses no packet, changes no flow, and sends no flow-mod."""

import subprocess
import threading

from sdnvirt.lab import naming
from sdnvirt.lab.process import entering
from sdnvirt.vswitch.names import OFCTL_PROTOCOL

from guests import nic, wait_until

PINGS = 600
INTERVAL = 0.01  # seconds: one ping every 10 ms, for 6 s


def flow_tables(lab) -> dict[str, list[str]]:
    """Every host's flows without counters or ages, in a stable order."""
    return {name: sorted(host.openvswitch.ofctl("--no-stats", "dump-flows", "br-int").splitlines())
            for name, host in lab.hosts().items()}


def snoop(lab, host: str) -> subprocess.Popen:
    """ovs-ofctl snoop: every OpenFlow message between the bridge and its controller."""
    env = lab.hosts()[host].openvswitch.env
    return subprocess.Popen(["ovs-ofctl", "-O", OFCTL_PROTOCOL, "snoop", "br-int"],
                            env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_restart_loses_nothing_changes_nothing_sends_nothing(fabric_lab):
    a4 = nic(fabric_lab, "a4")
    before = flow_tables(fabric_lab)
    watchers = {host: snoop(fabric_lab, host) for host in fabric_lab.topology.hosts}
    ping = subprocess.Popen(
        [*entering(naming.guest_namespace(fabric_lab.name, "a1")), "ping", "-n", "-q",
         "-c", str(PINGS), "-i", str(INTERVAL), "-W", "1", str(a4.ip)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    restarted = threading.Event()

    def restart():
        fabric_lab.restart_process("controller")
        restarted.set()

    threading.Timer(1.0, restart).start()
    output, _ = ping.communicate(timeout=PINGS * INTERVAL + 60)
    assert restarted.wait(30)
    status = wait_until(lambda: (s := fabric_lab.api().status())["converged"] and s, timeout=30)
    for watcher in watchers.values():
        watcher.terminate()
    messages = {host: w.communicate(timeout=10)[0] for host, w in watchers.items()}

    summary = next(line for line in output.splitlines() if "packets transmitted" in line)
    assert f"{PINGS} packets transmitted, {PINGS} received" in summary, output
    assert flow_tables(fabric_lab) == before
    for host, seen in messages.items():
        assert "OFPT_FEATURES_REPLY" in seen, f"{host} never reconnected"  # the new controller was seen
        assert not [t for t in ("OFPT_FLOW_MOD", "OFPT_BUNDLE_ADD_MESSAGE", "OFPT_BUNDLE_CONTROL") if t in seen], seen
        assert status["hosts"][host]["flow_mods_sent"] == 0
