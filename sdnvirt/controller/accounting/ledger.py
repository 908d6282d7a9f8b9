"""Counters that follow a logical port or a VM wherever it runs.

What a switch or libvirt counts belongs to one incarnation of a port or a
domain: a tap that libvirt plugged, a flow the controller installed, a QEMU
process. Each starts at zero and is gone when the guest leaves the host. The
ledger keeps an account per logical port (or VM): the last figures of every
incarnation that ended, folded per host, plus the live ones as read now. An
account's total is their sum, so it continues across migrations (both
incarnations may count at once while a VM moves: each counts its own packets),
restarts of the controller (the switch kept counting) and of the guest.

An incarnation is known by where it is and what it is (host, kind, identity),
and by its age where the source tells it (OpenFlow's duration): a younger one,
or one whose figures went back, is a new incarnation and the old one is folded.
A source that was missing from one reading and comes back unchanged in age is the
same incarnation: it is taken out of the folded figures again, never counted twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

Counts = dict[str, int]
Source = tuple[str, str, str]  # (host, kind, identity)
ENDED_KEPT = 8  # ended incarnations an account remembers, in case one of them comes back


@dataclass(frozen=True)
class Reading:
    """What one source counts now for one account."""

    account: str  # a logical port's id, or a VM's name
    identity: str  # the source on its host: "vnet3@7" (a port and its number), a domain's id
    counts: Counts
    age: float | None = None  # seconds the source has existed, where it says so


@dataclass
class Live:
    counts: Counts
    age: float | None


@dataclass
class Account:
    folded: dict[str, Counts] = field(default_factory=dict)  # host -> the ended incarnations' figures
    live: dict[Source, Live] = field(default_factory=dict)
    ended: dict[Source, Live] = field(default_factory=dict)  # the last ENDED_KEPT folded, oldest first

    def by_host(self) -> dict[str, Counts]:
        """What the account counted on each host: ended incarnations and live ones."""
        hosts: dict[str, Counter] = {host: Counter(counts) for host, counts in self.folded.items()}
        for (host, _, _), live in self.live.items():
            hosts.setdefault(host, Counter()).update(live.counts)
        return {host: dict(counts) for host, counts in hosts.items()}

    def total(self) -> Counts:
        total: Counter = Counter()
        for counts in self.by_host().values():
            total.update(counts)
        return dict(total)

    def see(self, source: Source, counts: Counts, age: float | None) -> bool:
        """A source's figures now; True when an incarnation began (or ended) with them."""
        reading = Live(dict(counts), age)
        live = self.live.get(source)
        began = live is None or _younger_or_fewer(reading, live)
        if live is not None and began:
            self.fold(source)
        ended = self.ended.get(source)
        if live is None and ended is not None and not _younger_or_fewer(reading, ended):
            self._unfold(source)  # it was missing from a reading, not gone
        self.live[source] = reading
        return began

    def fold(self, source: Source) -> None:
        live = self.live.pop(source)
        self.folded[source[0]] = _add(self.folded.get(source[0], {}), live.counts)
        self.ended.pop(source, None)
        self.ended[source] = live
        while len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]

    def _unfold(self, source: Source) -> None:
        ended = self.ended.pop(source)
        self.folded[source[0]] = _add(self.folded[source[0]], {name: -n for name, n in ended.counts.items()})

    def to_json(self) -> dict:
        return {"folded": self.folded, "live": _sources_json(self.live), "ended": _sources_json(self.ended)}

    @classmethod
    def from_json(cls, data: dict) -> Account:
        return cls({host: _counts(counts) for host, counts in data["folded"].items()},
                   _sources(data["live"]), _sources(data.get("ended", [])))


def _sources_json(sources: dict[Source, Live]) -> list[dict]:
    return [{"host": h, "kind": k, "identity": i, "counts": live.counts, "age": live.age}
            for (h, k, i), live in sources.items()]


def _sources(entries: list[dict]) -> dict[Source, Live]:
    return {(e["host"], e["kind"], e["identity"]): Live(_counts(e["counts"]), e["age"]) for e in entries}


def _counts(counts: dict) -> Counts:
    return {name: int(n) for name, n in counts.items()}


def _add(one: Counts, other: Counts) -> Counts:
    return {name: one.get(name, 0) + other.get(name, 0) for name in one.keys() | other.keys()}


class Ledger:
    def __init__(self, accounts: dict[str, Account] | None = None):
        self.accounts: dict[str, Account] = accounts or {}
        self._live_at: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (host, kind) -> (account, identity)
        for name, account in self.accounts.items():
            for host, kind, identity in account.live:
                self._live_at.setdefault((host, kind), set()).add((name, identity))

    def observe(self, host: str, kind: str, readings: Iterable[Reading]) -> set[str]:
        """Everything `host` counts of one kind now (a whole reading: a source missing from it
        has ended); the accounts whose incarnations began or ended."""
        changed: set[str] = set()
        before = self._live_at.get((host, kind), set())
        now: set[tuple[str, str]] = set()
        for reading in readings:
            account = self.accounts.setdefault(reading.account, Account())
            now.add((reading.account, reading.identity))
            if account.see((host, kind, reading.identity), reading.counts, reading.age):
                changed.add(reading.account)
        for name, identity in before - now:
            self.accounts[name].fold((host, kind, identity))
            changed.add(name)
        self._live_at[(host, kind)] = now
        return changed

    def hosts_of(self, names: Iterable[str]) -> set[str]:
        """The hosts where these accounts have a live incarnation."""
        return {host for name in names if name in self.accounts for (host, _, _) in self.accounts[name].live}


def _younger_or_fewer(reading: Live, live: Live) -> bool:
    if reading.age is not None and live.age is not None and reading.age < live.age:
        return True
    return any(reading.counts.get(name, 0) < count for name, count in live.counts.items())
