"""Data-plane throughput between netns guests: sdnvirt's fabric against a plain veth pair, same run.

Why: the userspace datapath (ovs-vswitchd, `datapath_type=netdev`) forwards every packet
in software, and netns guests send with tx checksumming off (so no TSO either), so
what a guest gets is far from what two namespaces get over one veth pair. This bench
says how far, and what each setting this Open vSwitch offers changes.

One lab ("tput"): hv1 in rack1, hv2 in rack2 (behind the router, through VXLAN);
guests src and near on hv1, far on hv2. Beside it, two namespaces of the bench's
own (sdnvirt-tput-a, sdnvirt-tput-b, 192.0.2.0/24) joined by one veth pair: the
baseline, measured in the same run. iperf3 runs inside the namespaces: a server
for one test (`iperf3 -s -1`) and a bounded client (`-J`); TCP (median of --runs
runs of --seconds) and UDP at a fixed offered rate (loss %).

Scenarios, then variants applied to the running lab by this bench (and reverted):
  veth                        the baseline: a plain veth pair, offloads as Linux sets them
  veth_tx_off                 the same pair with tx checksumming off, as netns guests have it
  sdnvirt_same_host           src -> near, both on hv1
  sdnvirt_across_segments     src -> far, hv1 -> VXLAN -> router -> hv2
  threads_*                   pmd-cpu-mask (all CPUs), n-handler-threads, n-revalidator-threads
  mtu_jumbo_*                 guests' veths at MTU 8950 (underlay 9000, as the lab makes it)
  mtu_1450_underlay_1500_*    guests at 1450, the underlay at 1500 (what most clouds run)
  tso_*                       userspace-tso-enable=true (ovs-vswitchd restarted), guests' tx on or off
  afxdp*_across_segments      src's, far's and both underlay ports as `type=afxdp` (a PMD thread polls them)
                              or `type=afxdp-nonpmd` (the main thread does), when this build has it
Each entry: TCP Gbit/s (median), UDP loss, the ratio to `veth`, and the CPU the hosts'
ovs-vswitchd used (its busiest thread: the datapath's). Prints one JSON object.

    flock /tmp/sdnvirt-lab.lock .venv/bin/python bench/throughput.py [--seconds 3] [--runs 3] [--udp-rate 1G]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab, LabError, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.record import LabRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import CommandError, NetworkNamespace, entering, run_in_namespace
from sdnvirt.model.loader import load_topology
from sdnvirt.vswitch.names import UNDERLAY_BRIDGE, guest_port

LAB = "tput"
BASELINE = ("sdnvirt-tput-a", "sdnvirt-tput-b")
BASELINE_ADDRESSES = ("192.0.2.1", "192.0.2.2")  # RFC 5737 TEST-NET-1
BASELINE_LINK = "veth0"
IPERF_PORT = 5201
UDP_LENGTH = 1400  # fits every MTU measured here (1450 included)
LISTEN_TIMEOUT = 5.0
CLIENT_SLACK = 15.0  # seconds a client may take beyond its test
STOP_TIMEOUT = 5.0
PING_TIMEOUT = 15.0
LAB_MTU, LAB_UNDERLAY_MTU = 1500, 9000
JUMBO_MTU = 8950  # 9000 less VXLAN's 50 bytes
CLOUD_MTU, CLOUD_UNDERLAY_MTU = 1450, 1500
GUESTS = {"src": ("hv1", "10.0.0.11"), "near": ("hv1", "10.0.0.12"), "far": ("hv2", "10.0.0.13")}


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the finally blocks take everything down."""


def topology_file(folder: Path) -> Path:
    data = {
        "name": LAB,
        "segments": {"rack1": {"subnet": "100.64.1.0/24"}, "rack2": {"subnet": "100.64.2.0/24"}},
        "hosts": {"hv1": {"segment": "rack1"}, "hv2": {"segment": "rack2"}},
        "tenants": {"blue": {"networks": {"web": {"subnet": "10.0.0.0/24"}}}},
        "vms": {name: {"host": host, "nics": [{"network": "blue/web", "ip": ip}]}
                for name, (host, ip) in GUESTS.items()},
    }
    path = folder / "tput.yaml"
    with path.open("w") as out:
        YAML().dump(data, out)
    return path


