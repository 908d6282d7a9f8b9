"""Every guest of the topology, whatever its kind: what the API and the migration driver ask.

Each request goes to the kind of the guest it names; a kind that has no such
action says so (a netns guest cannot be saved), so no caller ever asks which
kind a guest is.
"""

from __future__ import annotations

from sdnvirt.compute.agent import CommandResult
from sdnvirt.controller.guests.kind import GuestState, Kind
from sdnvirt.errors import Invalid, NotFound
from sdnvirt.model.topology import GuestKind, Topology


class Guests:
    def __init__(self, topology: Topology, kinds: dict[GuestKind, Kind]):
        self.topology = topology
        self.kinds = kinds

    def use_topology(self, topology: Topology) -> None:
        self.topology = topology
        for kind in self.kinds.values():
            kind.use_topology(topology)

    def kind_of(self, name: str) -> Kind:
        guest = self.topology.guests.get(name)
        if guest is None:
            raise NotFound(f"no guest named {name!r}", "vm")
        return self.kinds[guest.kind]

    def state(self, name: str) -> GuestState:
        return self.kind_of(name).state(name)

    def states(self) -> list[GuestState]:
        return [self.state(name) for name in self.topology.guests]

    def act(self, name: str, action: str) -> GuestState:
        kind = self.kind_of(name)
        if action == "start":
            return kind.start(name)
        if action == "shutdown":
            return kind.shutdown(name)
        run = kind.actions().get(action)
        if run is None:
            raise Invalid(f"{name} is a {kind.kind.value} guest: it cannot {action}", "action")
        return run(name)

    def exec(self, name: str, command: list[str], timeout: float) -> CommandResult:
        return self.kind_of(name).exec(name, command, timeout)

    def console(self, name: str, lines: int) -> str:
        return self.kind_of(name).console(name, lines)
