"""REST routes about the desired topology: read it, change it, and what it holds."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.controller.wiring import Controller, TopologyNotApplied
from sdnvirt.model.problems import InputError

MAX_SOURCE = 1 << 20  # bytes of YAML: far more than any datacenter's topology file


class TopologyChange(BaseModel):
    """A topology file to apply (or, with dry_run, only to compare)."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=MAX_SOURCE, description="The whole topology file, as YAML text")
    filename: str = Field("topology.yaml", max_length=4096, description="Named in error messages")
    dry_run: bool = Field(False, description="Only say what would change")


def topology_routes(controller: Controller) -> APIRouter:
    router = APIRouter(tags=["topology"])

    @router.get("/topology")
    def topology() -> dict:
        """The topology the controller runs: its name, generation and file."""
        return {"name": controller.topology.name, "generation": controller.generation,
                "source": controller.northbound.topology_source()}

    @router.post("/topology")
    def change_topology(request: TopologyChange) -> dict:
        """Apply an edited topology file by difference; 422 names every field that is not
        valid or cannot change now, and nothing is applied then."""
        try:
            generation, changes = controller.apply_topology(request.source, request.filename, request.dry_run)
        except InputError as error:
            raise HTTPException(422, detail={"field": "source", "message": str(error),
                                             "problems": [asdict(p) for p in error.problems]}) from None
        except TopologyNotApplied as error:
            raise HTTPException(504, detail={"field": "source", "message": str(error)}) from None
        return {"generation": generation, "applied": not request.dry_run and bool(changes),
                "changes": [asdict(c) | {"text": str(c)} for c in changes]}

    @router.get("/hosts")
    def hosts() -> list[dict]:
        """Every host: its segment, underlay address, and the controller's connections to it."""
        status = controller.status()["hosts"]
        return [{"name": name, "segment": host.segment, "address": str(host.address), **status.get(name, {})}
                for name, host in sorted(controller.topology.hosts.items())]

    @router.get("/networks")
    def networks() -> list[dict]:
        """Every tenant network: its subnet and VNI, the hosts that carry it, and its ports
        with the host where each is active."""
        view = controller.store.view()
        return [{"name": key, "tenant": network.tenant, "subnet": str(network.subnet), "vni": network.vni,
                 "hosts": sorted(view.network_hosts.get(key, ())),
                 "ports": [{"id": port.id, "guest": port.guest, "mac": port.mac, "ip": port.ip,
                            "active_host": view.active.get(port.id)}
                           for port in view.ports_by_network.get(key, [])]}
                for key, network in sorted(controller.topology.networks.items())]

    @router.get("/networks/{tenant}/{network}")
    def network(tenant: str, network: str) -> dict:
        found = next((n for n in networks() if n["name"] == f"{tenant}/{network}"), None)
        if found is None:
            raise HTTPException(404, detail={"field": "network", "message": f"no network {tenant}/{network}"})
        return found

    return router
