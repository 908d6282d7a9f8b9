"""Watching an OVSDB database: ovsdbapp's row events, the same way for every database.

ovsdbapp keeps a monitored copy of a database in memory, on its connection's
thread, and the IDL calls notify() for every row that changes. Here notify only
hands the change to a RowEventHandler, as Neutron's OVN driver does; the handler
runs the row events that match (their table, events and conditions), one after
the other in the order the changes came, on a thread of its own, so the
connection's thread never waits for what a change sets off. Each database
states what it watches as TableEvent classes of its own.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterable

from ovs.db import idl
from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.backend.ovs_idl.event import RowEvent, RowEventHandler


class TableEvent(RowEvent):
    """A row of one table came, changed or went: ovsdbapp's RowEvent, matched without its debug
    line, whose arguments format every matching row whatever the log level (a third of a ten-host
    controller's start went there)."""

    def __init__(self, table: str):
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE, self.ROW_DELETE), table, None)

    def matches(self, event, row, old=None) -> bool:
        return event in self.events and row._table.name == self.table


class WatchedIdl(connection.OvsdbIdl):
    def __init__(self, remote: str, schema_helper: idl.SchemaHelper, handler: RowEventHandler, **options):
        super().__init__(remote, schema_helper, **options)
        self._handler = handler

    def notify(self, event, row, updates=None):
        self._handler.notify(event, row, updates)


class WatchedConnection(connection.Connection):
    """An ovsdbapp connection to `remote` whose row changes run `events`."""

    def __init__(self, remote: str, schema_helper: idl.SchemaHelper, events: Iterable[RowEvent], timeout: float,
                 **idl_options):
        self.events = RowEventHandler()
        self.events.watch_events(events)
        super().__init__(WatchedIdl(remote, schema_helper, self.events, **idl_options), timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the connection's thread and the events' (ovsdbapp would keep the latter
        until the process exits)."""
        stopped = super().stop(timeout)
        self.events.shutdown()
        atexit.unregister(self.events.shutdown)
        return stopped
