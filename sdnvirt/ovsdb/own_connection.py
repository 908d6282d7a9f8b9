"""One connection per API object, where ovsdbapp keeps one per API class.

sdnvirt talks to many servers of one schema (every host's Open_vSwitch), and
to the northbound database beside them: each API object keeps its own.
"""

from __future__ import annotations

from ovsdbapp.backend.ovs_idl import connection


class OwnConnection:
    """Mixed into an ovsdbapp API class, before it."""

    @property
    def ovsdb_connection(self) -> connection.Connection:
        return self._connection

    @ovsdb_connection.setter
    def ovsdb_connection(self, value: connection.Connection) -> None:
        self._connection = value
