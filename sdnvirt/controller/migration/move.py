"""What the migration driver needs from a guest's kind to move it, and what it offers in return.

The driver owns the state machine and its deadlines; a kind knows how to move
its guests (libvirt's live migration, a netns guest's new link, ...). A kind
reports its progress through MoveSteps and ends its move by returning or raising.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from sdnvirt.controller.migration.record import Migration
from sdnvirt.controller.migration.states import State


class MoveCancelled(Exception):
    """The move stopped because someone asked (or a deadline passed); the guest is where it was."""


class MoveRolledBack(Exception):
    """The move failed after something had changed, and that was undone: the guest runs where it was."""


class MoveSteps(ABC):
    """What a kind's move reports to, and asks of, the migration driver."""

    cancel: threading.Event  # set when the move must stop (a cancel, or a deadline passed)

    @abstractmethod
    def enter(self, state: State) -> None:
        """The move reached this state (preparing, copying, switching)."""

    @abstractmethod
    def switch_over(self, trigger: str) -> None:
        """Point every bridge at the destination now, and wait until they do (bounded)."""

    @abstractmethod
    def switch_back(self) -> None:
        """Point every bridge at the source again (a move that failed after its switch-over)."""

    @abstractmethod
    def mark(self, entry: dict) -> None:
        """A mark (flight.mark) for the migration's flight recorder."""

    @abstractmethod
    def remaining(self) -> float:
        """Seconds until the current state's deadline."""

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise MoveCancelled("the migration was asked to stop")


class Mover(ABC):
    """A guest kind, as the migration driver sees it."""

    migration_kinds: tuple[str, ...]  # what a migration of such a guest can be: "live", "offline", ...

    @abstractmethod
    def where(self, name: str, migration_kind: str) -> str:
        """The host such a migration would move the guest from; Conflict if it cannot move now."""

    @abstractmethod
    def check_move(self, migration: Migration) -> None:
        """Refuse (Conflict, Invalid, ...) a migration that cannot start now."""

    @abstractmethod
    def move(self, migration: Migration, steps: MoveSteps) -> None:
        """Move the guest; returns once it runs on the destination. Raises MoveCancelled,
        MoveRolledBack, or anything else for a move that failed with the guest where it was."""

    @abstractmethod
    def cancel_move(self, migration: Migration) -> None:
        """Ask a move under way to stop (called from another thread than the move's)."""

    @abstractmethod
    def settle(self, migration: Migration) -> State | None:
        """How an unfinished migration nobody drives any more (the controller restarted, or
        its move overran its deadline) ended, as the hosts tell it; None while they cannot
        tell yet. May finish a half-done move's clean-up."""
