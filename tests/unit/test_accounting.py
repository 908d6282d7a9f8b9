"""The accounts: a port's and a VM's counters go on across migrations, restarts of the controller
and of the guest, are never counted twice, and reach /counters and /metrics with the same figures.
The switch and libvirt are fakes here, so that every way a reading can go wrong is reached."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sdnvirt.compute.hypervisor import HypervisorError
from sdnvirt.controller.accounting.accountant import Accountant
from sdnvirt.controller.accounting.ledger import ENDED_KEPT, Account, Ledger, Reading
from sdnvirt.controller.accounting.metrics import exposition
from sdnvirt.controller.accounting.readings import UNAVAILABLE, domain_readings, port_readings
from sdnvirt.controller.accounting.report import counters_report
from sdnvirt.controller.fabric.channel import SwitchError
from sdnvirt.controller.fabric.cookies import owner_cookie
from sdnvirt.vswitch.ports import Binding, HostPorts

from helpers.fabric_views import PIPELINE, TOPOLOGY, port_id
from helpers.guests import wait_until

A1 = port_id("a1")


def reading(count: int, age: float | None = 10.0, identity: str = "vnet0@3", account: str = A1) -> Reading:
    return Reading(account, identity, {"received_packets": count, "received_bytes": 100 * count}, age)


# -- the ledger ----------------------------------------------------------------------------------

def test_a_port_that_moves_keeps_what_it_counted_on_each_host():
    ledger = Ledger()
    ledger.observe("hv1", "port", [reading(40)])
    ledger.observe("hv2", "port", [reading(3, 0.5, "vnet7@5")])  # the destination's tap, before the pause
    ledger.observe("hv1", "port", [reading(50, 11.0)])
    ledger.observe("hv1", "port", [])  # the source's tap is gone
    ledger.observe("hv2", "port", [reading(20, 2.0, "vnet7@5")])
    account = ledger.accounts[A1]
    assert account.by_host() == {"hv1": {"received_packets": 50, "received_bytes": 5000},
                                 "hv2": {"received_packets": 20, "received_bytes": 2000}}
    assert account.total() == {"received_packets": 70, "received_bytes": 7000}


def test_a_source_younger_than_before_is_a_new_incarnation():
    """The same port name and number on the same host, recreated between two readings (a guest
    restarted there): what the old one counted is kept, the new one counts from zero."""
    ledger = Ledger()
    ledger.observe("hv1", "port", [reading(40, 10.0)])
    changed = ledger.observe("hv1", "port", [reading(45, 0.2)])
    assert changed == {A1}
    assert ledger.accounts[A1].total()["received_packets"] == 85


def test_figures_that_went_back_are_a_new_incarnation_even_without_an_age():
    ledger = Ledger()
    ledger.observe("hv1", "domain", [reading(40, None, "domain 3")])
    ledger.observe("hv1", "domain", [reading(5, None, "domain 3")])
    assert ledger.accounts[A1].total()["received_packets"] == 45


def test_a_source_missing_from_one_reading_is_not_counted_twice_when_it_comes_back():
    ledger = Ledger()
    ledger.observe("hv1", "port", [reading(40, 10.0)])
    assert ledger.observe("hv1", "port", []) == {A1}  # its binding was not known for a moment
    ledger.observe("hv1", "port", [reading(42, 11.0)])
    assert ledger.accounts[A1].total()["received_packets"] == 42
    assert ledger.accounts[A1].folded == {"hv1": {"received_packets": 0, "received_bytes": 0}}


def test_an_account_remembers_a_bounded_number_of_ended_incarnations():
    ledger = Ledger()
    for n in range(ENDED_KEPT + 5):
        ledger.observe("hv1", "port", [reading(1, 1.0, f"vnet{n}@{n}")])
    assert len(ledger.accounts[A1].ended) == ENDED_KEPT
    assert ledger.accounts[A1].total()["received_packets"] == ENDED_KEPT + 5


def test_unchanged_readings_change_no_account():
    ledger = Ledger()
    assert ledger.observe("hv1", "port", [reading(40)]) == {A1}
    assert ledger.observe("hv1", "port", [reading(41, 11.0)]) == set()


def test_an_account_survives_its_json():
    ledger = Ledger()
    ledger.observe("hv1", "port", [reading(40)])
    ledger.observe("hv1", "port", [])
    ledger.observe("hv2", "port", [reading(7, 1.0, "vnet7@5")])
    data = json.loads(json.dumps(ledger.accounts[A1].to_json()))
    again = Ledger({A1: Account.from_json(data)})
    assert again.accounts[A1].to_json() == ledger.accounts[A1].to_json()
    again.observe("hv2", "port", [])  # a restarted controller folds what ended meanwhile
    assert again.accounts[A1].by_host() == {"hv1": {"received_packets": 40, "received_bytes": 4000},
                                            "hv2": {"received_packets": 7, "received_bytes": 700}}


# -- what a switch and libvirt say ----------------------------------------------------------------

def port_stats(port_no: int, rx: int, tx: int, age: float = 5.0, dropped: int = 0) -> SimpleNamespace:
    return SimpleNamespace(port_no=port_no, rx_packets=rx, rx_bytes=rx * 100, tx_packets=tx, tx_bytes=tx * 100,
                           tx_dropped=dropped, duration_sec=int(age), duration_nsec=int(age % 1 * 1e9))


def binding(guest: str, ofport: int, host: str = "hv1") -> Binding:
    return Binding(port_id(guest), host, f"vnet{ofport}", ofport, "", "")


def test_a_port_counts_in_the_guests_words_and_unbound_ports_are_left_out():
    readings = port_readings([port_stats(3, rx=7, tx=9, dropped=2), port_stats(1, rx=100, tx=100)],
                             [binding("a1", 3)])
    assert readings == [Reading(A1, "vnet3@3", {"sent_packets": 7, "sent_bytes": 700, "received_packets": 9,
                                               "received_bytes": 900, "dropped_delivery": 2}, 5.0)]


def test_a_port_whose_device_is_gone_reads_as_ended():
    assert port_readings([port_stats(3, rx=UNAVAILABLE, tx=UNAVAILABLE)], [binding("a1", 3)]) == []


def test_libvirt_statistics_add_up_every_disk():
    stats = {"cpu.time": 5_000_000, "balloon.current": 131072, "block.count": 2, "block.0.rd.reqs": 3,
             "block.0.rd.bytes": 4096, "block.1.rd.reqs": 1, "block.1.rd.bytes": 512, "block.1.wr.bytes": 8}
    readings, memory = domain_readings([("a1", 7, stats)])
    assert readings == [Reading("a1", "domain 7", {"cpu_time_ns": 5_000_000, "disk_read_requests": 4,
                                                    "disk_read_bytes": 4608, "disk_write_requests": 0,
                                                    "disk_write_bytes": 8})]
    assert memory == {"a1": 128 * 2**20}


# -- the accountant, with a fake switch and libvirt -----------------------------------------------

class Channel:
    def __init__(self):
        self.ports: list = []
        self.drops: list = []
        self.error: Exception | None = None

    def port_stats(self, timeout):
        if self.error:
            raise self.error
        return self.ports

    def flow_stats(self, timeout, table):
        assert table == PIPELINE.table("port_security").id
        return self.drops


class Libvirt:
    def __init__(self):
        self.connected = True
        self.domains: list = []
        self.error: Exception | None = None

    def domain_stats(self):
        if self.error:
            raise self.error
        return self.domains


@pytest.fixture
def parts():
    channels = {h: Channel() for h in ("hv1", "hv2")}
    hypervisors = {h: Libvirt() for h in ("hv1", "hv2")}
    ports = {"hv1": HostPorts("hv1", (binding("a1", 3),)), "hv2": HostPorts("hv2", (binding("a1", 5, "hv2"),))}
    view = SimpleNamespace(ports=ports, active={A1: "hv1"})
    fabric = SimpleNamespace(syncs={h: SimpleNamespace(channel=c) for h, c in channels.items()})
    saved: dict[str, dict] = {}
    accountant = Accountant(fabric, lambda: view, hypervisors, PIPELINE, {}, saved.__setitem__)
    return SimpleNamespace(channels=channels, hypervisors=hypervisors, view=view, saved=saved, accountant=accountant)


def violation(packets: int, in_port: int = 3, age: float = 5.0) -> SimpleNamespace:
    return SimpleNamespace(priority=PIPELINE.table("port_security").priority("violation"), cookie=owner_cookie(
        ("port", A1)), match={"in_port": in_port}, packet_count=packets, duration_sec=int(age), duration_nsec=0)


def test_a_bridge_that_does_not_answer_ends_no_incarnation(parts):
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=10)]
    parts.accountant.read(["hv1"])
    parts.channels["hv1"].error = SwitchError("switch 0x1 did not answer a port stats request within 2s")
    parts.accountant.read(["hv1"])
    port_accounts = parts.accountant.accounts().ports
    assert port_accounts[A1].live and not port_accounts[A1].folded


def test_a_libvirtd_that_fails_keeps_the_vms_figures(parts):
    parts.hypervisors["hv1"].domains = [("a1", 4, {"cpu.time": 900})]
    parts.accountant.read(["hv1"])
    parts.hypervisors["hv1"].error = HypervisorError("host hv1: connection reset", "host")
    parts.accountant.read(["hv1"])
    parts.hypervisors["hv1"].connected = False
    parts.accountant.read(["hv1"])
    vm_accounts = parts.accountant.accounts().vms
    assert vm_accounts["a1"].total()["cpu_time_ns"] == 900 and vm_accounts["a1"].live


def test_a_host_whose_ports_are_not_known_yet_is_not_read(parts):
    """A restarted controller before the host's OVSDB told it which port is whose: reading then would
    end every incarnation there."""
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=10)]
    parts.accountant.read(["hv1"])
    del parts.view.ports["hv1"]
    parts.accountant.read(["hv1"])
    assert parts.accountant.accounts().ports[A1].live


def test_an_incarnation_that_begins_or_ends_is_written_and_a_restart_goes_on_from_it(parts):
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=20)]
    parts.channels["hv1"].drops = [violation(4)]
    parts.accountant.read(["hv1"])
    parts.channels["hv1"].ports, parts.channels["hv1"].drops = [port_stats(3, rx=30, tx=40, age=6)], [violation(6)]
    parts.accountant.read(["hv1"])
    assert parts.saved[f"port {A1}"]["live"][0]["counts"]["sent_packets"] == 10  # not written again yet
    parts.channels["hv1"].ports, parts.channels["hv1"].drops = [], []  # the VM left hv1
    parts.accountant.read(["hv1"])
    written = parts.saved[f"port {A1}"]
    assert written["folded"]["hv1"] == {"sent_packets": 30, "sent_bytes": 3000, "received_packets": 40,
                                        "received_bytes": 4000, "dropped_delivery": 0, "dropped_port_security": 6}
    restarted = Accountant(SimpleNamespace(syncs={}), lambda: parts.view, {}, PIPELINE, dict(parts.saved),
                           lambda *_: None)
    assert restarted.accounts().ports[A1].total() == written["folded"]["hv1"]


def test_stopping_writes_what_changed_since_it_was_written(parts):
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=20)]
    parts.accountant.read(["hv1"])
    parts.channels["hv1"].ports = [port_stats(3, rx=11, tx=25, age=6)]
    parts.accountant.read(["hv1"])
    parts.accountant.stop()
    assert parts.saved[f"port {A1}"]["live"][0]["counts"]["received_packets"] == 25


def test_a_reading_that_fails_unexpectedly_does_not_stop_the_accounting(parts):
    parts.channels["hv1"].error = RuntimeError("a bug in a reading")
    parts.channels["hv2"].ports = [port_stats(5, rx=1, tx=2)]
    parts.accountant.interval = 0.01
    parts.accountant.start()
    try:
        assert wait_until(lambda: parts.accountant.read_at is not None, timeout=5)
        parts.channels["hv1"].error, parts.channels["hv1"].ports = None, [port_stats(3, rx=10, tx=20)]
        assert wait_until(lambda: ("hv1", "port", "vnet3@3") in parts.accountant.accounts().ports[A1].live, timeout=5)
    finally:
        parts.accountant.stop()


def test_a_rounds_counters_and_its_time_are_seen_together_however_long_libvirt_takes(parts):
    """top divides what the counters grew by the time between two readings: a reading half taken
    (the bridges read, libvirt not yet) must not be seen, and its time is when the bridges were read."""
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=10)]
    parts.accountant.read(["hv1", "hv2"], whole_round=True)
    first = parts.accountant.accounts()
    parts.channels["hv1"].ports = [port_stats(3, rx=110, tx=110, age=11)]
    slow, inside = threading.Event(), threading.Event()
    parts.hypervisors["hv2"].domain_stats = lambda: (inside.set(), slow.wait(5), [])[-1]
    reading = threading.Thread(target=parts.accountant.read, args=(["hv1", "hv2"], True))
    reading.start()
    try:
        assert inside.wait(5)
        bridges_read_by = time.time()
        meanwhile = parts.accountant.accounts()
        assert meanwhile.at == first.at and meanwhile.ports[A1].total() == first.ports[A1].total()
    finally:
        slow.set()
        reading.join(5)
    second = parts.accountant.accounts()
    assert first.at < second.at <= bridges_read_by
    assert second.ports[A1].total()["received_packets"] == 110


def test_settle_reads_the_hosts_where_the_vm_counts_now(parts):
    parts.channels["hv1"].ports = [port_stats(3, rx=10, tx=20)]
    parts.accountant.read(["hv1"])
    parts.accountant.settle([A1], "a1")
    assert parts.accountant._asked == {"hv1"}


# -- what people and Prometheus see -------------------------------------------------------------

def moved_accounts() -> tuple[dict[str, Account], dict[str, Account]]:
    port = Ledger()
    port.observe("hv1", "port", [Reading(A1, "vnet3@3", {"received_packets": 40, "sent_packets": 30}, 9.0)])
    port.observe("hv1", "port", [])
    port.observe("hv2", "port", [Reading(A1, "vnet5@5", {"received_packets": 2, "sent_packets": 1}, 1.0)])
    vm = Ledger()
    vm.observe("hv1", "domain", [Reading("a1", "domain 3", {"cpu_time_ns": 3_000_000_000})])
    vm.observe("hv1", "domain", [])
    vm.observe("hv2", "domain", [Reading("a1", "domain 9", {"cpu_time_ns": 500_000_000})])
    return port.accounts, vm.accounts


def test_a_report_sums_ports_into_vms_tenants_and_hosts():
    ports, vms = moved_accounts()
    report = counters_report(TOPOLOGY, {A1: "hv2"}, ports, vms, {"a1": {"hv2": 2**27}})
    a1 = report["vms"]["a1"]
    assert (a1["host"], a1["tenant"], a1["memory_bytes"]) == ("hv2", "blue", 2**27)
    assert a1["counters"]["received_packets"] == 42 and a1["counters"]["cpu_time_ns"] == 3_500_000_000
    assert report["ports"]["a1/eth0"]["by_host"]["hv1"]["received_packets"] == 40
    assert report["tenants"]["blue"]["counters"]["sent_packets"] == 31
    assert report["tenants"]["red"]["counters"]["sent_packets"] == 0
    assert report["hosts"]["hv1"]["counters"]["received_packets"] == 40
    assert report["hosts"]["hv2"] == {"memory_bytes": 2**27, "counters": {**a1["counters"], "received_packets": 2,
                                                                         "sent_packets": 1,
                                                                         "cpu_time_ns": 500_000_000}}


def test_metrics_give_one_series_per_host_that_adds_up_to_the_report():
    ports, vms = moved_accounts()
    report = {"at": 1.0, "interval_s": 1.0, **counters_report(TOPOLOGY, {A1: "hv2"}, ports, vms, {"a1": {"hv2": 7}})}
    page, content_type = exposition(lambda: report)
    assert content_type.startswith("text/plain")
    samples = [s for family in text_string_to_metric_families(page.decode()) for s in family.samples]
    received = {s.labels["host"]: s.value for s in samples if s.name == "sdnvirt_port_received_packets_total"
                and s.labels["vm"] == "a1"}
    assert received == {"hv1": 40, "hv2": 2}
    cpu = sum(s.value for s in samples if s.name == "sdnvirt_vm_cpu_seconds_total" and s.labels["vm"] == "a1")
    assert cpu == pytest.approx(3.5)
    memory = [s for s in samples if s.name == "sdnvirt_vm_memory_bytes"]
    assert [(s.labels, s.value) for s in memory] == [({"tenant": "blue", "vm": "a1", "host": "hv2"}, 7)]
    drops = {s.labels["reason"] for s in samples if s.name == "sdnvirt_port_dropped_packets_total"}
    assert drops == {"port_security", "delivery"}
