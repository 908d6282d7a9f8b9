"""`sdnvirt top`: rates from two samples of the controller's counters, their order, their text, and the
command end to end in batch mode against a fake controller."""

from __future__ import annotations

import argparse
import copy
import json

import pytest

from sdnvirt.cli import top
from sdnvirt.cli.main import main
from sdnvirt.client.api import ApiError

MiB = 2**20


def counters(**figures: int) -> dict:
    keys = ("received_packets", "received_bytes", "sent_packets", "sent_bytes", "dropped_port_security",
            "cpu_time_ns", "disk_read_requests", "disk_read_bytes", "disk_write_requests", "disk_write_bytes")
    return {key: figures.get(key, 0) for key in keys}


def sample(at: float, vms: dict, hosts: dict) -> dict:
    return {"at": at, "interval_s": 1.0, "ports": {}, "tenants": {}, "port_security_drops": {},
            "vms": vms, "hosts": hosts}


# web1 runs on hv1, then (in AFTER, 2 s later) on hv2: it migrated meanwhile.
BEFORE = sample(100.0, vms={
    "web1": {"tenant": "acme", "host": "hv1", "memory_bytes": 128 * MiB,
             "counters": counters(received_packets=1000, received_bytes=100_000, sent_packets=500, sent_bytes=50_000,
                                  dropped_port_security=3, cpu_time_ns=10**9, disk_read_bytes=4096)},
    "db1": {"tenant": "blue", "host": "hv2", "memory_bytes": None,
            "counters": counters(received_packets=10, sent_packets=10)},
}, hosts={
    "hv1": {"memory_bytes": 4096 * MiB, "counters": counters(cpu_time_ns=5 * 10**9, received_packets=1000)},
    "hv2": {"memory_bytes": 2048 * MiB, "counters": counters(received_packets=10)},
})
AFTER = sample(102.0, vms={
    "web1": {"tenant": "acme", "host": "hv2", "memory_bytes": 128 * MiB,
             "counters": counters(received_packets=1200, received_bytes=120_480, sent_packets=600, sent_bytes=52_048,
                                  dropped_port_security=7, cpu_time_ns=2 * 10**9, disk_read_bytes=4096 + 8192,
                                  disk_write_bytes=2 * MiB)},
    "db1": {"tenant": "blue", "host": "hv2", "memory_bytes": None,
            "counters": counters(received_packets=2010, sent_packets=1010)},
    "new1": {"tenant": "acme", "host": None, "memory_bytes": 64 * MiB,
             "counters": counters(cpu_time_ns=9 * 10**9, dropped_port_security=50)},
}, hosts={
    "hv1": {"memory_bytes": 4096 * MiB, "counters": counters(cpu_time_ns=6 * 10**9, received_packets=1200)},
    "hv2": {"memory_bytes": 2048 * MiB, "counters": counters(cpu_time_ns=3 * 10**9, received_packets=2010)},
})


def by_name(rows: list[top.Row]) -> dict[str, top.Row]:
    return {row.name: row for row in rows}


def test_rates_are_the_differences_divided_by_the_time_between_the_samples():
    web1 = by_name(top.vm_rows(BEFORE, AFTER))["web1"]
    assert web1.rates == top.Rates(cpu_percent=50.0, received_packets_per_s=100.0, sent_packets_per_s=50.0,
                                   received_bytes_per_s=10_240.0, sent_bytes_per_s=1024.0,
                                   dropped_port_security_per_s=2.0, disk_read_bytes_per_s=4096.0,
                                   disk_write_bytes_per_s=MiB)
    assert (web1.dropped_port_security, web1.memory_bytes, web1.tenant) == (7, 128 * MiB, "acme")


def test_a_guest_that_migrated_between_the_samples_keeps_its_rates_and_shows_its_new_host():
    web1 = by_name(top.vm_rows(BEFORE, AFTER))["web1"]
    assert web1.host == "hv2"
    assert web1.rates is not None and web1.rates.received_packets_per_s == 100.0


def test_a_guest_new_in_the_second_sample_has_no_rates_yet():
    rows = by_name(top.vm_rows(BEFORE, AFTER))
    assert rows["new1"].rates is None
    assert rows["new1"].dropped_port_security == 50
    assert set(rows) == {"web1", "db1", "new1"}


def test_the_first_sample_has_no_rates():
    assert [row.rates for row in top.vm_rows(None, BEFORE)] == [None, None]


def test_hosts_get_rates_too():
    hosts = by_name(top.host_rows(BEFORE, AFTER))
    assert hosts["hv1"].rates.cpu_percent == 50.0
    assert hosts["hv2"].rates.cpu_percent == 150.0
    assert hosts["hv2"].rates.received_packets_per_s == 1000.0
    assert (hosts["hv1"].memory_bytes, hosts["hv1"].host, hosts["hv1"].tenant) == (4096 * MiB, None, None)


