"""REST routes about the desired topology: read it, change it, and what it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sdnvirt.controller.state import FabricView
from sdnvirt.controller.status import FabricStatus
from sdnvirt.controller.topology_update import TopologyUpdates
from sdnvirt.errors import NotFound
from sdnvirt.model.topology import Topology

MAX_SOURCE = 1 << 20  # bytes of YAML: far more than any datacenter's topology file


class TopologyChange(BaseModel):
    """A topology file to apply (or, with dry_run, only to compare)."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=MAX_SOURCE, description="The whole topology file, as YAML text")
    filename: str = Field("topology.yaml", max_length=4096, description="Named in error messages")
    dry_run: bool = Field(False, description="Only say what would change")


def topology_routes(updates: TopologyUpdates, topology: Callable[[], Topology], view: Callable[[], FabricView],
                    status: FabricStatus) -> APIRouter:
    router = APIRouter(tags=["topology"])

    @router.get("/topology")
    def show() -> dict:
        """The topology the controller runs: its name, generation and file."""
        return {"name": topology().name, "generation": updates.generation,
                "source": updates.northbound.topology_source()}

    @router.post("/topology")
    async def change(request: TopologyChange) -> dict:
        """Apply an edited topology file by difference; 422 names every field that is not
        valid or cannot change now, and nothing is applied then."""
        generation, changes = await run_in_threadpool(updates.apply, request.source, request.filename,
                                                       request.dry_run)
        return {"generation": generation, "applied": not request.dry_run and bool(changes),
                "changes": [asdict(c) | {"text": str(c)} for c in changes]}

    @router.get("/hosts")
    def hosts() -> list[dict]:
        """Every host: its segment, underlay address, and the controller's connections to it."""
        connections = status.status()["hosts"]
        return [{"name": name, "segment": host.segment, "address": str(host.address), **connections.get(name, {})}
                for name, host in sorted(topology().hosts.items())]

    def describe(key: str) -> dict:
        network, now = topology().networks[key], view()
        return {"name": key, "tenant": network.tenant, "subnet": str(network.subnet), "vni": network.vni,
                "hosts": sorted(now.network_hosts.get(key, ())),
                "ports": [{"id": port.id, "guest": port.guest, "mac": port.mac, "ip": port.ip,
                           "active_host": now.active.get(port.id)}
                          for port in now.ports_by_network.get(key, [])]}

    @router.get("/networks")
    def networks() -> list[dict]:
        """Every tenant network: its subnet and VNI, the hosts that carry it, and its ports
        with the host where each is active."""
        return [describe(key) for key in sorted(topology().networks)]

    @router.get("/networks/{tenant}/{network}")
    def network(tenant: str, network: str) -> dict:
        key = f"{tenant}/{network}"
        if key not in topology().networks:
            raise NotFound(f"no network {key}", "network")
        return describe(key)

    return router
