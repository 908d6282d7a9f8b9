"""REST routes about the fabric: controller status, a host's flows, drop counters."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from sdnvirt.controller.wiring import Controller


def fabric_routes(controller: Controller) -> APIRouter:
    router = APIRouter(tags=["fabric"])

    @router.get("/status")
    def status() -> dict:
        """Per host: OVSDB, OpenFlow and libvirt connections, sync state, flow-mods sent."""
        return controller.status()

    @router.get("/hosts/{host}/flows")
    def flows(host: str) -> list[dict]:
        """The host's integration-bridge flows, read from the switch, with counters and owners."""
        if host not in controller.topology.hosts:
            raise HTTPException(404, detail={"field": "host", "message": f"no host {host!r}"})
        try:
            return controller.flows(host)
        except LookupError as error:
            raise HTTPException(409, detail={"field": "host", "message": str(error)}) from None

    @router.get("/counters")
    def counters() -> dict:
        """Packets dropped by port security, per host and guest NIC."""
        return {"port_security_drops": controller.port_security_drops()}

    return router
