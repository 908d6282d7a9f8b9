"""Flows as plain values: what the compiler produces and the reconciler compares.

A Flow holds only what identifies and defines an OpenFlow rule, in one
canonical form (match fields sorted, addresses as lower-case strings), so a
flow compiled from the model and the same flow read back from a switch are
equal and hash alike.
"""

from __future__ import annotations

from dataclasses import dataclass

OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPCML_NO_BUFFER = 0xFFFF

# metadata layout: the tenant network's VNI in the low 24 bits, and one bit
# saying the packet arrived through a tunnel (split horizon for flooding).
NETWORK_MASK = 0xFFFFFF
FROM_TUNNEL = 1 << 32
METADATA_MASK = NETWORK_MASK | FROM_TUNNEL

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")


@dataclass(frozen=True)
class Output:
    port: int

    def __str__(self) -> str:
        return "IN_PORT" if self.port == OFPP_IN_PORT else f"output:{self.port}"


@dataclass(frozen=True)
class SetField:
    field: str
    value: object

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _canonical(self.value))

    def __str__(self) -> str:
        return f"set_field:{self.value}->{self.field}"


@dataclass(frozen=True)
class Move:
    """Copy a packet field into another (Nicira reg_move), e.g. eth_src to eth_dst."""

    src: str
    dst: str
    n_bits: int

    def __str__(self) -> str:
        return f"move:{self.src}->{self.dst}"


@dataclass(frozen=True)
class ToController:
    max_len: int = OFPCML_NO_BUFFER

    def __str__(self) -> str:
        return "CONTROLLER"


@dataclass(frozen=True)
class Foreign:
    """An instruction or action sdnvirt never writes, read from a switch.

    It never equals anything the compiler makes, so the reconciler replaces it.
    """

    description: str

    def __str__(self) -> str:
        return self.description


Action = Output | SetField | Move | ToController | Foreign
MatchValue = int | str | tuple


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    write_metadata: tuple[int, int] | None = None
    goto: int | None = None
    cookie: int = 0

    @property
    def key(self) -> tuple:
        """What OpenFlow uses to tell flows apart: a strict flow-mod addresses this."""
        return (self.table, self.priority, self.match)

    @property
    def body(self) -> tuple:
        """What a modify must change when the key is already on the switch."""
        return (self.actions, self.write_metadata, self.goto, self.cookie)

    @property
    def drops(self) -> bool:
        return not self.actions and self.goto is None and self.write_metadata is None


def flow(table: int, priority: int, match: dict[str, MatchValue] | None = None, *,
         actions: tuple[Action, ...] | list[Action] = (), write_metadata: tuple[int, int] | None = None,
         goto: int | None = None, cookie: int = 0) -> Flow:
    """Build a Flow with its match in canonical order."""
    canonical = tuple(sorted((name, _canonical(value)) for name, value in (match or {}).items()))
    return Flow(table, priority, canonical, tuple(actions), write_metadata, goto, cookie)


def _canonical(value: MatchValue) -> MatchValue:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    return value