# -- iperf3 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoints:
    """Where a test runs: the client's namespace, the server's, the server's address."""

    client: str
    server: str
    address: str


def stop(process: subprocess.Popen) -> None:
    """Stop a process this bench started, by its pid; SIGKILL if it does not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def wait_listening(namespace: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"iperf3 server in {namespace} ended at once (status {server.returncode})")
        listening = run_in_namespace(namespace, ["ss", "-Hltn", f"sport = :{IPERF_PORT}"]).stdout
        if listening.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"iperf3 server in {namespace} did not listen within {LISTEN_TIMEOUT:.0f}s")


def iperf(path: Endpoints, seconds: float, *options: str) -> dict:
    """One iperf3 test from path.client to path.server; iperf3's JSON (with "error" when it failed)."""
    server = subprocess.Popen([*entering(path.server), "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(path.server, server)
        argv = [*entering(path.client), "iperf3", "-c", path.address, "-p", str(IPERF_PORT), "-t", str(seconds),
                "-J", "--connect-timeout", "3000", *options]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=seconds + CLIENT_SLACK)
        except subprocess.TimeoutExpired:
            return {"error": f"iperf3 client did not end within {seconds + CLIENT_SLACK:.0f}s"}
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            return {"error": f"iperf3 said: {(done.stdout + done.stderr).strip()[:300]}"}
    finally:
        stop(server)


def tcp_figures(result: dict) -> dict:
    """What a TCP test's iperf3 JSON says: the receiver's rate, the sender's retransmits."""
    if "error" in result:
        return {"error": result["error"]}
    end = result["end"]
    return {"gbit_s": round(end["sum_received"]["bits_per_second"] / 1e9, 3),
            "retransmits": end["sum_sent"].get("retransmits")}


def udp_figures(result: dict) -> dict:
    """What a UDP test's iperf3 JSON says: the rate sent, the share the server did not get."""
    if "error" in result:
        return {"error": result["error"]}
    total = result["end"]["sum"]
    lost = total.get("lost_percent", 0.0)
    return {"offered_gbit_s": round(total["bits_per_second"] / 1e9, 3),
            "received_gbit_s": round(total["bits_per_second"] * (1 - lost / 100) / 1e9, 3),
            "loss_percent": round(lost, 2), "packets": total.get("packets")}


def tcp(path: Endpoints, seconds: float) -> dict:
    return tcp_figures(iperf(path, seconds))


def udp(path: Endpoints, seconds: float, rate: str) -> dict:
    return udp_figures(iperf(path, seconds, "-u", "-b", rate, "-l", str(UDP_LENGTH)))


# -- what ovs-vswitchd spends --------------------------------------------------------------------------

def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks (user + system) of each thread of a process, by thread name and id."""
    ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[f"{name}/{task.name}"] = int(fields[11]) + int(fields[12])
    return ticks


class VswitchdCpu:
    """CPU use of each host's ovs-vswitchd over a window: its total and its busiest thread."""

    def __init__(self, lab: Lab | None):
        self.pids = {}
        if lab is not None:
            record = LabRecord.load(lab.paths.record)
            self.pids = {p.name.split("/")[0]: p.pid for p in record.processes if p.name.endswith("/ovs-vswitchd")}
        self.began = time.monotonic()
        self.before = self._sample()

    def _sample(self) -> dict[str, dict[str, int]]:
        return {host: thread_ticks(pid) for host, pid in self.pids.items()}

    def result(self) -> dict:
        elapsed = time.monotonic() - self.began
        hertz = os.sysconf("SC_CLK_TCK")
        figures = {}
        for host, after in self._sample().items():
            used = {t: (n - self.before[host].get(t, 0)) / hertz / elapsed * 100 for t, n in after.items()}
            busiest = max(used, key=used.get)
            figures[host] = {"total_percent": round(sum(used.values()), 1),
                             "busiest_thread": busiest.split("/")[0], "busiest_percent": round(used[busiest], 1)}
        return figures


# -- scenarios -----------------------------------------------------------------------------------------

@dataclass
class Bench:
    seconds: float
    runs: int
    udp_rate: str
    lab: Lab | None = None

    def measure(self, path: Endpoints, applied: str, with_udp: bool = True) -> dict:
        cpu = VswitchdCpu(self.lab)
        runs = [tcp(path, self.seconds) for _ in range(self.runs)]
        cpu_figures = cpu.result()
        speeds = [r["gbit_s"] for r in runs if "gbit_s" in r]
        entry: dict = {"applied": applied,
                       "tcp_gbit_s": round(statistics.median(speeds), 3) if speeds else None,
                       "tcp_runs_gbit_s": [r.get("gbit_s") for r in runs],
                       "tcp_retransmits": [r.get("retransmits") for r in runs]}
        errors = sorted({r["error"] for r in runs if "error" in r})
        if errors:
            entry["tcp_errors"] = errors
        if cpu_figures:
            entry["vswitchd_cpu_during_tcp"] = cpu_figures
        if with_udp:
            entry["udp"] = udp(path, self.seconds, self.udp_rate)
        return entry


def guest_path(client: str, server: str) -> Endpoints:
    return Endpoints(naming.guest_namespace(LAB, client), naming.guest_namespace(LAB, server), GUESTS[server][1])


SAME_HOST, ACROSS = guest_path("src", "near"), guest_path("src", "far")


@contextmanager
def baseline_pair() -> Iterator[Endpoints]:
    """Two namespaces of the bench's own and one veth pair between them; removed afterwards."""
    try:
        for namespace in BASELINE:
            netns.make(namespace)
        with NetworkNamespace(BASELINE[0]) as ns:
            ns.add_veth(BASELINE_LINK, BASELINE[1], BASELINE_LINK)
        for namespace, address in zip(BASELINE, BASELINE_ADDRESSES, strict=True):
            with NetworkNamespace(namespace) as ns:
                ns.bring_up(BASELINE_LINK)
                ns.add_address(BASELINE_LINK, address, 24)
        yield Endpoints(BASELINE[0], BASELINE[1], BASELINE_ADDRESSES[1])
    finally:
        for namespace in BASELINE:
            netns.remove(namespace)


def set_tx(namespace: str, ifname: str, on: bool) -> None:
    run_in_namespace(namespace, ["ethtool", "--offload", ifname, "tx", "on" if on else "off"])


def set_mtu(namespace: str, ifname: str, mtu: int) -> None:
    run_in_namespace(namespace, ["ip", "link", "set", "dev", ifname, "mtu", str(mtu)])


def guest_links(lab: Lab) -> list[tuple[str, str, str, str]]:
    """(guest namespace, its NIC, host namespace, the host's end) of every guest."""
    links = []
    for name, guest in lab.topology.guests.items():
        nic = guest.nics[0]
        links.append((naming.guest_namespace(LAB, name), nic.interface,
                      naming.host_namespace(LAB, guest.host), guest_port(nic.port_id)))
    return links


def set_guest_mtu(lab: Lab, mtu: int) -> None:
    for guest_ns, inside, host_ns, port in guest_links(lab):
        set_mtu(host_ns, port, mtu)
        set_mtu(guest_ns, inside, mtu)


def set_guest_tx(lab: Lab, on: bool) -> None:
    for guest_ns, inside, _, _ in guest_links(lab):
        set_tx(guest_ns, inside, on)


def set_underlay_mtu(lab: Lab, mtu: int) -> None:
    """Every link of the underlay between the hosts: segment bridges, uplinks, NICs and br-phy."""
    fabric = naming.fabric_namespace(LAB)
    for segment in lab.topology.segments:
        set_mtu(fabric, naming.segment_bridge(segment), mtu)
    for name, host in lab.hosts().items():
        set_mtu(fabric, naming.segment_uplink(name), mtu)
        set_mtu(host.namespace, naming.UNDERLAY_NIC, mtu)
        host.openvswitch.vsctl("set", "Interface", UNDERLAY_BRIDGE, f"mtu_request={mtu}")


def wait_reachable(path: Endpoints) -> None:
    """The path answers pings (after a change of the running lab)."""
    deadline = time.monotonic() + PING_TIMEOUT
    while time.monotonic() < deadline:
        done = subprocess.run([*entering(path.client), "ping", "-n", "-q", "-c", "1", "-W", "1", path.address],
                              capture_output=True, timeout=5)
        if done.returncode == 0:
            return
    raise RuntimeError(f"{path.address} does not answer from {path.client} within {PING_TIMEOUT:.0f}s")


def set_other_config(lab: Lab, settings: dict[str, str | None]) -> None:
    """Open_vSwitch other_config keys on every host (None: removed)."""
    for host in lab.hosts().values():
        for key, value in settings.items():
            if value is None:
                host.openvswitch.vsctl("remove", "Open_vSwitch", ".", "other_config", key)
            else:
                host.openvswitch.vsctl("set", "Open_vSwitch", ".", f"other_config:{key}={value}")


def restart_vswitchds(lab: Lab) -> None:
    """Restart every host's ovs-vswitchd and give it back what the lab taught the old one at run
    time (its tunnel routes and next hops); the controller reprograms the bridges."""
    hosts = lab.hosts()
    for name in hosts:
        lab.restart_process(f"{name}/ovs-vswitchd")
    for host in hosts.values():
        segment = lab.topology.segments[host.host.segment]
        for other in lab.topology.segments.values():
            if other.name != segment.name:
                try:
                    host.openvswitch.appctl("ovs/route/add", str(other.subnet), UNDERLAY_BRIDGE, str(segment.gateway))
                except CommandError:
                    pass  # learned from the kernel's table already
    lab.teach_tunnel_neighbours(hosts)
    lab.wait_converged()


def pmd_threads(lab: Lab) -> dict[str, str]:
    return {name: host.openvswitch.appctl("dpif-netdev/pmd-rxq-show").strip()[:300] or "(none)"
            for name, host in lab.hosts().items()}


def variant_threads(bench: Bench, lab: Lab, cpus: int) -> dict:
    settings = {"pmd-cpu-mask": hex((1 << cpus) - 1), "n-handler-threads": str(cpus),
                "n-revalidator-threads": str(cpus)}
    applied = f"other_config {settings} on both hosts, at run time (no restart needed), reverted after"
    set_other_config(lab, settings)
    try:
        time.sleep(1)
        shown = pmd_threads(lab)
        across = bench.measure(ACROSS, applied)
        across["pmd_rxq_show"] = shown
        return {"threads_across_segments": across}
    finally:
        set_other_config(lab, dict.fromkeys(settings))


def variant_mtu(bench: Bench, lab: Lab) -> dict:
    results = {}
    try:
        set_guest_mtu(lab, JUMBO_MTU)
        applied = f"guests' veths (both ends) MTU {JUMBO_MTU}, underlay {LAB_UNDERLAY_MTU} as the lab makes it"
        results["mtu_jumbo_same_host"] = bench.measure(SAME_HOST, applied)
        results["mtu_jumbo_across_segments"] = bench.measure(ACROSS, applied)
        set_guest_mtu(lab, CLOUD_MTU)
        set_underlay_mtu(lab, CLOUD_UNDERLAY_MTU)
        wait_reachable(ACROSS)
        applied = (f"guests' veths MTU {CLOUD_MTU}; underlay (segment bridges, uplinks, eth0, br-phy) "
                   f"{CLOUD_UNDERLAY_MTU}")
        results["mtu_1450_underlay_1500_across_segments"] = bench.measure(ACROSS, applied)
    finally:
        set_underlay_mtu(lab, LAB_UNDERLAY_MTU)
        set_guest_mtu(lab, LAB_MTU)
    return results


def variant_tso(bench: Bench, lab: Lab) -> dict:
    results = {}
    set_other_config(lab, {"userspace-tso-enable": "true"})
    try:
        restart_vswitchds(lab)  # "Changing userspace-tso-enable requires restarting the daemon" (OVS docs)
        applied = "other_config:userspace-tso-enable=true, ovs-vswitchd restarted on both hosts"
        results["tso_guest_tx_off_across_segments"] = bench.measure(ACROSS, applied + "; guests' tx off (as today)")
        set_guest_tx(lab, True)
        applied += "; guests' tx checksumming (and with it TSO) on"
        results["tso_guest_tx_on_same_host"] = bench.measure(SAME_HOST, applied)
        results["tso_guest_tx_on_across_segments"] = bench.measure(ACROSS, applied)
    finally:
        set_guest_tx(lab, False)
        set_other_config(lab, {"userspace-tso-enable": None})
        restart_vswitchds(lab)
    return results


def afxdp_available(lab: Lab) -> bool:
    types = lab.hosts()["hv1"].openvswitch.vsctl("get", "Open_vSwitch", ".", "iface_types")
    return "afxdp" in types


def variant_afxdp(bench: Bench, lab: Lab, kind: str) -> dict:
    """The far guest's port, the sending guest's, and both hosts' underlay NICs as AF_XDP ports
    (`afxdp`: polled by a PMD thread; `afxdp-nonpmd`: by ovs-vswitchd's main thread)."""
    hosts = lab.hosts()
    links = {ns: (host_ns, port) for ns, _, host_ns, port in guest_links(lab)}
    ports = [links[ACROSS.client], links[ACROSS.server]]
    ports += [(host.namespace, naming.UNDERLAY_NIC) for host in hosts.values()]
    by_namespace = {host.namespace: host for host in hosts.values()}
    applied = (f"type={kind} options:xdp-mode=generic on src's and far's ports and on both eth0 (in br-phy); "
               "reverted to type=system after")
    label = f"{kind.replace('-', '_')}_across_segments"
    changed = []
    try:
        for host_ns, port in ports:
            by_namespace[host_ns].openvswitch.vsctl("set", "Interface", port, f"type={kind}",
                                                    "options:xdp-mode=generic")
            changed.append((host_ns, port))
        time.sleep(2)
        errors = {port: by_namespace[host_ns].openvswitch.vsctl("get", "Interface", port, "error").strip()
                  for host_ns, port in changed}
        errors = {port: e for port, e in errors.items() if e not in ("[]", "")}
        if errors:
            return {label: {"applied": applied, "error": errors}}
        lab.wait_converged()
        try:
            wait_reachable(ACROSS)
        except RuntimeError as error:
            return {label: {"applied": applied, "error": str(error)}}
        entry = bench.measure(ACROSS, applied)
        entry["pmd_rxq_show"] = pmd_threads(lab)
        return {label: entry}
    finally:
        for host_ns, port in changed:
            by_namespace[host_ns].openvswitch.vsctl("set", "Interface", port, "type=system",
                                                    "--", "remove", "Interface", port, "options", "xdp-mode")
        if changed:
            lab.wait_converged()


def guarded(name: str, variant: Callable[[], dict], failures: dict) -> dict:
    """A variant's figures; a variant that fails is reported, and the others still run."""
    try:
        return variant()
    except (CommandError, RuntimeError, LabError, OSError) as error:
        failures[name] = str(error)
        return {}


def ratios(results: dict, baseline: float | None) -> None:
    """Each entry's TCP rate over the baseline's (None where either is missing)."""
    for entry in results.values():
        speed = entry.get("tcp_gbit_s")
        entry["ratio_to_veth"] = round(speed / baseline, 3) if speed is not None and baseline else None


def run(args: argparse.Namespace, folder: Path) -> dict:
    cpus = os.cpu_count() or 1
    bench = Bench(args.seconds, args.runs, args.udp_rate)
    results: dict = {}
    failures: dict = {}
    with baseline_pair() as veth:
        results["veth"] = bench.measure(veth, "a plain veth pair between two namespaces, Linux's defaults")
        for namespace in BASELINE:
            set_tx(namespace, BASELINE_LINK, False)
        results["veth_tx_off"] = bench.measure(veth, "the same pair, tx checksumming off on both ends")
    path = topology_file(folder)
    lab = Lab(load_topology(path), LabPaths.of(LAB))
    began = time.monotonic()
    try:
        lab.up(path)
        lab_up_s = time.monotonic() - began
        bench.lab = lab
        hv1 = lab.hosts()["hv1"].openvswitch
        afxdp = afxdp_available(lab)
        build = {"ovs_vswitchd_version": run_in_namespace(None, ["ovs-vswitchd", "--version"]).stdout.splitlines()[0],
                 "iface_types": hv1.vsctl("get", "Open_vSwitch", ".", "iface_types").strip(),
                 "dpif_types": hv1.vsctl("get", "Open_vSwitch", ".", "datapath_types").strip(),
                 "afxdp": afxdp}
        as_built = f"as `lab up` builds it: guests' MTU {LAB_MTU}, tx off; underlay MTU {LAB_UNDERLAY_MTU}"
        results["sdnvirt_same_host"] = bench.measure(SAME_HOST, as_built)
        results["sdnvirt_across_segments"] = bench.measure(ACROSS, as_built)
        results.update(guarded("threads", lambda: variant_threads(bench, lab, cpus), failures))
        results.update(guarded("mtu", lambda: variant_mtu(bench, lab), failures))
        results.update(guarded("tso", lambda: variant_tso(bench, lab), failures))
        if afxdp:
            for kind in ("afxdp", "afxdp-nonpmd"):
                results.update(guarded(kind, lambda kind=kind: variant_afxdp(bench, lab, kind), failures))
        else:
            failures["afxdp"] = "this Open vSwitch lists no afxdp interface type"
    finally:
        if lab.paths.record.exists():
            lab.down()
    ratios(results, results["veth"]["tcp_gbit_s"])
    across = results["sdnvirt_across_segments"]
    best = max((k for k in results if k.endswith("across_segments")),
               key=lambda k: results[k].get("tcp_gbit_s") or 0.0)
    return {
        "benchmark": "throughput",
        "cpus": cpus,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "tcp_seconds": args.seconds,
        "tcp_runs": args.runs,
        "udp_offered": args.udp_rate,
        "udp_length": UDP_LENGTH,
        "lab_up_s": round(lab_up_s, 1),
        "open_vswitch": build,
        "vm": "not measured: lab VMs run under TCG here, their figure would be QEMU's emulation, not the fabric's",
        "targets": {"across_segments_ratio_to_veth": across["ratio_to_veth"], "goal": 0.5,
                    "best_across_segments": best, "best_ratio_to_veth": results[best]["ratio_to_veth"]},
        "scenarios": results,
        "failed": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of each iperf3 test")
    parser.add_argument("--runs", type=int, default=3, help="TCP tests per scenario (the median is reported)")
    parser.add_argument("--udp-rate", default="1G", help="UDP offered rate (iperf3 -b)")
    args = parser.parse_args()
    if LAB in running_labs():
        print(f"lab {LAB} is up already; `sdnvirt lab down {LAB}` first", file=sys.stderr)
        return 2
    left = [ns for ns in BASELINE if netns.exists(ns)]
    if left:
        print(f"namespaces {', '.join(left)} exist (an earlier run's?); `ip netns del NAME` first", file=sys.stderr)
        return 2

    owner = os.getpid()

    def interrupted(signum: int, frame: object) -> None:
        if os.getpid() != owner:  # a helper pyroute2 forked, ended by it: it must not clean up our lab
            os._exit(128 + signum)
        raise Interrupted()

    signal.signal(signal.SIGTERM, interrupted)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            figures = run(args, Path(tmp))
        except LabError as error:
            print(f"throughput: {error}", file=sys.stderr)
            return 1
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
