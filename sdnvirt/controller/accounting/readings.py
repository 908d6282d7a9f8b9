"""What a host counts now, turned into the ledger's readings.

A guest's port on the bridge counts what the guest sent (the port's rx) and
what the fabric delivered to it (the port's tx), and what could not be handed
to its tap; port security's violation flow of the port counts what it dropped;
libvirt counts a domain's CPU time and disk requests. The names are the
guest's view: `sent` is what the guest sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from sdnvirt.controller.accounting.ledger import Reading
from sdnvirt.vswitch.ports import Binding

PORT_COUNTERS = ("received_packets", "received_bytes", "sent_packets", "sent_bytes", "dropped_port_security",
                 "dropped_delivery")
DOMAIN_COUNTERS = ("cpu_time_ns", "disk_read_requests", "disk_read_bytes", "disk_write_requests", "disk_write_bytes")
UNAVAILABLE = 2**64 - 1  # OpenFlow's word for a counter the switch cannot read (its device is gone)


def port_readings(stats: Iterable, bindings: Iterable[Binding]) -> list[Reading]:
    """Port stats of a bridge, for the ports that bind logical ports. A port whose device is gone
    (a tap that libvirt removed before OVS forgot it) reads as unavailable: it has ended."""
    bound = {b.ofport: b for b in bindings}
    return [Reading(binding.port_id, f"{binding.interface}@{entry.port_no}",
                    {"sent_packets": entry.rx_packets, "sent_bytes": entry.rx_bytes,
                     "received_packets": entry.tx_packets, "received_bytes": entry.tx_bytes,
                     "dropped_delivery": entry.tx_dropped},
                    _age(entry))
            for entry in stats
            if (binding := bound.get(entry.port_no)) is not None and UNAVAILABLE not in
            (entry.rx_packets, entry.rx_bytes, entry.tx_packets, entry.tx_bytes, entry.tx_dropped)]


def drop_readings(stats: Iterable, violation: int, port_of_cookie: dict[int, str]) -> list[Reading]:
    """Flow stats of the port security table: each port's violation flow counts its drops."""
    return [Reading(port, f"in_port={entry.match.get('in_port')}", {"dropped_port_security": entry.packet_count},
                    _age(entry))
            for entry in stats
            if entry.priority == violation and (port := port_of_cookie.get(entry.cookie)) is not None]


def domain_readings(domains: Iterable[tuple[str, int, dict]]) -> tuple[list[Reading], dict[str, int]]:
    """libvirt's statistics of a host's running domains: readings, and each domain's memory in bytes."""
    readings, memory = [], {}
    for name, domain_id, stats in domains:
        blocks = range(stats.get("block.count", 0))
        readings.append(Reading(name, f"domain {domain_id}", {
            "cpu_time_ns": stats.get("cpu.time", 0),
            **{counter: sum(stats.get(f"block.{i}.{field}", 0) for i in blocks)
               for counter, field in (("disk_read_requests", "rd.reqs"), ("disk_read_bytes", "rd.bytes"),
                                      ("disk_write_requests", "wr.reqs"), ("disk_write_bytes", "wr.bytes"))}}))
        memory[name] = stats.get("balloon.current", 0) * 1024  # KiB
    return readings, memory


def _age(entry) -> float:
    """How long an OpenFlow port or flow has existed (its duration), in seconds."""
    return entry.duration_sec + entry.duration_nsec / 1e9
