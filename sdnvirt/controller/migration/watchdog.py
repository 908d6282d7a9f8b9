"""The watchdog: no migration stays unfinished.

Once a second it looks at every unfinished migration. One whose state overran
its deadline is told to stop (libvirt aborts its job; a netns move stops at its
next step); if its thread has not ended it a grace period later, or if no thread
drives it at all (the controller restarted while it ran), the guest's kind is
asked how the hosts say it ended (libvirt's job on the source, where the guest
runs), and it is ended that way; when even the hosts cannot say, once its last
deadline and the grace have passed, it fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sdnvirt.controller.migration.driver import Migrations
from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State
from sdnvirt.errors import SdnvirtError

LOG = logging.getLogger(__name__)
INTERVAL = 1.0  # seconds between two looks
GRACE = 10.0  # seconds a move gets to stop on its own after its deadline


class Watchdog:
    def __init__(self, migrations: Migrations, clock: Callable[[], float] = time.monotonic,
                 interval: float = INTERVAL, grace: float = GRACE):
        self._migrations = migrations
        self._clock = clock
        self._interval = interval
        self._grace = grace
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migration-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.look()
            except Exception:  # a bug in one look must not end the watching
                LOG.exception("the migration watchdog's look failed")

    def look(self) -> None:
        """One round over every unfinished migration."""
        now = self._clock()
        for migration in self._migrations.unfinished():
            overdue = now - self._migrations.deadline(migration)
            if overdue > 0:
                self._migrations.expire(migration)
            if self._migrations.driven(migration) and overdue <= self._grace:
                continue  # its thread ends it
            self._settle(migration, undecided_fails=overdue > self._grace)

    def _settle(self, migration: Migration, undecided_fails: bool) -> None:
        mover = self._migrations.mover_of(migration)
        try:
            outcome = mover.settle(migration)
        except SdnvirtError as error:
            LOG.warning("migration %d: the hosts cannot say how it ended yet: %s", migration.id, error)
            outcome = None
        if outcome is not None:
            note = "ended by the watchdog, as the hosts tell it"
            error = None if outcome == State.COMPLETED else \
                (f"the deadline of {migration.expired} passed" if migration.expired else note)
            self._migrations.conclude(migration, mover, outcome, error)
        elif undecided_fails:
            self._migrations.conclude(migration, mover, State.FAILED,
                                      f"undecided {self._grace:.0f} s after the deadline of {migration.state}")
