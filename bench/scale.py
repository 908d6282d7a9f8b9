"""What the controller's desired state costs as the fabric grows: pure, no switch, no lab.

A fabric of H hosts with G guests each (one NIC; a tenant network per 10 guests, spread over 10
neighbouring hosts, so a network spans hosts as a tenant's would, not the whole fabric). At each
size, in a process of its own (its peak memory is its own):
  load        the topology file parsed, checked and resolved (load_topology_text)
  compile     every bridge's flows from the desired state (compile_host on every host)
  add/remove  one VM added to the topology and its port bound (unbound, and the VM removed):
              the store's new views and the owners they touched recompiled and compared on the
              bridges they reach, as the fabric does it
  peak_mib    the process's peak memory beyond what it held before the fabric was built
  move        a VM's switch-over: its port bound on a second host, activated there, and the
              owners that changed recompiled and compared on the bridges that carry them; ten
              VMs in turn, the median and the slowest (the first changes of a fabric this size
              meet fresh memory, the later ones do not)
The baseline of each figure is the smallest size's, scaled linearly to this size (the cost of a
fabric that grows as it should); the ratio says how much worse than linear it grows. Prints one
JSON object.

    .venv/bin/python bench/scale.py [--sizes 10,100,1000] [--guests-per-host 20] [--top 1000x100]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from statistics import median

from ruamel.yaml import YAML

from sdnvirt.controller.collector import tune_collector
from sdnvirt.controller.fabric.compiler import compile_host, compile_owner
from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.fabric.pipeline import Pipeline, load_pipeline
from sdnvirt.controller.fabric.sync import owners_diff, take_in, whole_diff
from sdnvirt.controller.state import FabricView, MemoryStore, OwnerKey, ViewChange
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.topology import Guest, Topology
from sdnvirt.vswitch.ports import Binding, HostPorts, TunnelPort

GUESTS_PER_NETWORK = 10
MOVES = 10  # VMs moved in turn at each size
HOSTS_PER_SEGMENT = 50
POINT_TIMEOUT = 3600.0  # seconds one size may take


def topology_text(hosts: int, guests_per_host: int, extra_guest: bool = False) -> str:
    """The fabric as a topology file."""
    guests = hosts * guests_per_host
    networks = -(-guests // GUESTS_PER_NETWORK)
    data = {
        "name": "scale",
        "segments": {f"rack{s}": {"subnet": f"100.{64 + s // 256}.{s % 256}.0/24"}
                     for s in range(-(-hosts // HOSTS_PER_SEGMENT))},
        "hosts": {f"hv{h}": {"segment": f"rack{h // HOSTS_PER_SEGMENT}"} for h in range(hosts)},
        "tenants": {f"t{t}": {"networks": {f"n{n}": {"subnet": f"10.{n // 256}.{n % 256}.0/24"}
                                           for n in range(t * 100, min(networks, (t + 1) * 100))}}
                    for t in range(-(-networks // 100))},
        # guest g: network g // 10, on host (g // 10 + g % 10) % H: a network's ten guests on ten hosts
        "vms": {f"g{g}": {"host": f"hv{(g // GUESTS_PER_NETWORK + g % GUESTS_PER_NETWORK) % hosts}",
                          "nics": [{"network": _network_key(g // GUESTS_PER_NETWORK)}]}
                for g in range(guests)},
    }
    if extra_guest:  # one more guest, in the first network, on the first host
        data["vms"][f"g{guests}"] = {"host": "hv0", "nics": [{"network": _network_key(0)}]}
    out = io.StringIO()
    YAML().dump(data, out)
    return out.getvalue()


def _network_key(n: int) -> str:
    return f"t{n // 100}/n{n}"


def host_ports(topology: Topology) -> dict[str, HostPorts]:
    """Every guest bound where the topology puts it; a tunnel between every two hosts that share
    a network (what a bridge needs, not a full mesh)."""
    bindings: dict[str, list[Binding]] = {h: [] for h in topology.hosts}
    networks: dict[str, set[str]] = {}
    for guest in topology.guests.values():
        for nic in guest.nics:
            bindings[guest.host].append(Binding(nic.port_id, guest.host, f"tap{len(bindings[guest.host])}",
                                                len(bindings[guest.host]) + 100, str(nic.mac), guest.name))
            networks.setdefault(nic.network, set()).add(guest.host)
    peers: dict[str, set[str]] = {h: set() for h in topology.hosts}
    for hosts in networks.values():
        for host in hosts:
            peers[host] |= hosts - {host}
    ofport = {h: i + 1 for i, h in enumerate(sorted(topology.hosts))}
    return {h: HostPorts(h, tuple(bindings[h]), tuple(TunnelPort(h, r, f"vx-{r}", ofport[r]) for r in sorted(peers[h])))
            for h in topology.hosts}


def point(hosts: int, guests_per_host: int) -> dict:
    """One size, measured in this process, its garbage collected as the controller's is."""
    tune_collector()
    pipeline = load_pipeline()
    base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # the interpreter and its libraries
    text = topology_text(hosts, guests_per_host)
    began = time.perf_counter()
    topology = load_topology_text(text, "scale.yaml")
    load_s = time.perf_counter() - began

    store = MemoryStore(topology)
    for ports in host_ports(topology).values():
        store.set_host_ports(ports)
    began = time.perf_counter()
    view = store.view()
    compiled = {h: compile_host(view, h, pipeline) for h in topology.hosts}
    compile_s = time.perf_counter() - began
    flows = sum(len(f) for owners in compiled.values() for f in owners.values())
    bridges = {h: Bridge(desired) for h, desired in compiled.items()}

    # VMs move: each bound on a second host (the prepared destination), then activated there
    moves = [_move(store, bridges, pipeline, topology.guests[f"g{g}"])
             for g in range(0, len(topology.guests), -(-len(topology.guests) // MOVES))]
    move_mods = moves[0][1]
    move_ms = sorted(ms for ms, _ in moves)

    # one VM added (a new desired topology, then its port bound where it starts), then removed
    bigger = load_topology_text(topology_text(hosts, guests_per_host, extra_guest=True), "scale.yaml")
    added = bigger.guests[f"g{len(topology.guests)}"]
    home = store.view().ports[added.host]
    with_added = HostPorts(added.host, (*home.bindings, Binding(added.nics[0].port_id, added.host, "tap-added", 9998,
                                                                 str(added.nics[0].mac), added.name)), home.tunnels)
    began = time.perf_counter()
    add_mods = (_recompile_changed(store.set_topology(bigger), bridges, pipeline)
                + _recompile_changed(store.set_host_ports(with_added), bridges, pipeline))
    add_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    remove_mods = (_recompile_changed(store.set_host_ports(home), bridges, pipeline)
                   + _recompile_changed(store.set_topology(topology), bridges, pipeline))
    remove_ms = (time.perf_counter() - began) * 1000

    return {"hosts": hosts, "guests": len(topology.guests), "flows": flows,
            "load_s": round(load_s, 3), "compile_s": round(compile_s, 3),
            "flows_per_s": round(flows / compile_s),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - base_mib,
            "move_ms": round(median(move_ms), 2), "move_max_ms": round(move_ms[-1], 2), "move_flow_mods": move_mods,
            "add_ms": round(add_ms, 2), "add_flow_mods": add_mods,
            "remove_ms": round(remove_ms, 2), "remove_flow_mods": remove_mods}


def _move(store: MemoryStore, bridges: dict[str, Bridge], pipeline: Pipeline, guest: Guest) -> tuple[float, int]:
    """One VM's switch-over to the next host, once prepared there: its time (ms) and flow-mods."""
    port = guest.nics[0].port_id
    hosts = sorted(store.view().topology.hosts)
    destination = hosts[(hosts.index(guest.host) + 1) % len(hosts)]
    ports = store.view().ports[destination]
    prepared = HostPorts(destination, (*ports.bindings, Binding(port, destination, "tap-moving", 9999,
                                                                str(guest.nics[0].mac), guest.name)), ports.tunnels)
    _recompile_changed(store.set_host_ports(prepared), bridges, pipeline)
    began = time.perf_counter()
    mods = _recompile_changed(store.activate([port], destination), bridges, pipeline)
    return (time.perf_counter() - began) * 1000, mods


class Bridge:
    """One bridge's bookkeeping as the fabric's reconciler keeps it (what each owner wants, what the
    switch holds, both updated in place), without the switch."""

    def __init__(self, desired: dict[OwnerKey, frozenset[Flow]]):
        self.desired = desired
        self.installed = {f.key: f for flows in desired.values() for f in flows}

    def follow(self, view: FabricView, host: str, pipeline: Pipeline, owners: frozenset[OwnerKey] | None) -> int:
        """The changed owners (all of them when the change does not say) compiled again and compared
        with what the bridge holds; the flow-mods that would be sent."""
        if owners is None:
            self.desired = compile_host(view, host, pipeline)
            diff = whole_diff(self.installed, self.desired)
        else:
            changed = {owner: compile_owner(view, host, pipeline, owner) for owner in owners}
            diff = owners_diff(self.installed, self.desired, changed)
            self.desired = {**self.desired, **changed}
        take_in(self.installed, diff)
        return len(diff)


def _recompile_changed(change: ViewChange, bridges: dict[str, Bridge], pipeline: Pipeline) -> int:
    """What the fabric does with a change: every bridge it reaches follows it."""
    return sum(bridge.follow(change.view, host, pipeline, change.owners)
               for host, bridge in bridges.items() if change.reaches(host))


def measured(hosts: int, guests_per_host: int) -> dict:
    """One size in a process of its own."""
    done = subprocess.run([sys.executable, __file__, "--point", f"{hosts}x{guests_per_host}"],
                          capture_output=True, text=True, timeout=POINT_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{hosts}x{guests_per_host}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def with_baselines(points: list[dict]) -> list[dict]:
    """Each figure beside the smallest size's, scaled linearly (by guests) to this size."""
    first = points[0]
    result = []
    for p in points:
        scale = p["guests"] / first["guests"]
        figures = {}
        for key in ("load_s", "compile_s", "peak_mib", "move_ms", "move_max_ms", "add_ms", "remove_ms"):
            baseline = first[key] * scale
            figures[key] = {"figure": p[key], "baseline": round(baseline, 3),
                            "ratio": round(p[key] / baseline, 2) if baseline else None}
        result.append({**{k: p[k] for k in ("hosts", "guests", "flows", "flows_per_s", "move_flow_mods",
                                             "add_flow_mods", "remove_flow_mods")}, **figures})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="host counts of the cost curve")
    parser.add_argument("--guests-per-host", type=int, default=20)
    parser.add_argument("--top", default="1000x100", help="HOSTSxGUESTS_PER_HOST of the top point ('' for none)")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    if args.point:
        hosts, per_host = (int(n) for n in args.point.split("x"))
        print(json.dumps(point(hosts, per_host)))
        return 0
    sizes = [(int(h), args.guests_per_host) for h in args.sizes.split(",")]
    if args.top:
        sizes.append(tuple(int(n) for n in args.top.split("x")))
    print(json.dumps({"guests_per_network": GUESTS_PER_NETWORK,
                      "points": with_baselines([measured(h, g) for h, g in sizes])}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