def test_a_counter_that_went_back_gives_no_rates():
    # the controller restarted between the samples and counts from zero again
    assert top.rates(counters(received_packets=10), counters(received_packets=3), 1.0) is None
    assert top.rates(counters(), counters(), 0.0) is None


@pytest.mark.parametrize("sort, order", [
    ("cpu", ["web1", "db1", "new1"]),  # 50 %, 0 %, no rate yet
    ("memory", ["web1", "new1", "db1"]),  # 128 MiB, 64 MiB, unknown (a netns guest)
    ("packets", ["db1", "web1", "new1"]),  # 1500 pps, 150 pps, no rate yet
    ("drops", ["web1", "db1", "new1"]),  # 2/s, 0/s, no rate yet
    ("name", ["db1", "new1", "web1"]),
])
def test_rows_sort_by_the_key_the_largest_first_and_names_from_a_to_z(sort, order):
    assert [row.name for row in top.sorted_rows(top.vm_rows(BEFORE, AFTER), sort)] == order


def test_drops_without_rates_sort_by_the_drops_so_far():
    rows = top.vm_rows(None, AFTER)
    assert [row.name for row in top.sorted_rows(rows, "drops")] == ["new1", "web1", "db1"]


def test_equal_figures_sort_by_name():
    rows = top.vm_rows(None, AFTER)  # no rates: every CPU figure is unknown
    assert [row.name for row in top.sorted_rows(rows, "cpu")] == ["db1", "new1", "web1"]


@pytest.mark.parametrize("value, base, text", [
    (None, 1024, "-"), (0, 1024, "0"), (512, 1024, "512"), (1023, 1024, "1023"), (1024, 1024, "1K"),
    (1536, 1024, "1.5K"), (10_240, 1024, "10K"), (128 * MiB, 1024, "128M"), (2.5 * 2**30, 1024, "2.5G"),
    (3 * 2**50, 1024, "3072T"), (0.5, 1000, "0.5"), (1500, 1000, "1.5K"), (2_000_000, 1000, "2M"),
])
def test_human_sizes(value, base, text):
    assert top.human_size(value, base) == text


def test_the_table_of_guests_in_columns():
    lines = top.table(top.VM_COLUMNS, top.sorted_rows(top.vm_rows(BEFORE, AFTER), "cpu"))
    assert lines == [
        "VM             HOST       TENANT       %CPU    MEM  RXPKT/s  TXPKT/s   RXB/s   TXB/s  DROPS  DROP/s"
        "  DISKR/s  DISKW/s",
        "web1           hv2        acme         50.0   128M      100       50     10K      1K      7       2"
        "       4K       1M",
        "db1            hv2        blue          0.0      -       1K      500       0       0      0       0"
        "        0        0",
        "new1           -          acme            -    64M        -        -       -       -     50       -"
        "        -        -",
    ]


def test_a_controller_that_has_read_nothing_yet_is_no_sample():
    samples = top.Samples(FakeClient([{**BEFORE, "at": None}, BEFORE, AFTER]))
    previous, current = samples.read()
    assert previous is None and current["at"] is None
    assert "not read yet" in top.screen(previous, current, "cpu", 1.0)[0]
    assert samples.read() == (None, BEFORE)
    assert samples.read() == (BEFORE, AFTER)


class FakeClient:
    def __init__(self, samples: list[dict | BaseException]):
        self.samples = list(samples)

    def counters(self) -> dict:
        answer = self.samples.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return copy.deepcopy(answer)


@pytest.fixture
def controller(monkeypatch):
    """Where `sdnvirt top` finds its lab: a fake one whose controller answers the given samples."""
    asked: dict = {}

    def answering(*samples: dict | BaseException) -> dict:
        class FakeLab:
            def api(self) -> FakeClient:
                return FakeClient(list(samples))

        def lab_named(name: str | None) -> FakeLab:
            asked["lab"] = name
            return FakeLab()

        monkeypatch.setattr(top, "lab_named", lab_named)
        return asked

    return answering


def test_batch_prints_a_table_per_refresh_the_first_without_rates(controller, capsys):
    asked = controller(BEFORE, AFTER)
    assert main(["top", "--batch", "-n", "2", "--delay", "0.01", "--sort", "name", "--lab", "demo"]) == 0
    assert asked["lab"] == "demo"
    first, second = capsys.readouterr().out.split("\n\n")
    first_lines, second_lines = first.splitlines(), second.splitlines()
    assert first_lines[0].startswith("sdnvirt top - ")
    assert "VMs: 2, hosts: 2" in first_lines[0] and "sorted by name" in first_lines[0]
    assert first_lines[2:4] == [
        "db1            hv2        blue            -      -        -        -       -       -      0       -"
        "        -        -",
        "web1           hv1        acme            -   128M        -        -       -       -      3       -"
        "        -        -",
    ]
    assert "VMs: 3, hosts: 2" in second_lines[0]
    assert second_lines[1:5] == top.table(top.VM_COLUMNS, top.sorted_rows(top.vm_rows(BEFORE, AFTER), "name"))
    assert second_lines[5:] == [
        "HOST                                   %CPU    MEM  RXPKT/s  TXPKT/s   RXB/s   TXB/s  DROPS  DROP/s"
        "  DISKR/s  DISKW/s",
        "hv1                                    50.0     4G      100        0       0       0      0       0"
        "        0        0",
        "hv2                                   150.0     2G       1K        0       0       0      0       0"
        "        0        0",
    ]


