"""REST routes about guests, of every kind: their state, their lifecycle, their console,
commands inside them."""

from __future__ import annotations

import base64
import time
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.controller.guests.kind import GuestState
from sdnvirt.controller.guests.registry import Guests

Action = Literal["start", "shutdown", "destroy", "reboot", "suspend", "resume", "save", "restore"]
MAX_CONSOLE_LINES = 10_000
MAX_COMMAND_WORDS = 1_000


class ExecRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] = Field(min_length=1, max_length=MAX_COMMAND_WORDS,
                               description="argv of the command to run in the guest")
    timeout: float = Field(30.0, gt=0, le=3600, description="seconds before the command is killed (status 137)")


def vm_routes(guests: Guests) -> APIRouter:
    router = APIRouter(prefix="/vms", tags=["vms"])

    def describe(state: GuestState) -> dict:
        guest = guests.topology.guests[state.name]
        return {"name": state.name, "kind": guest.kind.value, "host": state.host, "state": state.state,
                "since_s": round(time.time() - state.since, 1),
                "nics": [{"network": n.network, "ip": str(n.ip), "mac": str(n.mac), "port": n.port_id}
                         for n in guest.nics]}

    @router.get("")
    def list_vms() -> list[dict]:
        """Every guest: where it runs, its state and since when, its addresses."""
        return [describe(state) for state in guests.states()]

    @router.get("/{name}")
    def show(name: str) -> dict:
        return describe(guests.state(name))

    @router.get("/{name}/console")
    def console(name: str, lines: int = Query(100, ge=1, le=MAX_CONSOLE_LINES)) -> dict:
        """The last lines of a qemu guest's serial console."""
        return {"name": name, "console": guests.console(name, lines)}

    @router.post("/{name}/exec")
    def run(name: str, request: ExecRequest) -> dict:
        """Run a command in a guest (a qemu guest through its agent, so also with its network down);
        its exit status (137 when killed at the timeout) and its output, base64."""
        result = guests.exec(name, request.command, request.timeout)
        return {"exit_status": result.exit_status, "output": base64.b64encode(result.output).decode()}

    # Last: /{name}/exec must not be taken for an action.
    @router.post("/{name}/{action}")
    def act(name: str, action: Action) -> dict:
        """Start or stop a guest (any kind); destroy, reboot, suspend, resume, save or restore a qemu
        guest. Answers once it is done."""
        return describe(guests.act(name, action))

    return router
