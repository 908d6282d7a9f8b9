"""How fast a bridge's tables are complete after it connects to the controller.

Builds a lab of H hosts and N netns guests spread over several tenant
networks, then for each host: takes the bridge off its controller, empties
its tables, gives it the controller back and measures the time from the
connection to the tables being complete (the controller's own clock, and
from outside by watching the switch), and the flow-mods sent. The baseline,
measured in the same run on the same bridge: the same flow set loaded with
`ovs-ofctl --bundle add-flows`. Once more right after a controller restart,
when the controller has encoded no flow-mod yet. The whole fabric after a
controller restart: from the restart to every bridge complete again, beside the
new process's own start (to its API answering). Then every bridge at once: all
of them reconnecting together while they hold their flows (nothing to send), and
again with every table emptied, the controller meeting all of them at the same
instant; each bridge's time from its connection to its complete tables, and
from the first connection to the last complete table.
Prints one JSON object.

    .venv/bin/python bench/converge.py [--hosts 10] [--guests 200] [--networks 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ruamel.yaml import YAML

from sdnvirt.lab import naming
from sdnvirt.lab.lab import CONTROLLER, Lab, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux.netns import run_in_namespace
from sdnvirt.model.loader import load_topology
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE

LAB = "bench"
POLL = 0.002
# Between two looks at a storm, seconds: its figures come from the controller's own clock, and a
# bench asking for its status every 20 ms (or running ss as often) took CPU from ten bridges'
# handshakes on two cores.
WATCH = 0.2
DIAL_WITHIN = 5.0  # seconds for every bridge to dial again (Open vSwitch's backoff is 1 s at most here)


def topology_file(folder: Path, hosts: int, guests: int, networks: int) -> Path:
    """H hosts over two segments; N guests round-robin over hosts and networks."""
    segments = {"rack1": {"subnet": "100.64.1.0/24"}, "rack2": {"subnet": "100.64.2.0/24"}}
    tenants: dict = {}
    for n in range(networks):
        tenants.setdefault(f"t{n % 4}", {"networks": {}})["networks"][f"net{n}"] = {"subnet": f"10.{n}.0.0/24"}
    keys = [f"t{n % 4}/net{n}" for n in range(networks)]
    data = {
        "name": LAB,
        "segments": segments,
        "hosts": {f"hv{h}": {"segment": "rack1" if h < hosts / 2 else "rack2"} for h in range(hosts)},
        "tenants": tenants,
        "vms": {f"g{g}": {"host": f"hv{g % hosts}", "nics": [{"network": keys[g % networks]}]}
                for g in range(guests)},
    }
    path = folder / "bench.yaml"
    with path.open("w") as out:
        YAML().dump(data, out)
    return path


def flow_count(lab: Lab, host: str) -> int:
    return sum(1 for line in lab.hosts()[host].openvswitch.ofctl("--no-stats", "dump-flows",
                                                                INTEGRATION_BRIDGE).splitlines()
               if "actions=" in line)


def measure_cold(lab: Lab, host: str) -> float:
    """Converge time right after a controller restart, with nothing encoded yet."""
    ovs = lab.hosts()[host].openvswitch
    ovs.vsctl("del-controller", INTEGRATION_BRIDGE)
    ovs.ofctl("del-flows", INTEGRATION_BRIDGE)
    lab.restart_process("controller")
    ovs.vsctl("set-controller", INTEGRATION_BRIDGE, f"unix:{lab.paths.host(host).controller_socket}")
    return lab.wait_converged()["hosts"][host]["converge_ms"]


def measure_restart(lab: Lab) -> dict:
    """The whole fabric after a controller restart, every bridge holding its flows: from the
    restart to the new process answering its API (its own start: the baseline), and to every
    bridge's tables complete again (the new process attaching every host's OVSDB, each bridge
    dialling again after its backoff, its tables read and compared)."""
    began = time.time()
    lab.restart_process("controller")
    answering = time.time()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _reconverged(lab.api().status()["hosts"], began):
        time.sleep(WATCH)
    bridges = lab.wait_converged()["hosts"]
    assert _reconverged(bridges, began), "not every bridge came back"
    return {"answering_ms": round((answering - began) * 1000, 1),
            "all_converged_ms": round((max(b["converged_at"] for b in bridges.values()) - began) * 1000, 1)}


def measure_all_at_once(lab: Lab, empty: bool) -> dict:
    """Every bridge reconnecting at the same instant and reconverging together, holding its
    flows or with its tables emptied first (the controller learns it only from the dump it
    reads on reconnecting). The controller is stopped (SIGSTOP) while every bridge drops its
    connection (`ovs-appctl bridge/reconnect`) and dials again after its backoff; once all
    of them wait in its accept queue it runs again, and meets them all at once. (Left
    running, it met them as ovs-appctl and Open vSwitch's backoff let them come, spread
    over up to a second.) Open vSwitch then takes its own time over the handshake: here up
    to 400 ms from the controller's HELLO to the bridge saying it is connected. The time
    from the controller running again to the last complete table includes that; each
    bridge's own time, from its handshake's end, does not."""
    hosts = lab.hosts()
    expected = {host: flow_count(lab, host) for host in hosts}

    def reconnect(host: str) -> None:
        if empty:
            hosts[host].openvswitch.ofctl("del-flows", INTEGRATION_BRIDGE)
        hosts[host].openvswitch.appctl("bridge/reconnect", INTEGRATION_BRIDGE)

    controller = next(p for p in LabRecord.load(lab.paths.record).processes if p.name == CONTROLLER)
    cpu_before = cpu_seconds(controller.pid)
    began = time.time()
    os.kill(controller.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(reconnect, hosts))
        deadline = time.monotonic() + DIAL_WITHIN
        while time.monotonic() < deadline and waiting_to_be_accepted(lab) < len(hosts):
            time.sleep(WATCH)
        dialled = waiting_to_be_accepted(lab)
    finally:
        os.kill(controller.pid, signal.SIGCONT)
        resumed = time.time()
    assert dialled >= len(hosts), f"{dialled} of {len(hosts)} bridges dialled while the controller was stopped"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _reconverged(lab.api().status()["hosts"], began):
        time.sleep(WATCH)
    bridges = lab.wait_converged()["hosts"]
    cpu_ms = (cpu_seconds(controller.pid) - cpu_before) * 1000
    assert _reconverged(bridges, began), "not every bridge reconnected"
    assert {host: flow_count(lab, host) for host in hosts} == expected, "the controller did not restore every flow"
    connected = [b["converged_at"] - b["converge_ms"] / 1000 for b in bridges.values()]
    return {"bridges": len(bridges), "empty_tables": empty,
            "converge_ms": median_max([b["converge_ms"] for b in bridges.values()]),
            "connections_spread_ms": round((max(connected) - min(connected)) * 1000, 1),
            "first_connection_to_all_converged_ms": round((max(b["converged_at"] for b in bridges.values())
                                                           - min(connected)) * 1000, 1),
            "resumed_to_all_converged_ms": round((max(b["converged_at"] for b in bridges.values()) - resumed) * 1000,
                                                 1),
            "controller_cpu_ms": round(cpu_ms, 1),
            "flow_mods": sum(b["last_sync_flow_mods"] for b in bridges.values())}


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waiting_to_be_accepted(lab: Lab) -> int:
    """Connections in the controller's OpenFlow accept queue (ss shows a listening socket's
    queue as its Recv-Q)."""
    listing = run_in_namespace(naming.controller_namespace(lab.name),
                               ["ss", "-xlnH", "src", str(lab.paths.openflow_socket)]).stdout.split()
    return int(listing[2]) if len(listing) > 2 else 0


def _reconverged(bridges: dict, since: float) -> bool:
    return all(b["converged_at"] is not None and b["converged_at"] - b["converge_ms"] / 1000 > since
               for b in bridges.values())


def measure_host(lab: Lab, host: str, folder: Path) -> dict:
    ovs = lab.hosts()[host].openvswitch
    target = f"unix:{lab.paths.host(host).controller_socket}"
    expected = flow_count(lab, host)
    flows_file = folder / f"{host}.flows"
    flows_file.write_text(ovs.ofctl("--no-stats", "dump-flows", INTEGRATION_BRIDGE))

    # Baseline: the same flows, loaded in one bundle by ovs-ofctl into an empty table.
    ovs.vsctl("del-controller", INTEGRATION_BRIDGE)
    ovs.ofctl("del-flows", INTEGRATION_BRIDGE)
    began = time.monotonic()
    ovs.ofctl("--bundle", "add-flows", INTEGRATION_BRIDGE, str(flows_file))
    baseline_ms = (time.monotonic() - began) * 1000
    assert flow_count(lab, host) == expected

    # sdnvirt: an empty table, then the controller back.
    ovs.ofctl("del-flows", INTEGRATION_BRIDGE)
    began = time.monotonic()
    ovs.vsctl("set-controller", INTEGRATION_BRIDGE, target)
    deadline = began + 30
    while flow_count(lab, host) < expected and time.monotonic() < deadline:
        time.sleep(POLL)
    outside_ms = (time.monotonic() - began) * 1000
    assert flow_count(lab, host) == expected, "the controller did not restore every flow"
    status = lab.wait_converged()["hosts"][host]
    return {"host": host, "flows": expected, "converge_ms": status["converge_ms"],
            "flow_mods": status["last_sync_flow_mods"], "outside_ms": round(outside_ms, 1),
            "baseline_ms": round(baseline_ms, 1)}


def median_max(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--guests", type=int, default=200)
    parser.add_argument("--networks", type=int, default=8)
    args = parser.parse_args()
    if LAB in running_labs():
        print(f"lab {LAB} is up already; `sdnvirt lab down {LAB}` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = topology_file(folder, args.hosts, args.guests, args.networks)
        lab = Lab(load_topology(path), LabPaths.of(LAB))
        began = time.monotonic()
        lab.up(path)
        lab_up_s = time.monotonic() - began
        try:
            # First what needs every bridge's controller as the controller made it: the rounds
            # below set it anew with ovs-vsctl, which loses its short backoff (Open vSwitch's
            # default waits up to 8 s between two dials), until the controller attaches again.
            restarts = [measure_restart(lab) for _ in range(3)]
            all_at_once = [measure_all_at_once(lab, empty) for empty in (False, False, False, True)]
            rounds = [measure_host(lab, host, folder) for host in sorted(lab.topology.hosts)]
            cold_ms = measure_cold(lab, min(lab.topology.hosts))
        finally:
            lab.down()
    ours = [r["converge_ms"] for r in rounds]
    baseline = [r["baseline_ms"] for r in rounds]
    print(json.dumps({
        "benchmark": "converge",
        "hosts": args.hosts,
        "guests": args.guests,
        "networks": args.networks,
        "lab_up_s": round(lab_up_s, 1),
        "flows_per_host": median_max([r["flows"] for r in rounds]),
        "flow_mods_per_host": median_max([r["flow_mods"] for r in rounds]),
        "converge_ms": median_max(ours),
        "converge_after_restart_ms": round(cold_ms, 1),
        "converge_seen_from_switch_ms": median_max([r["outside_ms"] for r in rounds]),
        "baseline_ovs_ofctl_bundle_ms": median_max(baseline),
        "ratio": round(statistics.median(ours) / statistics.median(baseline), 2),
        "restart_whole_fabric": {
            "all_converged_ms": median_max([r["all_converged_ms"] for r in restarts]),
            "baseline_answering_ms": median_max([r["answering_ms"] for r in restarts]),
            "ratio": round(statistics.median(r["all_converged_ms"] for r in restarts)
                           / statistics.median(r["answering_ms"] for r in restarts), 2)},
        "all_bridges_at_once": [r for r in all_at_once if not r["empty_tables"]],
        "all_bridges_at_once_empty": [r for r in all_at_once if r["empty_tables"]],
        "rounds": rounds,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
