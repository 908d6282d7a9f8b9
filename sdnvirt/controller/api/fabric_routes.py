"""REST routes about the fabric: controller status, a host's flows, drop counters."""

from __future__ import annotations

from fastapi import APIRouter

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
        """Packets dropped by port security, per host and guest NIC."""
        return {"port_security_drops": status.port_security_drops()}

    return router
