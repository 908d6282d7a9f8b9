"""Packet-ins are a guest's frames: parsing never raises, and every drop is counted by its reason."""

import struct
import threading
import time
from collections import defaultdict
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from sdnvirt.controller.fabric.bridges import Applied
from sdnvirt.controller.guests.netns_swap import rarp
from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.announcements import announced_mac
from sdnvirt.controller.migration.switchover import DROP_REASONS, PACKET_IN_BACKLOG, SwitchOver
from sdnvirt.controller.state import MemoryStore
from sdnvirt.vswitch.ports import Binding

from helpers.fabric_views import OFPORTS, TOPOLOGY, port_id, view

A1_MAC = "02:00:00:00:0a:01"
A1 = bytes.fromhex(A1_MAC.replace(":", ""))
FUZZ = settings(max_examples=500, deadline=None, database=None)


def test_qemus_announcement_names_its_mac():
    assert announced_mac(rarp(A1)) == A1_MAC
    assert announced_mac(rarp(A1) + bytes(1000)) == A1_MAC  # padding is no reason to refuse it


def with_body(**fields) -> bytes:
    """A RARP announcement from a1 with some of its fields replaced."""
    values = {"htype": 1, "ptype": 0x0800, "hlen": 6, "plen": 4, "op": 3, "sha": A1, "tha": A1, "ethertype": 0x8035,
              **fields}
    body = struct.pack("!HHBBH6s4s6s4s", values["htype"], values["ptype"], values["hlen"], values["plen"],
                       values["op"], values["sha"], bytes(4), values["tha"], bytes(4))
    return b"\xff" * 6 + A1 + struct.pack("!H", values["ethertype"]) + body


def test_anything_but_an_exact_announcement_is_none():
    assert announced_mac(with_body()) == A1_MAC
    for fields in [{"op": 1}, {"op": 4}, {"htype": 6}, {"ptype": 0x86DD}, {"hlen": 8}, {"plen": 16},
                   {"sha": bytes(6)}, {"ethertype": 0x0806}, {"ethertype": 0x8100}]:
        assert announced_mac(with_body(**fields)) is None, fields
    for length in range(len(with_body())):
        assert announced_mac(with_body()[:length]) is None, length


@FUZZ
@given(st.binary(max_size=2000))
def test_no_bytes_make_the_parser_raise(frame):
    assert announced_mac(frame) in (None, _mac_of(frame))


@FUZZ
@given(st.binary(min_size=6, max_size=6), st.binary(max_size=1500))
def test_every_announcement_with_any_trailer_names_its_mac(mac, trailer):
    assert announced_mac(rarp(mac) + trailer) == _mac_of(rarp(mac))


def _mac_of(frame: bytes) -> str:
    return ":".join(f"{b:02x}" for b in frame[6:12])


class _Fabric:
    """Enough of a Fabric for switch-overs without switches: no bridge is connected."""

    def __init__(self):
        self.syncs = defaultdict(lambda: SimpleNamespace(channel=None))

    def apply(self, change, wait=False, staged=None):
        """Every bridge gets 4 flow-mods (the destination first) and confirms them 1 ms later."""
        now, hosts = time.monotonic(), sorted(change.view.topology.hosts, key=lambda h: h not in change.activated)
        return Applied(dict.fromkeys(hosts, 4), 0.0, {host: now + i / 1000 for i, host in enumerate(hosts)},
                       {host: now + (i + 1) / 1000 for i, host in enumerate(hosts)})


def switch_over(store: MemoryStore | None = None, marks: list | None = None) -> SwitchOver:
    if store is None:
        store = MemoryStore(TOPOLOGY)
        for ports in view().ports.values():
            store.set_host_ports(ports)
    return SwitchOver(store, _Fabric(), lambda event: None,
                      lambda vm, entry: marks.append((vm, entry)) if marks is not None else None)


def settled(what) -> None:
    """Until the switch-over thread has handled everything queued (bounded)."""
    deadline = time.monotonic() + 5
    while not what() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert what()


