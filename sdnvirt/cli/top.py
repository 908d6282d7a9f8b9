"""`sdnvirt top`: which guests and hosts are busy right now, as virt-top shows a libvirt host's guests.

The controller keeps cumulative counters (GET /counters) for every guest and host: CPU time,
packets and bytes through their ports, port-security drops, disk I/O. What is worth watching is
how fast they grow, so this view reads them every --delay seconds and divides the difference
between two samples by the time between them (the samples' own "at", when the controller read
them, not when we asked). The counters follow a guest across a migration, so its rates stay
right while it moves. RX is what the guest received, TX what it sent.

The computation (rates, order, rows of text) is plain functions, tested without a terminal;
curses only draws their lines. Sizes are in powers of 1024 (K, M, G: KiB, MiB, GiB), packet
counts in powers of 1000.
"""

from __future__ import annotations

import curses
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from sdnvirt.cli.exits import UsageError
from sdnvirt.cli.lab import lab_named
from sdnvirt.client.api import ApiClient

MAX_DELAY = 3600.0
SORT_KEYS = ("cpu", "memory", "packets", "drops", "name")
KEYS = {"c": "cpu", "m": "memory", "p": "packets", "d": "drops", "n": "name"}
NO_VALUE = "-"


@dataclass(frozen=True)
class Rates:
    """How fast a guest's or host's counters grew between two samples."""

    cpu_percent: float
    received_packets_per_s: float
    sent_packets_per_s: float
    received_bytes_per_s: float
    sent_bytes_per_s: float
    dropped_port_security_per_s: float
    disk_read_bytes_per_s: float
    disk_write_bytes_per_s: float


@dataclass(frozen=True)
class Row:
    """One guest or host of the view: what it is, where, and its rates (None before a second sample)."""

    name: str
    host: str | None
    tenant: str | None
    memory_bytes: int | None
    dropped_port_security: int
    rates: Rates | None


def rates(before: dict | None, after: dict, seconds: float) -> Rates | None:
    """The rates between two readings of one guest's (or host's) counters, `seconds` apart; None when
    there is no earlier reading, or a counter went back (the controller restarted and counts anew)."""
    if before is None or seconds <= 0:
        return None
    delta = {name: after[name] - before[name] for name in after}
    if any(value < 0 for value in delta.values()):
        return None
    return Rates(
        cpu_percent=delta["cpu_time_ns"] / (seconds * 1e9) * 100,
        received_packets_per_s=delta["received_packets"] / seconds,
        sent_packets_per_s=delta["sent_packets"] / seconds,
        received_bytes_per_s=delta["received_bytes"] / seconds,
        sent_bytes_per_s=delta["sent_bytes"] / seconds,
        dropped_port_security_per_s=delta["dropped_port_security"] / seconds,
        disk_read_bytes_per_s=delta["disk_read_bytes"] / seconds,
        disk_write_bytes_per_s=delta["disk_write_bytes"] / seconds,
    )


def vm_rows(previous: dict | None, current: dict) -> list[Row]:
    """A row per guest of the current sample; a guest new since the previous one has no rates yet."""
    return _rows(previous, current, "vms")


def host_rows(previous: dict | None, current: dict) -> list[Row]:
    """A row per host of the current sample, its counters being those of the guests it ran."""
    return _rows(previous, current, "hosts")


def _rows(previous: dict | None, current: dict, section: str) -> list[Row]:
    seconds = current["at"] - previous["at"] if previous is not None else 0.0
    earlier = previous[section] if previous is not None else {}
    rows = []
    for name, entry in current[section].items():
        before = earlier[name]["counters"] if name in earlier else None
        rows.append(Row(name=name, host=entry.get("host"), tenant=entry.get("tenant"),
                        memory_bytes=entry.get("memory_bytes"),
                        dropped_port_security=entry["counters"]["dropped_port_security"],
                        rates=rates(before, entry["counters"], seconds)))
    return rows


def sorted_rows(rows: Iterable[Row], sort: str) -> list[Row]:
    """The rows in the order of `sort`: the largest first (rows without the figure last), by name
    from A to Z with "name" and between equals."""
    figure: Callable[[Row], float | None] = {
        "cpu": lambda row: row.rates.cpu_percent if row.rates else None,
        "memory": lambda row: row.memory_bytes,
        "packets": lambda row: (row.rates.received_packets_per_s + row.rates.sent_packets_per_s
                                if row.rates else None),
        "drops": lambda row: row.rates.dropped_port_security_per_s if row.rates else None,
        "name": lambda row: 0,
    }[sort]

    def key(row: Row) -> tuple:
        value = figure(row)
        return value is None, -(value or 0), -row.dropped_port_security if sort == "drops" else 0, row.name

    return sorted(rows, key=key)


