"""The REST API, served by the controller process on a thread of its own.

FastAPI describes itself (OpenAPI at /openapi.json); uvicorn serves it on the
lab's unix socket, which only its owner (root) may open, and over HTTPS with a
token. The CLI is a client of this API for anything that asks a running
controller. No request makes it read more than MAX_BODY bytes of body.
"""

from __future__ import annotations

import threading
from pathlib import Path

import uvicorn
from fastapi import Depends, FastAPI

from sdnvirt.controller.api.body_limit import BodyLimit
from sdnvirt.controller.api.errors import ERROR_RESPONSES, add_error_handlers
from sdnvirt.controller.api.event_routes import event_routes
from sdnvirt.controller.api.fabric_routes import fabric_routes
from sdnvirt.controller.api.migration_routes import migration_routes
from sdnvirt.controller.api.token import TokenCheck
from sdnvirt.controller.api.topology_routes import topology_routes
from sdnvirt.controller.api.vm_routes import vm_routes
from sdnvirt.controller.wiring import Controller
from sdnvirt.linux.unix_sockets import owner_only_socket


def create_app(controller: Controller, token: str | None = None) -> FastAPI:
    """The API over the controller's parts; with a `token`, every route asks for it (the API on TCP)."""
    app = FastAPI(title="sdnvirt", summary="Migration-aware SDN controller", version="0.1.0",
                  responses=ERROR_RESPONSES, dependencies=[Depends(TokenCheck(token))] if token else None)
    add_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(topology_routes(controller.topology_updates, lambda: controller.topology,
                                       controller.store.view, controller.status))
    app.include_router(fabric_routes(controller.status))
    app.include_router(vm_routes(controller.guests))
    app.include_router(migration_routes(controller.migrations))
    app.include_router(event_routes(controller.events))
    return app


class ApiServer:
    """The API on a unix socket (`socket_path`, mode 0600) or on TCP (`host`, `port`, over
    HTTPS when given a certificate and its private key)."""

    def __init__(self, app: FastAPI, socket_path: Path | None = None, host: str | None = None, port: int = 0,
                 certificate: Path | None = None, private_key: Path | None = None):
        self.socket_path = socket_path
        bind = {} if socket_path else {"host": host, "port": port}
        if certificate is not None:
            bind |= {"ssl_certfile": str(certificate), "ssl_keyfile": str(private_key)}
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **bind))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # The unix socket is bound here and restricted before it listens: uvicorn's own is 0666.
        sockets = [owner_only_socket(self.socket_path)] if self.socket_path is not None else None
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets}, name="api",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