def dropped(over: SwitchOver) -> dict[str, int]:
    return {reason: count for reason, count in over.counters.snapshot()["dropped"].items() if count}


def test_each_drop_reason_is_counted_on_its_own():
    over = switch_over()
    a1_port = OFPORTS["a1"]
    over.packet_in("hv1", a1_port, b"\x00" * 10, time.monotonic())  # malformed
    over.packet_in("hv1", a1_port, with_body(op=1), time.monotonic())  # malformed
    over.packet_in("hv1", 99, rarp(A1), time.monotonic())  # no port bound there
    over.packet_in("hv1", None, rarp(A1), time.monotonic())  # the switch named no in_port
    over.packet_in(None, a1_port, rarp(A1), time.monotonic())  # a bridge of no host
    over.packet_in("hv1", a1_port, rarp(b"\x02" * 6), time.monotonic())  # not a1's MAC
    over.packet_in("hv1", a1_port, rarp(A1), time.monotonic())  # a1 is active there already: no move
    settled(lambda: over.counters.snapshot()["announcements"] == 1)
    assert dropped(over) == {"malformed": 2, "unknown_port": 2, "unknown_switch": 1, "foreign_mac": 1}
    assert set(over.counters.snapshot()["dropped"]) == set(DROP_REASONS)
    assert over.counters.snapshot()["switch_overs"] == 0


def test_a_valid_announcement_from_a_bound_destination_switches_over():
    store = MemoryStore(TOPOLOGY)
    for ports in view(extra=(Binding(port_id("a1"), "hv3", "vnet9", 7, A1_MAC, "a1"),)).ports.values():
        store.set_host_ports(ports)
    marks: list = []
    over = switch_over(store, marks)
    received = time.monotonic()
    over.packet_in("hv3", 7, rarp(A1), received)
    settled(lambda: over.counters.snapshot()["switch_overs"] == 1)
    assert store.view().active[port_id("a1")] == "hv3"
    assert dropped(over) == {}
    # the flight recorder of a1's migration hears when the trigger came and when each bridge confirmed
    started, *bridges = [entry for vm, entry in marks if vm == "a1"]
    assert (started["event"], started["host"], started["detail"]) == ("switch-over", "hv3", "rarp")
    assert abs(started["at"] - flight.wall(received)) < 0.001
    destination_first = sorted(TOPOLOGY.hosts, key=lambda h: h != "hv3")
    assert [(b["event"], b["host"]) for b in bridges] == [("sent", h) for h in destination_first] + [
        ("committed", h) for h in destination_first]
    assert bridges[0]["detail"] == "4 flow-mods"
    assert started["at"] <= bridges[0]["at"] < bridges[-1]["at"]


class _StuckStore(MemoryStore):
    """A store whose first read waits until the test lets it go: the switch-over thread is busy."""

    def __init__(self):
        super().__init__(TOPOLOGY)
        self.release = threading.Event()

    def view(self):
        self.release.wait(10)
        return super().view()


def test_packet_ins_beyond_the_backlog_are_dropped_as_overload():
    store = _StuckStore()
    over = switch_over(store)
    busy = over.now("a1", "hv1", "test")  # the switch-over thread waits for the store meanwhile
    for _ in range(PACKET_IN_BACKLOG + 25):
        over.packet_in("hv1", OFPORTS["a1"], rarp(A1), time.monotonic())
    assert over.counters.snapshot()["dropped"]["overload"] == 25
    store.release.set()
    busy.result(5)
    # the queued ones are handled: a1 is bound nowhere in this store
    settled(lambda: over.counters.snapshot()["dropped"]["unknown_port"] == PACKET_IN_BACKLOG)
    over.packet_in("hv1", OFPORTS["a1"], rarp(A1), time.monotonic())  # room again
    settled(lambda: over.counters.snapshot()["dropped"]["unknown_port"] == PACKET_IN_BACKLOG + 1)
