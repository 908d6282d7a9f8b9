"""REST routes about the fabric: controller status, a host's flows, the counters (also for Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from sdnvirt.controller.accounting.metrics import exposition
from sdnvirt.controller.status import FabricStatus


def fabric_routes(status: FabricStatus) -> APIRouter:
    router = APIRouter(tags=["fabric"])

    @router.get("/status")
    def show() -> dict:
        """Per host: OVSDB, OpenFlow and libvirt connections, sync state, flow-mods sent."""
        return status.status()

    @router.get("/hosts/{host}/flows")
    def flows(host: str) -> list[dict]:
        """The host's integration-bridge flows, read from the switch, with counters and owners."""
        return status.flows(host)

    @router.get("/counters")
    def counters() -> dict:
        """Per logical port, VM, tenant and host: packets and bytes in and out, drops by reason, CPU time,
        memory and disk, continuous across migrations and restarts; and what each host's port security
        flows have dropped (per guest NIC) now."""
        return {**status.accounts(), "port_security_drops": status.port_security_drops()}

    @router.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """The counters in Prometheus's exposition format, one series per port (or VM) and host."""
        page, content_type = exposition(status.accounts)
        return PlainTextResponse(page, media_type=content_type)

    return router
