"""The northbound database: where desired state lives, served by ovsdb-server.

Its schema is ovs/sdnvirt.ovsschema. Through ovsdbapp the controller keeps a
monitored copy of it in memory (reads never wait for the server) and writes
to it in transactions: all of a change or none of it. The same database
serves one standalone server (a lab's default) or a Raft cluster of several
(the remote is then their addresses, comma-separated).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import idlutils

from sdnvirt.model.topology import Topology
from sdnvirt.northbound.rows import KEYS, Row, row_key, topology_from_rows, topology_rows
from sdnvirt.ovsdb.own_connection import OwnConnection
from sdnvirt.ovsdb.watching import TableEvent, WatchedConnection

LOG = logging.getLogger(__name__)
DATABASE = "SDNVirt_Northbound"
DESIRED_TABLES = ("Topology", *KEYS)


class NorthboundError(RuntimeError):
    pass


class NorthboundUnavailable(NorthboundError):
    """No server answered in time: the same write may well succeed later."""


# What ovsdbapp raises when a transaction kept getting "try again" (no server, or no leader)
# until its timeout; a refusal by the server is a RuntimeError too, "OVSDB Error: ...".
TRY_AGAIN_TIMED_OUT = "OVS transaction timed out"


class _Api(OwnConnection, ovs_idl.Backend, ovsdbapp_api.API):
    schema = DATABASE


class TableChanged(TableEvent):
    """A row of `table` came, changed or went."""

    def __init__(self, table: str, northbound: Northbound):
        super().__init__(table)
        self._northbound = northbound

    def run(self, event, row, old):
        self._northbound.changed(self.table)


RECONNECT_BACKOFF_MS = 1000  # python-ovs doubles its wait up to 8 s: too long to find a new Raft leader


class Northbound:
    """`leader_only=False` reads from whichever member answers (a follower's copy is
    at most a moment behind); the controller writes, so it follows the leader."""

    def __init__(self, remote: str, timeout: float = 10, leader_only: bool = True):
        self.remote = remote
        self._timeout = timeout
        self._leader_only = leader_only
        self._watchers: list[Callable[[str], None]] = []
        self._connection: WatchedConnection | None = None
        self.api: _Api | None = None

    def connect(self) -> None:
        """Connect and read the database once; raises when no server answers in time."""
        try:
            helper = idlutils.get_schema_helper(self.remote, DATABASE)
        except Exception as error:  # python-ovs raises plain exceptions for an unreachable server
            raise NorthboundError(f"northbound database {self.remote}: {error}") from None
        helper.register_all()
        events = [TableChanged(table, self) for table in helper.schema_json["tables"]]
        self._connection = WatchedConnection(self.remote, helper, events, self._timeout, leader_only=self._leader_only)
        # no public setter
        self._connection.idl._session.reconnect.set_backoff(RECONNECT_BACKOFF_MS, RECONNECT_BACKOFF_MS)
        try:
            self.api = _Api(self._connection)
        except ovsdbapp_exceptions.OvsdbAppException:  # its message cannot be formatted (ovsdbapp)
            raise NorthboundError(f"northbound database {self.remote}: no usable server within "
                                  f"{self._timeout:.0f}s") from None

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call back with a table's name whenever one of its rows changes (on the thread that
        runs row events: the callback must not block)."""
        self._watchers.append(callback)

    def changed(self, table: str) -> None:
        for callback in self._watchers:
            callback(table)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.stop(timeout=self._timeout)

    # -- reading the in-memory copy ---------------------------------------------------------------

    def rows(self, table: str) -> list[Row]:
        """The table's rows as column dicts, with optional columns as a value or None."""
        with self._connection.lock:
            return [_plain(row) for row in self.api.tables[table].rows.values()]

    def topology(self) -> Topology | None:
        """The desired topology, or None while the database holds none."""
        with self._connection.lock:
            roots = list(self.api.tables["Topology"].rows.values())
            if not roots:
                return None
            rows = {table: [_plain(r) for r in self.api.tables[table].rows.values()] for table in KEYS}
            return topology_from_rows(roots[0].name, rows)

    def topology_source(self) -> str | None:
        roots = self.rows("Topology")
        return roots[0]["source"] if roots else None

    def generation(self) -> int:
        """How many times a topology was loaded: 0 before the first."""
        roots = self.rows("Topology")
        return roots[0]["generation"] if roots else 0

    # -- writing ----------------------------------------------------------------------------------

    def load_topology(self, topology: Topology, source: str) -> int:
        """Make the desired tables say exactly `topology`, in one transaction, touching only
        the rows that differ (a port keeps its place while its guest is unchanged); the
        topology's generation number."""
        wanted = topology_rows(topology)
        with self._transaction() as txn:
            roots = list(self.api.tables["Topology"].rows.values())
            generation = (roots[0].generation + 1) if roots else 1
            if roots:
                txn.add(self.api.db_set("Topology", roots[0].uuid, ("name", topology.name), ("source", source),
                                        ("generation", generation)))
            else:
                txn.add(self.api.db_create("Topology", name=topology.name, source=source, generation=generation))
            for table, rows in wanted.items():
                current = {row_key(table, _plain(r)): r for r in self.api.tables[table].rows.values()}
                desired = {row_key(table, r): r for r in rows}
                for key, row in current.items():
                    if key not in desired:
                        txn.add(self.api.db_destroy(table, row.uuid))
                for key, columns in desired.items():
                    row = current.get(key)
                    if row is None:
                        txn.add(self.api.db_create(table, **columns))
                    else:
                        changed = [(c, v) for c, v in columns.items() if _plain(row)[c] != v]
                        if changed:
                            txn.add(self.api.db_set(table, row.uuid, *changed))
        return generation

    def set_active(self, placements: dict[str, str]) -> None:
        """Record where logical ports are active (port id -> host)."""
        with self._transaction() as txn:
            for port_id, host in placements.items():
                row = self._find("Logical_Port", "id", port_id)
                if row is not None:
                    txn.add(self.api.db_set("Logical_Port", row.uuid, ("active_host", [host])))

    def active(self) -> dict[str, str]:
        return {r["id"]: r["active_host"] for r in self.rows("Logical_Port") if r["active_host"]}

    def set_bindings(self, host: str, bindings: list[Row]) -> None:
        """Make the Binding table say exactly what `host`'s OVSDB shows (ready_at: float or None)."""
        with self._transaction() as txn:
            current = {r.interface: r for r in self.api.tables["Binding"].rows.values() if r.host == host}
            wanted = {b["interface"]: b for b in bindings}
            for interface, row in current.items():
                if interface not in wanted:
                    txn.add(self.api.db_destroy("Binding", row.uuid))
            for interface, columns in wanted.items():
                row = current.get(interface)
                if row is not None and {c: v for c, v in _plain(row).items() if c in columns} == columns:
                    continue
                stored = {**columns, "ready_at": [] if columns["ready_at"] is None else [columns["ready_at"]]}
                if row is None:
                    txn.add(self.api.db_create("Binding", **stored))
                else:
                    txn.add(self.api.db_set("Binding", row.uuid, *stored.items()))

    def save_migration(self, number: int, report: dict) -> None:
        columns = {"number": number, "vm": report["vm"], "source": report["from"],
                   "destination": report["to"], "kind": report["kind"], "state": report["state"],
                   "report": json.dumps(report)}
        with self._transaction() as txn:
            row = self._find("Migration", "number", number)
            if row is None:
                txn.add(self.api.db_create("Migration", **columns))
            else:
                txn.add(self.api.db_set("Migration", row.uuid, *columns.items()))

    def migrations(self) -> list[dict]:
        return sorted((json.loads(r["report"]) for r in self.rows("Migration")), key=lambda r: r["id"])

    def save_account(self, name: str, figures: dict) -> None:
        """A port's or VM's counters (controller/accounting) as they stand."""
        with self._transaction() as txn:
            row = self._find("Account", "name", name)
            if row is None:
                txn.add(self.api.db_create("Account", name=name, figures=json.dumps(figures)))
            else:
                txn.add(self.api.db_set("Account", row.uuid, ("figures", json.dumps(figures))))

    def accounts(self) -> dict[str, dict]:
        return {r["name"]: json.loads(r["figures"]) for r in self.rows("Account")}

    @contextmanager
    def _transaction(self) -> Iterator:
        """A transaction, committed when the block ends (with the in-memory copy locked while
        it is built); NorthboundUnavailable when no server answered in time."""
        try:
            with self.api.transaction(check_error=True) as txn, self._copy_locked():
                yield txn
        except ovsdbapp_exceptions.TimeoutException as error:
            raise NorthboundUnavailable(f"northbound database {self.remote}: {error}") from None
        except RuntimeError as error:
            if str(error) != TRY_AGAIN_TIMED_OUT:
                raise
            raise NorthboundUnavailable(f"northbound database {self.remote}: no server took a transaction "
                                        f"within {self._timeout:.0f}s") from None

    @contextmanager
    def _copy_locked(self) -> Iterator[None]:
        """The in-memory copy, locked for building a transaction. ovsdbapp's connection holds
        the lock while it commits, and python-ovs waits without end for the answer to a
        transaction sent to a server that then died: a writer gives up after the timeout."""
        if not self._connection.lock.acquire(timeout=self._timeout):
            raise NorthboundUnavailable(f"northbound database {self.remote}: no answer to a transaction "
                                        f"for {self._timeout:.0f}s")
        try:
            yield
        finally:
            self._connection.lock.release()

    def _find(self, table: str, column: str, value) -> object | None:
        return next((r for r in self.api.tables[table].rows.values() if getattr(r, column) == value), None)


def _plain(row) -> Row:
    """An IDL row as a dict; optional columns (sets of at most one) as their value or None."""
    plain = {}
    for column, spec in row._table.columns.items():
        value = getattr(row, column)
        if spec.type.is_optional():
            value = value[0] if value else None
        plain[column] = value
    return plain
