"""Row events matched by table and kind of change alone, as ovsdbapp matches them, without
formatting the row for a debug line (which cost a third of a ten-host controller's start)."""

from types import SimpleNamespace

from ovsdbapp.backend.ovs_idl import idlutils

from sdnvirt.ovsdb.watching import TableEvent


class Seen(TableEvent):
    def run(self, event, row, old):
        pass


def row(table: str) -> SimpleNamespace:
    return SimpleNamespace(_table=SimpleNamespace(name=table))


def test_a_table_event_matches_its_table_and_every_kind_of_change(monkeypatch):
    formatted = []
    monkeypatch.setattr(idlutils, "row2str", lambda r: formatted.append(r) or "")
    event = Seen("Interface")
    for kind in (event.ROW_CREATE, event.ROW_UPDATE, event.ROW_DELETE):
        assert event.matches(kind, row("Interface"))
        assert not event.matches(kind, row("Port"))
    assert not event.matches("something-else", row("Interface"))
    assert formatted == []
