"""The read model: what the controller and the fabric look like now, for people and tools.

Status per host (its OVSDB, OpenFlow and libvirt connections, whether its bridge
is in sync, what its reconciler sent), a bridge's flows as the switch holds them
with their owners, what port security dropped, and the accounts of every port,
VM, tenant and host. Nothing here changes anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sdnvirt.compute.hypervisor import Hypervisor
from sdnvirt.controller.accounting.accountant import Accountant
from sdnvirt.controller.accounting.report import counters_report
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.cookies import owner_names
from sdnvirt.controller.fabric.flow_text import instructions_text, match_text, table_name
from sdnvirt.controller.fabric.openflow import read_flow
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.hosts import Hosts
from sdnvirt.controller.migration.switchover import SwitchOver
from sdnvirt.controller.state import StateStore
from sdnvirt.errors import NotFound, Unavailable
from sdnvirt.model.topology import Topology
from sdnvirt.vswitch.ports import HostPorts


class FabricStatus:
    def __init__(self, topology: Callable[[], Topology], store: StateStore, fabric: Fabric, hosts: Hosts,
                 hypervisors: dict[str, Hypervisor], switch_over: SwitchOver, pipeline: Pipeline,
                 northbound_writes: Callable[[], dict], accountant: Accountant):
        self._topology = topology
        self._store = store
        self._fabric = fabric
        self._hosts = hosts
        self._hypervisors = hypervisors
        self._switch_over = switch_over
        self._pipeline = pipeline
        self._northbound_writes = northbound_writes
        self._accountant = accountant
        self.started_at = time.time()

    def status(self) -> dict:
        hosts = {}
        view = self._store.view()
        for host, sync in self._fabric.syncs.items():
            ports = view.ports.get(host, HostPorts(host))
            hypervisor = self._hypervisors.get(host)
            hosts[host] = {
                **self._hosts.status(host),
                "libvirt_connected": None if hypervisor is None else hypervisor.connected,
                "openflow_connected": sync.channel is not None,
                "in_sync": sync.in_sync,
                "sync_state": sync.state,
                "sync_error": sync.error,
                "bindings": len(ports.bindings),
                "tunnels": len(ports.tunnels),
                "syncs": sync.stats.syncs,
                "flow_mods_sent": sync.stats.flow_mods,
                "last_sync_flow_mods": sync.stats.last_flow_mods,
                "last_sync_ms": round(sync.stats.last_duration_ms, 3),
                "converge_ms": None if sync.stats.converge_ms is None else round(sync.stats.converge_ms, 3),
                "converged_at": sync.stats.converged_at,
                "sync_failures": sync.stats.failures,
            }
        return {
            "topology": self._topology().name,
            "ready": self._fabric.is_ready(),
            "converged": all(h["openflow_connected"] and h["in_sync"] for h in hosts.values()),
            "uptime_s": round(time.time() - self.started_at, 1),
            "unknown_switches": self._fabric.unknown_switches,
            "wrong_certificate_switches": self._fabric.wrong_certificate_switches,
            "switch_overs": self._switch_over.counters.snapshot(),
            "northbound_writes": self._northbound_writes(),
            "hosts": hosts,
        }

    def flows(self, host: str) -> list[dict]:
        """The host's flows as the switch holds them now, with counters and owners."""
        sync = self._fabric.syncs.get(host)
        if sync is None:
            raise NotFound(f"no host {host!r}", "host")
        channel = sync.channel
        if channel is None:
            raise Unavailable(f"host {host}'s bridge is not connected", "host")
        owners = owner_names(self._topology())
        entries = []
        for stats in sorted(channel.flow_stats(), key=lambda s: (s.table_id, -s.priority)):
            rule = read_flow(stats)
            entries.append({
                "table": table_name(self._pipeline, rule.table),
                "table_id": rule.table,
                "priority": rule.priority,
                "cookie": f"{rule.cookie:#018x}",
                "owner": owners.get(rule.cookie, "unknown"),
                "match": match_text(rule),
                "actions": instructions_text(rule, self._pipeline),
                "packets": stats.packet_count,
                "bytes": stats.byte_count,
            })
        return entries

    def accounts(self) -> dict:
        """Every port's, VM's, tenant's and host's counters (accounting/report.py), as last read."""
        accounts = self._accountant.accounts()
        return {"at": accounts.at, "interval_s": self._accountant.interval,
                **counters_report(self._topology(), self._store.view().active, accounts.ports, accounts.vms,
                                  accounts.memory)}

    def port_security_drops(self) -> dict[str, dict[str, int]]:
        """Per host, per guest NIC: packets dropped for sending from a foreign MAC or IP."""
        violation = self._pipeline.table("port_security").priority("violation")
        drops: dict[str, dict[str, int]] = {}
        for host, sync in self._fabric.syncs.items():
            if sync.channel is None:
                continue
            drops[host] = {entry["owner"].removeprefix("port "): entry["packets"] for entry in self.flows(host)
                           if entry["table"] == "port_security" and entry["priority"] == violation}
        return drops
