"""REST routes about guests: their state, their lifecycle, their console, commands inside them."""

from __future__ import annotations

import base64
import time
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.compute.agent import AgentError
from sdnvirt.compute.machines import MachineError, MachineState
from sdnvirt.controller.wiring import Controller
from sdnvirt.model.topology import GuestKind

Action = Literal["start", "shutdown", "destroy", "reboot", "suspend", "resume", "save", "restore"]


class ExecRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] = Field(min_length=1, description="argv of the command to run in the guest")
    timeout: float = Field(30.0, gt=0, le=3600, description="seconds before the guest kills the command")


def vm_routes(controller: Controller) -> APIRouter:
    router = APIRouter(prefix="/vms", tags=["vms"])
    machines = controller.machines

    def failure(error: MachineError) -> HTTPException:
        return HTTPException(error.status, detail={"field": "vm", "message": str(error)})

    def describe(name: str, state: MachineState | None) -> dict:
        guest = controller.topology.guests[name]
        if state is None:  # a netns guest: the lab runs it, the controller sees its bindings
            bound = controller.bound_hosts(name)
            state = MachineState(name, bound[0] if bound else None, "bound" if bound else "unbound",
                                 controller.started_at)
        return {"name": name, "kind": guest.kind.value, "host": state.host, "state": state.state,
                "since_s": round(time.time() - state.since, 1),
                "nics": [{"network": n.network, "ip": str(n.ip), "mac": str(n.mac), "port": n.port_id}
                         for n in guest.nics]}

    def state_of(name: str) -> MachineState | None:
        return machines.state(name) if controller.topology.guests[name].kind == GuestKind.QEMU else None

    @router.get("")
    def list_vms() -> list[dict]:
        """Every guest: where it runs, its state and since when, its addresses."""
        return [describe(name, state_of(name)) for name in controller.topology.guests]

    @router.get("/{name}")
    def show(name: str) -> dict:
        if name not in controller.topology.guests:
            raise HTTPException(404, detail={"field": "name", "message": f"no guest named {name!r}"})
        return describe(name, state_of(name))

    @router.get("/{name}/console")
    def console(name: str, lines: int = 100) -> dict:
        """The last lines of the guest's serial console."""
        try:
            return {"name": name, "console": machines.console(name, lines)}
        except MachineError as error:
            raise failure(error) from None

    @router.post("/{name}/exec")
    def run(name: str, request: ExecRequest) -> dict:
        """Run a command in a qemu guest through its agent (works with the guest's network down)."""
        try:
            result = machines.exec(name, request.command, request.timeout)
        except MachineError as error:
            raise failure(error) from None
        except AgentError as error:
            raise HTTPException(504, detail={"field": "vm", "message": f"vm {name}'s agent: {error}"}) from None
        return {"exit_status": result.exit_status, "output": base64.b64encode(result.output).decode()}

    # Last: /{name}/exec must not be taken for an action.
    @router.post("/{name}/{action}")
    def act(name: str, action: Action) -> dict:
        """Start, stop, pause or save a qemu guest; answers once libvirt says it is done."""
        try:
            return describe(name, getattr(machines, action)(name))
        except MachineError as error:
            raise failure(error) from None

    return router