def test_batch_json_gives_the_rates_per_guest_and_host(controller, capsys):
    controller(BEFORE, AFTER)
    assert main(["top", "-b", "-n", "2", "-d", "0.01", "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["vms"]["web1"]["rates"] is None
    assert list(second["vms"]) == ["web1", "db1", "new1"]  # by CPU
    assert second["at"] == 102.0
    assert second["vms"]["web1"]["host"] == "hv2"
    assert second["vms"]["web1"]["rates"]["cpu_percent"] == 50.0
    assert second["vms"]["web1"]["rates"]["sent_bytes_per_s"] == 1024.0
    assert second["vms"]["new1"] == {"host": None, "tenant": "acme", "memory_bytes": 64 * MiB,
                                     "dropped_port_security": 50, "rates": None}
    assert second["hosts"]["hv2"]["rates"]["received_packets_per_s"] == 1000.0


def test_a_sample_asked_again_before_the_controller_read_anew_keeps_the_baseline(controller, capsys):
    controller(BEFORE, AFTER, AFTER)
    assert main(["top", "-b", "-n", "3", "-d", "0.01", "--json"]) == 0
    _, second, third = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert third == second
    assert third["vms"]["db1"]["rates"]["received_packets_per_s"] == 1000.0


def test_batch_runs_until_interrupted_without_iterations(controller):
    controller(BEFORE, AFTER, KeyboardInterrupt())
    assert main(["top", "-b", "-d", "0.01"]) == 130


def test_a_controller_that_cannot_be_reached_exits_1(controller, capsys):
    controller(ApiError("controller at /run/api.sock: connection refused"))
    assert main(["top", "-b"]) == 1
    assert "connection refused" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--delay", "0"], "--delay must be more than 0 and at most 3600 seconds, not 0"),
    (["-d", "-1"], "--delay must be more than 0 and at most 3600 seconds, not -1"),
    (["-d", "nan"], "--delay must be more than 0 and at most 3600 seconds, not nan"),
    (["-n", "0"], "--iterations must be 1 or more, not 0"),
    (["--json"], "--json needs --batch"),
    ([], "the full screen needs a terminal: use --batch"),  # pytest's output is no terminal
])
def test_arguments_that_make_no_sense_exit_2(controller, capsys, arguments, message):
    controller(BEFORE)
    batch = [] if "--json" in arguments or not arguments else ["-b"]
    assert main(["top", *batch, *arguments]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"sdnvirt: {message}"


def test_an_unknown_order_exits_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["top", "-b", "--sort", "speed"])
    assert exited.value.code == 2
    assert "invalid choice: 'speed'" in capsys.readouterr().err


class FakeWindow:
    """A terminal of 40 lines: keys pressed in turn (-1: none before the delay was over), lines drawn."""

    def __init__(self, keys: list[int]):
        self.keys = keys
        self.screens: list[list[str]] = []

    def getmaxyx(self) -> tuple[int, int]:
        return 40, 200

    def erase(self) -> None:
        self.screens.append([])

    def addnstr(self, y: int, x: int, text: str, width: int, attribute: int) -> None:
        self.screens[-1].append(text[:width])

    def refresh(self) -> None:
        pass

    def timeout(self, milliseconds: int) -> None:
        assert 0 <= milliseconds <= 10

    def getch(self) -> int:
        return self.keys.pop(0)


def test_the_full_screen_sorts_by_the_key_pressed_and_quits_on_q():
    window = FakeWindow([ord("n"), -1, ord("p"), ord("q")])
    args = argparse.Namespace(sort="cpu", delay=0.01, iterations=None)
    top._interactive(window, top.Samples(FakeClient([BEFORE, AFTER])), args)
    first_names = [line.split()[0] for line in window.screens[0][3:5]]
    assert first_names == ["db1", "web1"]  # no rates yet: by name even by CPU
    assert "sorted by name" in window.screens[1][0]
    assert [line.split()[0] for line in window.screens[2][3:6]] == ["db1", "new1", "web1"]
    assert "sorted by packets" in window.screens[3][0]
    assert [line.split()[0] for line in window.screens[3][3:6]] == ["db1", "web1", "new1"]
    assert window.screens[3][3].split()[3] == "0.0" and window.screens[3][4].split()[3] == "50.0"
    assert len(window.screens) == 4 and window.keys == []


def test_the_full_screen_stops_after_the_iterations():
    window = FakeWindow([-1, -1])
    args = argparse.Namespace(sort="cpu", delay=0.01, iterations=2)
    top._interactive(window, top.Samples(FakeClient([BEFORE, AFTER])), args)
    assert len(window.screens) == 2 and window.keys == []
