"""The model as rows of the northbound database, and back.

Names are the keys (a guest's logical ports by their ids), so loading an
edited topology can compare rows one by one and change only what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netaddr import EUI, IPAddress, IPNetwork, mac_unix_expanded

from sdnvirt.model.topology import Guest, GuestKind, Host, Network, Nic, Segment, Topology

Row = dict[str, Any]

# table -> the columns that name a row
KEYS = {
    "Segment": ("name",),
    "Host": ("name",),
    "Network": ("tenant", "name"),
    "Guest": ("name",),
    "Logical_Port": ("id",),
}


def topology_rows(topology: Topology) -> dict[str, list[Row]]:
    """Every row the topology is, table by table (in KEYS' order, which is the order to write)."""
    return {
        "Segment": [{"name": s.name, "subnet": str(s.subnet), "gateway": str(s.gateway)}
                    for s in topology.segments.values()],
        "Host": [{"name": h.name, "segment": h.segment, "address": str(h.address)} for h in topology.hosts.values()],
        "Network": [{"tenant": n.tenant, "name": n.name, "subnet": str(n.subnet), "vni": n.vni}
                    for n in topology.networks.values()],
        "Guest": [{"name": g.name, "host": g.host, "kind": g.kind.value, "memory": g.memory, "vcpus": g.vcpus,
                   "autostart": g.autostart} for g in topology.guests.values()],
        "Logical_Port": [{"id": nic.port_id, "guest": g.name, "index": nic.index, "network": nic.network,
                          "mac": str(nic.mac), "ip": str(nic.ip)} for g in topology.guests.values() for nic in g.nics],
    }


def row_key(table: str, row: Mapping[str, Any]) -> tuple:
    return tuple(row[column] for column in KEYS[table])


def topology_from_rows(name: str, rows: Mapping[str, list[Row]]) -> Topology:
    """The model the rows describe (they were written by topology_rows, so they are valid)."""
    nics: dict[str, list[Nic]] = {}
    for port in rows["Logical_Port"]:
        nics.setdefault(port["guest"], []).append(
            Nic(port["index"], port["network"], IPAddress(port["ip"]), EUI(port["mac"], dialect=mac_unix_expanded),
                port["id"]))
    return Topology(
        name=name,
        source=None,
        segments={r["name"]: Segment(r["name"], IPNetwork(r["subnet"]), IPAddress(r["gateway"]))
                  for r in rows["Segment"]},
        hosts={r["name"]: Host(r["name"], r["segment"], IPAddress(r["address"])) for r in rows["Host"]},
        networks={f"{r['tenant']}/{r['name']}": Network(r["tenant"], r["name"], IPNetwork(r["subnet"]), r["vni"])
                  for r in rows["Network"]},
        guests={r["name"]: Guest(r["name"], r["host"], GuestKind(r["kind"]), r["memory"], r["vcpus"],
                                 tuple(sorted(nics.get(r["name"], []), key=lambda n: n.index)), r["autostart"])
                for r in rows["Guest"]},
    )
