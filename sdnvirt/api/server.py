"""The REST API, served by the controller process on a thread of its own.

FastAPI describes itself (OpenAPI at /openapi.json); uvicorn serves it on the
lab's unix socket. The CLI is a client of this API for anything that asks a
running controller.
"""

from __future__ import annotations

import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException

from sdnvirt.controller.service import Controller


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(title="sdnvirt", summary="Migration-aware SDN controller", version="0.1.0")

    @app.get("/status")
    def status() -> dict:
        """Per host: OVSDB and OpenFlow connection, sync state, flow-mods sent."""
        return controller.status()

    @app.get("/hosts/{host}/flows")
    def flows(host: str) -> list[dict]:
        """The host's integration-bridge flows, read from the switch, with counters and owners."""
        if host not in controller.topology.hosts:
            raise HTTPException(404, detail={"field": "host", "message": f"no host {host!r}"})
        try:
            return controller.flows(host)
        except LookupError as error:
            raise HTTPException(409, detail={"field": "host", "message": str(error)}) from None

    @app.get("/counters")
    def counters() -> dict:
        """Packets dropped by port security, per host and guest NIC."""
        return {"port_security_drops": controller.port_security_drops()}

    return app


class ApiServer:
    def __init__(self, app: FastAPI, socket_path: Path):
        self.socket_path = socket_path
        self._server = uvicorn.Server(uvicorn.Config(app, uds=str(socket_path), log_level="warning",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
