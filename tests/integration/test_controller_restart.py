"""Restarting the controller loses no packet, changes no flow, and sends no flow-mod."""

import threading

from helpers.guests import FLOW_MOD_MESSAGES, flow_tables, nic, snooping, steady_ping, wait_until

PINGS = 600
INTERVAL = 0.01  # seconds: one ping every 10 ms, for 6 s


def test_restart_loses_nothing_changes_nothing_sends_nothing(fabric_lab):
    a4 = nic(fabric_lab, "a4")
    before = flow_tables(fabric_lab)
    restarted = threading.Event()

    def restart():
        fabric_lab.restart_process("controller")
        restarted.set()

    with snooping(fabric_lab, list(fabric_lab.topology.hosts)) as messages, \
            steady_ping(fabric_lab, "a1", str(a4.ip), PINGS, INTERVAL) as ping:
        threading.Timer(1.0, restart).start()
        pinged = ping.result()
        assert restarted.wait(30)
        status = wait_until(lambda: (s := fabric_lab.api().status())["converged"] and s, timeout=30)

    assert (pinged.transmitted, pinged.lost) == (PINGS, 0), str(pinged)
    assert flow_tables(fabric_lab) == before
    for host, seen in messages.items():
        assert "OFPT_FEATURES_REPLY" in seen, f"{host} never reconnected"  # the new controller was seen
        assert not [t for t in FLOW_MOD_MESSAGES if t in seen], seen
        assert status["hosts"][host]["flow_mods_sent"] == 0
