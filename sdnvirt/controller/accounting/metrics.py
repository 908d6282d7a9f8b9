"""The accounts in Prometheus's exposition format, through prometheus_client.

One series per port (or VM) and host where it counted: a series only ever
grows, and a VM's series on its old host stays where it ended when it moves.
`sum without (host)` gives the VM's figure wherever it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric

PORT_LABELS = ["tenant", "network", "vm", "nic", "host"]
VM_LABELS = ["tenant", "vm", "host"]
PORT_METRICS = {  # metric (without _total) -> (counter, help)
    "sdnvirt_port_received_packets": ("received_packets", "Packets the fabric delivered to the logical port."),
    "sdnvirt_port_received_bytes": ("received_bytes", "Bytes the fabric delivered to the logical port."),
    "sdnvirt_port_sent_packets": ("sent_packets", "Packets the guest sent from the logical port."),
    "sdnvirt_port_sent_bytes": ("sent_bytes", "Bytes the guest sent from the logical port."),
}
DROPS = {"port_security": "dropped_port_security", "delivery": "dropped_delivery"}  # reason -> counter
VM_METRICS = {  # metric -> (counter, help, unit of the counter in the metric's)
    "sdnvirt_vm_cpu_seconds": ("cpu_time_ns", "CPU time of the VM's QEMU (libvirt).", 1e9),
    "sdnvirt_vm_disk_read_requests": ("disk_read_requests", "Disk read requests (libvirt).", 1),
    "sdnvirt_vm_disk_read_bytes": ("disk_read_bytes", "Bytes read from disk (libvirt).", 1),
    "sdnvirt_vm_disk_write_requests": ("disk_write_requests", "Disk write requests (libvirt).", 1),
    "sdnvirt_vm_disk_write_bytes": ("disk_write_bytes", "Bytes written to disk (libvirt).", 1),
}


class AccountsCollector:
    """Reads the counters report at every scrape."""

    def __init__(self, report: Callable[[], dict]):
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report()
        ports, vms = report["ports"], report["vms"]
        for metric, (counter, text) in PORT_METRICS.items():
            family = CounterMetricFamily(metric, text, labels=PORT_LABELS)
            for entry in ports.values():
                for host, counts in entry["by_host"].items():
                    family.add_metric(_port_labels(entry, host), counts[counter])
            yield family
        drops = CounterMetricFamily("sdnvirt_port_dropped_packets", "Packets from or to the port that were dropped, "
                                    "by reason.", labels=[*PORT_LABELS, "reason"])
        for entry in ports.values():
            for host, counts in entry["by_host"].items():
                for reason, counter in DROPS.items():
                    drops.add_metric([*_port_labels(entry, host), reason], counts[counter])
        yield drops
        for metric, (counter, text, unit) in VM_METRICS.items():
            family = CounterMetricFamily(metric, text, labels=VM_LABELS)
            for name, entry in vms.items():
                for host, counts in entry["by_host"].items():
                    family.add_metric([entry["tenant"] or "", name, host], counts[counter] / unit)
            yield family
        memory = GaugeMetricFamily("sdnvirt_vm_memory_bytes", "The VM's current memory (libvirt's balloon).",
                                   labels=VM_LABELS)
        for name, entry in vms.items():
            if entry["memory_bytes"] is not None:
                memory.add_metric([entry["tenant"] or "", name, entry["host"]], entry["memory_bytes"])
        yield memory


def _port_labels(entry: dict, host: str) -> list[str]:
    return [entry["tenant"], entry["network"], entry["vm"], entry["nic"], host]


def exposition(report: Callable[[], dict]) -> tuple[bytes, str]:
    """The metrics page and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AccountsCollector(report))
    return generate_latest(registry), CONTENT_TYPE_LATEST
