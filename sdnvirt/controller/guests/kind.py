"""What every kind of guest does, behind one interface: start, stop, exec, state, move.

A kind (qemu: a VM run by the host's libvirtd; netns: a namespace wired like one)
is one class here; the controller, its API and its migration driver only ever
talk to this interface, so a new kind is one new module, not a branch in many.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from sdnvirt.compute.agent import CommandResult
from sdnvirt.controller.migration.move import Mover
from sdnvirt.errors import Invalid
from sdnvirt.model.topology import GuestKind, Topology


@dataclass(frozen=True)
class GuestState:
    name: str
    host: str | None  # where it runs, or where it was seen last; None: nowhere yet
    state: str  # running, paused, shut-off, saved, crashed, absent, ...
    since: float  # time.time() when it entered this state


class Kind(Mover):
    """One kind of guest, for all the guests of that kind in the topology; it moves them too."""

    kind: GuestKind
    migration_kinds: tuple[str, ...]  # what a migration of such a guest can be: "live", "offline", ...

    @abstractmethod
    def use_topology(self, topology: Topology) -> None:
        """Guests of this kind came, went or changed: follow (what went is stopped and removed)."""

    @abstractmethod
    def state(self, name: str) -> GuestState: ...

    @abstractmethod
    def start(self, name: str) -> GuestState: ...

    @abstractmethod
    def shutdown(self, name: str) -> GuestState:
        """Stop it cleanly, and wait for it."""

    @abstractmethod
    def exec(self, name: str, command: list[str], timeout: float) -> CommandResult: ...

    def actions(self) -> dict[str, Callable[[str], GuestState]]:
        """Lifecycle actions beyond start and shutdown that this kind has (name -> action)."""
        return {}

    def nics_locked(self, name: str) -> str | None:
        """Why the guest's NICs cannot change now (its state), or None when they can."""
        return None

    def console(self, name: str, lines: int) -> str:
        raise Invalid(f"{name} is a {self.kind.value} guest: it has no console", "vm")
