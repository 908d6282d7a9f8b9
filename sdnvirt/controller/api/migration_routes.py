"""REST routes about migrations: start, follow, cancel, and their reports."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.compute.machines import MachineError
from sdnvirt.controller.wiring import Controller

MAX_WAIT = 300.0


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: str = Field(description="The guest to move")
    to: str = Field(description="The destination host")
    offline: bool = Field(False, description="A cold move: shut down, move, start")


class ProbeFigures(BaseModel):
    """What a probe guest saw while pinging the migrating VM at a fixed rate."""

    model_config = ConfigDict(extra="forbid")
    sent: int = Field(ge=0)
    lost: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    max_gap_ms: float | None = Field(ge=0)
    interval_ms: float = Field(gt=0)


class GuestMoved(BaseModel):
    """The lab's word that it moved a netns guest (or could not)."""

    model_config = ConfigDict(extra="forbid")
    result: Literal["completed", "failed"]
    downtime_ms: float | None = Field(None, ge=0)
    total_ms: float | None = Field(None, ge=0)
    error: str | None = None


def migration_routes(controller: Controller) -> APIRouter:
    router = APIRouter(prefix="/migrations", tags=["migrations"])
    migrations = controller.migrations

    def failure(error: MachineError) -> HTTPException:
        return HTTPException(error.status, detail={"field": "migration", "message": str(error)})

    @router.get("")
    def list_migrations() -> list[dict]:
        """Every migration since the controller started, with its report."""
        return [m.report() for m in migrations.list()]

    @router.post("", status_code=202)
    def start(request: MigrationRequest) -> dict:
        """Start moving a VM; follow it with GET /migrations/{id}?wait=SECONDS."""
        try:
            return migrations.start(request.vm, request.to, request.offline).report()
        except MachineError as error:
            raise failure(error) from None

    @router.get("/{migration_id}")
    def show(migration_id: int, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> dict:
        """A migration's report; with `wait`, answered when it ends or after that many seconds."""
        try:
            return migrations.wait(migration_id, wait).report()
        except MachineError as error:
            raise failure(error) from None

    @router.post("/{migration_id}/cancel")
    def cancel(migration_id: int) -> dict:
        try:
            return migrations.cancel(migrations.get(migration_id).vm).report()
        except MachineError as error:
            raise failure(error) from None

    @router.post("/{migration_id}/probe")
    def probe(migration_id: int, figures: ProbeFigures) -> dict:
        try:
            return migrations.attach_probe(migration_id, figures.model_dump()).report()
        except MachineError as error:
            raise failure(error) from None

    @router.post("/{migration_id}/switch")
    def switch(migration_id: int) -> dict:
        """The lab is about to move a netns guest: repoint the fabric now (answered when done)."""
        try:
            return migrations.switch(migration_id).report()
        except MachineError as error:
            raise failure(error) from None

    @router.post("/{migration_id}/moved")
    def moved(migration_id: int, outcome: GuestMoved) -> dict:
        try:
            return migrations.finish_netns(migration_id, outcome.result, outcome.downtime_ms, outcome.total_ms,
                                           outcome.error).report()
        except MachineError as error:
            raise failure(error) from None

    return router
