"""The accounts as people and tools read them: per logical port, per VM, per tenant, per host.

A port's figures are its account's; a VM's add its ports' to what libvirt counted
of its domains; a tenant's and a host's are the sums of their VMs'. Every figure
is also split by the host where it was counted (`by_host`): each of those only
ever grows, which is what a Prometheus counter must do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from sdnvirt.controller.accounting.ledger import Account, Counts
from sdnvirt.controller.accounting.readings import DOMAIN_COUNTERS, PORT_COUNTERS
from sdnvirt.model.topology import Topology

VM_COUNTERS = PORT_COUNTERS + DOMAIN_COUNTERS


def counters_report(topology: Topology, active: Mapping[str, str], ports: dict[str, Account], vms: dict[str, Account],
                    memory: dict[str, dict[str, int]]) -> dict:
    """`active`: where each port is active now; `memory`: each VM's memory per host, as last read."""
    port_entries, vm_entries = {}, {}
    tenants: dict[str, Counter] = {}
    hosts: dict[str, dict] = {}
    for guest in topology.guests.values():
        vm_by_host: dict[str, Counter] = {h: Counter(c) for h, c in vms.get(guest.name, Account()).by_host().items()}
        tenant = None
        for nic in guest.nics:
            network = topology.networks[nic.network]
            tenant = tenant or network.tenant
            by_host = ports.get(nic.port_id, Account()).by_host()
            for host, counts in by_host.items():
                vm_by_host.setdefault(host, Counter()).update(counts)
            port_entries[f"{guest.name}/{nic.interface}"] = {
                "vm": guest.name, "nic": nic.interface, "tenant": network.tenant, "network": network.name,
                "port_id": nic.port_id, "host": active.get(nic.port_id),
                "counters": _whole(_sum(by_host.values()), PORT_COUNTERS),
                "by_host": {host: _whole(counts, PORT_COUNTERS) for host, counts in sorted(by_host.items())}}
        host = next((active[n.port_id] for n in guest.nics if n.port_id in active), guest.host)
        total = _whole(_sum(vm_by_host.values()), VM_COUNTERS)
        vm_entries[guest.name] = {
            "tenant": tenant, "host": host, "memory_bytes": memory.get(guest.name, {}).get(host),
            "counters": total,
            "by_host": {h: _whole(counts, VM_COUNTERS) for h, counts in sorted(vm_by_host.items())}}
        tenants.setdefault(tenant, Counter()).update(total)
        for h, counts in vm_by_host.items():
            hosts.setdefault(h, {"memory_bytes": 0, "counters": Counter()})["counters"].update(counts)
    for vm, sizes in memory.items():
        for h, size in sizes.items():
            if vm in topology.guests:
                hosts.setdefault(h, {"memory_bytes": 0, "counters": Counter()})["memory_bytes"] += size
    return {
        "ports": port_entries,
        "vms": vm_entries,
        "tenants": {t: {"counters": _whole(c, VM_COUNTERS)} for t, c in sorted(tenants.items()) if t is not None},
        "hosts": {h: {"memory_bytes": e["memory_bytes"], "counters": _whole(e["counters"], VM_COUNTERS)}
                  for h, e in sorted(hosts.items())},
    }


def _sum(many) -> Counts:
    total: Counter = Counter()
    for counts in many:
        total.update(counts)
    return dict(total)


def _whole(counts: Counts, names: tuple[str, ...]) -> Counts:
    """Every counter named, zero where nothing was counted."""
    return {name: int(counts.get(name, 0)) for name in names}