def human_size(value: float | None, base: int = 1024) -> str:
    """A size or a count in a few characters: 512, 1.5K, 128M (powers of `base`); "-" for none."""
    if value is None:
        return NO_VALUE
    for unit in ("", "K", "M", "G", "T"):
        if value < base or unit == "T":
            break
        value /= base
    return (f"{value:.1f}" if value < 10 and value != int(value) else f"{value:.0f}") + unit


def _percent(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    cell: Callable[[Row], str]
    left: bool = False


def _rate(figure: Callable[[Rates], float], show: Callable[[float], str]) -> Callable[[Row], str]:
    return lambda row: show(figure(row.rates)) if row.rates else NO_VALUE


RATE_COLUMNS = (
    Column("%CPU", 6, _rate(lambda r: r.cpu_percent, _percent)),
    Column("MEM", 6, lambda row: human_size(row.memory_bytes)),
    Column("RXPKT/s", 8, _rate(lambda r: r.received_packets_per_s, lambda v: human_size(v, 1000))),
    Column("TXPKT/s", 8, _rate(lambda r: r.sent_packets_per_s, lambda v: human_size(v, 1000))),
    Column("RXB/s", 7, _rate(lambda r: r.received_bytes_per_s, human_size)),
    Column("TXB/s", 7, _rate(lambda r: r.sent_bytes_per_s, human_size)),
    Column("DROPS", 6, lambda row: human_size(row.dropped_port_security, 1000)),
    Column("DROP/s", 7, _rate(lambda r: r.dropped_port_security_per_s, lambda v: human_size(v, 1000))),
    Column("DISKR/s", 8, _rate(lambda r: r.disk_read_bytes_per_s, human_size)),
    Column("DISKW/s", 8, _rate(lambda r: r.disk_write_bytes_per_s, human_size)),
)
VM_COLUMNS = (Column("VM", 14, lambda row: row.name, left=True),
              Column("HOST", 10, lambda row: row.host or NO_VALUE, left=True),
              Column("TENANT", 10, lambda row: row.tenant or NO_VALUE, left=True)) + RATE_COLUMNS
HOST_COLUMNS = (Column("HOST", 36, lambda row: row.name, left=True),) + RATE_COLUMNS


def table(columns: tuple[Column, ...], rows: Iterable[Row]) -> list[str]:
    """The column titles, then a line per row, each cell in its column's width (longer names are not cut)."""
    def line(cells: Iterable[str]) -> str:
        return " ".join(f"{text:<{c.width}}" if c.left else f"{text:>{c.width}}"
                        for c, text in zip(columns, cells, strict=True)).rstrip()

    return [line(c.title for c in columns)] + [line(c.cell(row) for c in columns) for row in rows]


def summary(current: dict, sort: str, delay: float) -> str:
    """The header: when the controller read the counters, how many guests and hosts, the order."""
    at = time.strftime("%H:%M:%S", time.localtime(current["at"])) if current["at"] is not None else "not read yet"
    return (f"sdnvirt top - {at} - VMs: {len(current['vms'])}, hosts: {len(current['hosts'])} - "
            f"every {delay:g} s (controller reads every {current['interval_s']:g} s) - sorted by {sort}")


def screen(previous: dict | None, current: dict, sort: str, delay: float) -> tuple[str, list[str], list[str]]:
    """The header, the table of guests and the table of hosts for one refresh."""
    return (summary(current, sort, delay),
            table(VM_COLUMNS, sorted_rows(vm_rows(previous, current), sort)),
            table(HOST_COLUMNS, sorted_rows(host_rows(previous, current), sort)))


def as_json(previous: dict | None, current: dict, sort: str) -> dict:
    """One refresh for scripts: each guest's and host's figures and rates (null before a second sample)."""
    def entries(rows: list[Row]) -> dict:
        return {row.name: {"host": row.host, "tenant": row.tenant, "memory_bytes": row.memory_bytes,
                           "dropped_port_security": row.dropped_port_security,
                           "rates": asdict(row.rates) if row.rates else None} for row in sorted_rows(rows, sort)}

    return {"at": current["at"], "vms": entries(vm_rows(previous, current)),
            "hosts": entries(host_rows(previous, current))}


class Samples:
    """The last two different samples of the controller's counters: asked more often than the
    controller reads them, it answers the same sample again, which is no new baseline."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.previous: dict | None = None
        self.current: dict | None = None

    def read(self) -> tuple[dict | None, dict]:
        """Ask for the counters; the previous sample and the latest."""
        sample = self.client.counters()
        if sample["at"] is None:  # a controller just started, before its first reading of every host
            return None, sample
        if self.current is None or sample["at"] > self.current["at"]:
            self.previous, self.current = self.current, sample
        return self.previous, self.current


def register(verbs) -> None:
    top = verbs.add_parser(
        "top", help="guests and hosts live, by CPU, memory, packets or drops (like virt-top)",
        description="Guests and hosts live: CPU, memory, packets and bytes received (RX) and sent (TX), "
                    "port-security drops, disk reads and writes, per second. Keys: c CPU, m memory, "
                    "p packets, d drops, n name, q quit.")
    top.add_argument("-d", "--delay", type=float, default=1.0, metavar="SECONDS",
                     help="seconds between refreshes (default 1)")
    top.add_argument("--sort", choices=SORT_KEYS, default="cpu",
                     help="the order at the start (default cpu; the largest first, names from A to Z)")
    top.add_argument("-b", "--batch", action="store_true", help="print plain tables to stdout, no full screen")
    top.add_argument("-n", "--iterations", type=int, metavar="N",
                     help="stop after N refreshes (default: until interrupted, or q)")
    top.add_argument("--json", action="store_true", help="with --batch: one JSON object per line per refresh")
    top.add_argument("--lab", help="the lab (default: the only one up)")
    top.set_defaults(run=_top)


def _top(args) -> int:
    if not 0 < args.delay <= MAX_DELAY:  # nan too
        raise UsageError(f"--delay must be more than 0 and at most {MAX_DELAY:g} seconds, not {args.delay:g}")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be 1 or more, not {args.iterations}")
    if args.json and not args.batch:
        raise UsageError("--json needs --batch")
    if not args.batch and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the full screen needs a terminal: use --batch")
    samples = Samples(lab_named(args.lab).api())
    if args.batch:
        _batch(samples, args)
    else:
        curses.wrapper(_interactive, samples, args)
    return 0


def _batch(samples: Samples, args) -> None:
    refreshes = itertools.count() if args.iterations is None else range(args.iterations)
    for refresh in refreshes:
        if refresh:
            time.sleep(args.delay)
        previous, current = samples.read()
        if args.json:
            print(json.dumps(as_json(previous, current, args.sort)), flush=True)
            continue
        header, vms, hosts = screen(previous, current, args.sort, args.delay)
        print(("\n" if refresh else "") + "\n".join([header, *vms, *hosts]), flush=True)


def _interactive(window: curses.window, samples: Samples, args) -> None:
    try:
        curses.curs_set(0)
    except curses.error:  # a terminal that cannot hide its cursor
        pass
    sort = args.sort
    previous, current = samples.read()
    refreshes = 1
    deadline = time.monotonic() + args.delay
    while True:
        _draw(window, *screen(previous, current, sort, args.delay))
        window.timeout(max(0, round((deadline - time.monotonic()) * 1000)))
        key = window.getch()
        if key == -1:  # the delay is over
            if refreshes == args.iterations:
                return
            previous, current = samples.read()
            refreshes += 1
            deadline = time.monotonic() + args.delay
        elif key == ord("q"):
            return
        elif 0 <= key < 256 and chr(key) in KEYS:
            sort = KEYS[chr(key)]


def _draw(window: curses.window, header: str, vms: list[str], hosts: list[str]) -> None:
    height, width = window.getmaxyx()
    lines = [(header, curses.A_BOLD), ("", curses.A_NORMAL), (vms[0], curses.A_REVERSE)]
    lines += [(line, curses.A_NORMAL) for line in vms[1:]] + [("", curses.A_NORMAL), (hosts[0], curses.A_REVERSE)]
    lines += [(line, curses.A_NORMAL) for line in hosts[1:]]
    window.erase()
    for y, (text, attribute) in enumerate(lines[:height]):
        window.addnstr(y, 0, text, width - 1, attribute)
    window.refresh()
