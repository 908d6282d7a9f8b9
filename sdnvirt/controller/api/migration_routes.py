"""REST routes about migrations: start, follow, cancel, and their reports.

Following a migration (`?wait=`) and cancelling one wait for its end without
holding a worker thread: the route awaits the driver's word that it changed.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.controller.migration import flight
from sdnvirt.controller.migration.driver import Migrations
from sdnvirt.controller.migration.record import Migration

MAX_WAIT = 300.0
CANCEL_WAIT = 60.0  # seconds a cancel waits for the migration to end before it answers as it is
TIMELINE_FIELDS = ("id", "vm", "from", "to", "kind", "capture", "state", "started_at", "hypervisor_downtime_ms",
                   "probe_max_gap_ms", "probe_lost", "flight_dropped", *flight.FIGURES)


class MigrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vm: str = Field(description="The guest to move")
    to: str = Field(description="The destination host")
    offline: bool = Field(False, description="A cold move: shut down, move, start (qemu guests)")
    capture: bool = Field(False, description="Short captures on the guest's ports on both hosts, for the "
                                             "migration's flight recorder (GET /migrations/{id}/timeline)")


class ProbeFigures(BaseModel):
    """What a probe guest saw while pinging the migrating VM at a fixed rate."""

    model_config = ConfigDict(extra="forbid")
    sent: int = Field(ge=0)
    lost: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    max_gap_ms: float | None = Field(ge=0)
    interval_ms: float = Field(gt=0)


def migration_routes(migrations: Migrations) -> APIRouter:
    router = APIRouter(prefix="/migrations", tags=["migrations"])

    async def until_ended(migration: Migration, timeout: float) -> Migration:
        """The migration once it has ended, or as it is after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while not migration.state.final and (remaining := deadline - time.monotonic()) > 0:
            changed = asyncio.Event()
            forget = migrations.when_changed(migration.id, lambda e=changed: loop.call_soon_threadsafe(e.set))
            try:
                if migration.state.final:
                    break
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                break
            finally:
                forget()
        return migration

    @router.get("")
    def list_migrations() -> list[dict]:
        """Every migration the northbound database remembers, with its report."""
        return [m.report() for m in migrations.list()]

    @router.post("", status_code=202)
    def start(request: MigrationRequest) -> dict:
        """Start moving a guest (409 if it moves already, or cannot move now); follow it with
        GET /migrations/{id}?wait=SECONDS."""
        return migrations.start(request.vm, request.to, request.offline, request.capture).report()

    @router.get("/{migration_id}")
    async def show(migration_id: int, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> dict:
        """A migration's report; with `wait`, answered when it ends or after that many seconds."""
        return (await until_ended(migrations.get(migration_id), wait)).report()

    @router.get("/{migration_id}/timeline")
    def timeline(migration_id: int) -> dict:
        """The migration's flight recorder: its states and marks in the order they happened, on one
        clock, and its gap decomposed (guest pause, switch-over after the pause, network-added gap)."""
        report = migrations.get(migration_id).report()
        return {**{key: report[key] for key in TIMELINE_FIELDS}, "timeline": flight.timeline(report)}

    @router.post("/{migration_id}/cancel")
    async def cancel(migration_id: int) -> dict:
        """Stop this migration. Answered once it has ended with what happened: `cancelled` (the
        guest stays on the source), or `completed` when it was too late; asking again answers
        the same. A migration that has not ended within a minute is answered as it is."""
        migration = await run_in_threadpool(migrations.cancel, migration_id, 0.0)
        return (await until_ended(migration, CANCEL_WAIT)).report()

    @router.post("/{migration_id}/probe")
    def probe(migration_id: int, figures: ProbeFigures) -> dict:
        """Attach what a probe saw to the migration's report."""
        return migrations.attach_probe(migration_id, figures.model_dump()).report()

    return router
